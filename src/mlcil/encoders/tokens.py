"""Token features: per-token (text) or per-patch (image) hidden states of a frozen encoder, bounded.

KRT and CSC attend over spatial features, not one pooled vector. :func:`encode_tokens` runs the same
encoder that makes the pooled embedding and keeps, per input, its first ``max_tokens`` token states
as float16 with a boolean mask (True = a real token, False = padding):

- text (sentence-transformers, e.g. ``minilm``): the transformer's last hidden states of the input
  truncated to ``max_tokens`` word pieces ([CLS] and [SEP] included), so the states see only those
  tokens; the pooled embedding of the same pass (the model's own pooling, normalised for MiniLM) is
  returned beside them;
- image (timm models, e.g. ``effnet-lite0``): ``forward_features``' spatial map, one token per cell
  (EfficientNet-Lite0 at 224 px: 7 × 7 = 49 tokens of 1,280), or a ViT's token sequence; the first
  ``max_tokens`` are kept. The pooled embedding is the encoder's own forward pass.

Memory and disk are estimated before anything runs (:func:`token_bytes`, :func:`check_token_budget`):
n × t × d × 2 bytes of states plus n × t of mask. Over the budget is a clear error naming the numbers.
:func:`embed_tokens` returns a Dataset that carries them (``Dataset.T``, ``Dataset.mask``); ``write_npz``
saves them beside the pooled embedding.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcil.data.dataset import Dataset
from mlcil.errors import MlcilError

#: tokens kept per input by default
DEFAULT_MAX_TOKENS = 64
#: default bound on the token states held in memory (bytes); ``$MLCIL_TOKEN_BUDGET`` overrides it
DEFAULT_MAX_BYTES = 4 * 2**30


def token_bytes(n: int, max_tokens: int, dim: int) -> int:
    """Bytes of ``n`` inputs' token features: float16 states (n × t × d) and a bool mask (n × t)."""
    return int(n) * int(max_tokens) * (2 * int(dim) + 1)


