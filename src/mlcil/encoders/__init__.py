"""Frozen encoders (TF-IDF + SVD, timm, open_clip, sentence-transformers) behind one interface,
batched embedding with an on-disk cache, raw Dataset -> embedded Dataset, a dataset embedded by name
(:func:`embed_registered`) and its label names (:func:`label_name_embeddings`).

Heavy libraries (torch models, timm, open_clip, sentence-transformers) load on first use.
"""

from mlcil.encoders.base import Encoder, InputError, select_device
from mlcil.encoders.cache import EmbeddingCache
from mlcil.encoders.factory import DEFAULT_ENCODERS, KINDS, make_encoder, parse_encoder_spec
from mlcil.encoders.pipeline import default_cache_dir, embed_dataset, embed_inputs
from mlcil.encoders.registered import embed_registered, embedded_name, label_name_embeddings
from mlcil.encoders.tfidf import TfidfSvdEncoder

__all__ = [
    "DEFAULT_ENCODERS",
    "KINDS",
    "EmbeddingCache",
    "Encoder",
    "InputError",
    "TfidfSvdEncoder",
    "default_cache_dir",
    "embed_dataset",
    "embed_inputs",
    "embed_registered",
    "embedded_name",
    "label_name_embeddings",
    "make_encoder",
    "parse_encoder_spec",
    "select_device",
]