def _budget(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return int(max_bytes)
    env = os.environ.get("MLCIL_TOKEN_BUDGET")
    if env:
        return _parse_size(env)
    return DEFAULT_MAX_BYTES


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _parse_size(text: str) -> int:
    """``'512MB'``, ``'4GiB'``, ``'1000000'`` -> bytes."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmgib")
    unit = value[len(number):]
    try:
        return int(float(number) * _UNITS[unit])
    except (ValueError, KeyError):
        raise MlcilError(f"MLCIL_TOKEN_BUDGET: expected a size such as 4GB or 512MiB, got {text!r}") from None


def check_token_budget(n: int, max_tokens: int, dim: int, max_bytes: int | None = None,
                       out_dir: str | os.PathLike | None = None) -> int:
    """Bytes the token features will take; MlcilError when over ``max_bytes`` (default
    :data:`DEFAULT_MAX_BYTES` or ``$MLCIL_TOKEN_BUDGET``) or over the free disk of ``out_dir``."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1:
        raise MlcilError(f"tokens: max_tokens: expected a positive integer, got {max_tokens!r}")
    need = token_bytes(n, max_tokens, dim)
    limit = _budget(max_bytes)
    if need > limit:
        raise MlcilError(f"tokens: {n} inputs × {max_tokens} tokens × {dim} dims (float16) need "
                         f"{need / 2**30:.2f} GiB, over the budget of {limit / 2**30:.2f} GiB; keep fewer tokens "
                         "(--tokens N), embed a subset, or raise the budget ($MLCIL_TOKEN_BUDGET)")
    if out_dir is not None:
        folder = Path(out_dir)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        free = shutil.disk_usage(folder).free
        if need > free:
            raise MlcilError(f"tokens: need {need / 2**30:.2f} GiB on disk in {out_dir}, only "
                             f"{free / 2**30:.2f} GiB free")
    return need


def _text_tokens(encoder: Any, batch: list[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import torch

    from mlcil.encoders.base import autocast

    encoder._build()
    model = encoder._model
    saved = model.max_seq_length
    model.max_seq_length = int(max_tokens)
    try:
        prepare = getattr(model, "preprocess", None) or model.tokenize  # tokenize: sentence-transformers < 5.2
        features = prepare(list(batch))
        features = {k: v.to(encoder.device_) if hasattr(v, "to") else v for k, v in features.items()}
        with torch.inference_mode(), autocast(encoder.device_, encoder.precision):
            out = model(features)
    finally:
        model.max_seq_length = saved
    states = out["token_embeddings"].float().cpu().numpy()
    mask = out["attention_mask"].cpu().numpy().astype(bool)
    pooled = out["sentence_embedding"].float()
    if getattr(encoder, "normalize", False):
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return pooled.cpu().numpy(), states, mask


def _image_tokens(encoder: Any, batch: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import torch

    from mlcil.encoders.base import autocast

    encoder._build()
    x = encoder.collate([encoder.load(item) for item in batch])
    with torch.inference_mode(), autocast(encoder.device_, encoder.precision):
        feats = encoder._model.forward_features(x.to(encoder.device_))
    feats = feats.float()
    if feats.ndim == 4:  # CNN: n × C × h × w -> n × (h·w) × C
        feats = feats.flatten(2).transpose(1, 2)
    states = feats.cpu().numpy()
    pooled = encoder.forward(batch if isinstance(x, list) else x)
    return np.asarray(pooled, dtype=np.float32), states, np.ones(states.shape[:2], dtype=bool)


def encode_tokens(encoder: Any, inputs: Sequence[Any], max_tokens: int = DEFAULT_MAX_TOKENS, batch_size: int = 32,
                  max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled embeddings and bounded token features of ``inputs`` (texts, or image paths).

    Returns ``(X, T, mask)``: X n×d float32 (the encoder's pooled embedding of the same inputs),
    T n×t×d float16 (t = ``max_tokens``; padding positions are 0), mask n×t bool. The memory of
    T is checked first (:func:`check_token_budget`).
    """
    from mlcil.encoders.torch_models import SentenceTransformerEncoder, TimmEncoder

    if isinstance(encoder, str):
        from mlcil.encoders.factory import make_encoder

        encoder = make_encoder(encoder, device="cpu")
    if not isinstance(encoder, SentenceTransformerEncoder) and getattr(encoder, "short_name", None) == "minilm" \
            and getattr(encoder, "modality", None) == "text":
        # another runtime of the packaged MiniLM (e.g. ONNX): its token states come from the same weights,
        # read through sentence-transformers (the pooled X of such a run stays the runtime's own, see add_tokens)
        encoder = SentenceTransformerEncoder("all-MiniLM-L6-v2", device="cpu")
    if isinstance(encoder, SentenceTransformerEncoder):
        kind = "text"
    elif isinstance(encoder, TimmEncoder):
        kind = "image"
    else:
        raise MlcilError(f"tokens: encoder {type(encoder).__name__} has no token features; use a sentence-transformers "
                         "model (minilm) for texts or a timm model (effnet-lite0, timm:...) for images")
    n, t = len(inputs), int(max_tokens)
    check_token_budget(n, t, encoder.dim, max_bytes)
    d = encoder.dim
    X = np.zeros((n, d), dtype=np.float32)
    T = np.zeros((n, t, d), dtype=np.float16)
    mask = np.zeros((n, t), dtype=bool)
    for start in range(0, n, int(batch_size)):
        batch = list(inputs[start:start + int(batch_size)])
        if kind == "text":
            pooled, states, m = _text_tokens(encoder, batch, t)
        else:
            pooled, states, m = _image_tokens(encoder, batch)
        k = min(t, states.shape[1])
        rows = slice(start, start + len(batch))
        X[rows] = pooled
        T[rows, :k] = states[:, :k] * m[:, :k, None]
        mask[rows, :k] = m[:, :k]
    return X, T, mask


def embed_tokens(raw: Dataset, encoder: Any = "minilm", max_tokens: int = DEFAULT_MAX_TOKENS, batch_size: int = 32,
                 max_bytes: int | None = None) -> Dataset:
    """A raw Dataset (texts or image paths) -> an embedded Dataset carrying token features.

    X is the encoder's pooled embedding of the same (truncated, for text) inputs; ``T``/``mask`` the
    token features of :func:`encode_tokens`. ``meta['tokens']`` records t, d and the truncation.
    """
    if not raw.is_raw:
        raise MlcilError(f"{raw.name}: embed_tokens needs raw inputs (texts or image paths), got features")
    if isinstance(encoder, str):
        from mlcil.encoders.factory import make_encoder

        encoder = make_encoder(encoder, device="cpu")
    X, T, mask = encode_tokens(encoder, raw.X, max_tokens, batch_size, max_bytes)
    meta = {k: v for k, v in raw.meta.items() if k != "extra"}
    meta.update(encoder=encoder.id, tokens={"max_tokens": int(max_tokens), "dim": int(T.shape[2]),
                                            "text_truncated_to": int(max_tokens)})
    return Dataset(X, raw.Y, list(raw.label_names), raw.split, raw.name, meta, T=T, mask=mask)


def add_tokens(embedded: Dataset, raw: Dataset, encoder: Any, max_tokens: int = DEFAULT_MAX_TOKENS,
               batch_size: int = 32, max_bytes: int | None = None, out_dir: str | os.PathLike | None = None) -> Dataset:
    """``embedded`` (made from ``raw`` by ``embed_registered``) with token features of the same rows attached.

    Rows are matched through ``meta['ids']`` (inputs skipped while embedding are skipped here too). The
    pooled X stays as embedded (the full-length input's); T holds the first ``max_tokens`` tokens.
    Memory and ``out_dir``'s free disk are checked before the encoder runs.
    """
    ids = raw.meta.get("ids") or list(range(raw.n))
    keep = embedded.meta.get("ids") or ids
    where = {i: k for k, i in enumerate(ids)}
    try:
        rows = [where[i] for i in keep]
    except KeyError as exc:
        raise MlcilError(f"{embedded.name}: row id {exc} is not in the raw dataset {raw.name}") from None
    if isinstance(encoder, str):
        from mlcil.encoders.factory import make_encoder

        encoder = make_encoder(encoder, device="cpu")
    check_token_budget(len(rows), max_tokens, encoder.dim, max_bytes, out_dir)
    _, T, mask = encode_tokens(encoder, [raw.X[r] for r in rows], max_tokens, batch_size, max_bytes)
    meta = dict(embedded.meta)
    meta["tokens"] = {"max_tokens": int(max_tokens), "dim": int(T.shape[2]), "text_truncated_to": int(max_tokens)}
    return Dataset(np.asarray(embedded.X), embedded.Y, list(embedded.label_names), embedded.split, embedded.name,
                   meta, T=T, mask=mask)


def attach_tokens(embedded: Dataset, dataset: str, encoder: Any, max_tokens: int = DEFAULT_MAX_TOKENS, *,
                  data_dir: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
                  batch_size: int = 32, max_bytes: int | None = None,
                  out_dir: str | os.PathLike | None = None) -> Dataset:
    """What ``mlcil embed DATASET --tokens N`` calls after ``embed_registered``: reload the raw inputs of
    ``dataset`` (as :func:`mlcil.data.load_raw` does, same ``data_dir``/``root``) and return ``embedded``
    with the token features of its rows (:func:`add_tokens`); memory and ``out_dir``'s disk checked first."""
    from mlcil.data.raw import load_raw

    raw = load_raw(dataset, root=root, data_dir=data_dir)
    return add_tokens(embedded, raw, encoder, max_tokens, batch_size, max_bytes, out_dir)
