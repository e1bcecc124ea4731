"""The encoder interface: raw inputs (texts, image paths) in, float32 embeddings out.

An :class:`Encoder` turns a batch of raw inputs into an ``n x d`` float32 array and carries an
``id`` string that names everything that changes its output (model, weights, preprocessing,
fitted state), so that an embedding cache keyed by ``id`` is never reused across encoders.

The work is split in two so that a torch ``DataLoader`` can run the slow part in worker
processes: :meth:`Encoder.load` turns one raw input into a model input (decodes and resizes an
image; a text stays a string) and may run in a worker; :meth:`Encoder.forward` runs the model
on a collated batch in the main process. ``encode(batch) = forward(collate([load(x) ...]))``.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcil.errors import MlcilError


class InputError(Exception):
    """One raw input could not be loaded (unreadable or truncated image, non-string text)."""


def select_device(device: str | None = "auto") -> str:
    """'auto' (or None) -> 'cuda' when torch sees a GPU, else 'cpu'; other values are checked and returned.

    Without torch installed: 'auto' and 'cpu' are 'cpu' (the ONNX text path needs no torch), others an error.
    """
    try:
        import torch
    except ImportError:
        if device in (None, "auto", "cpu"):
            return "cpu"
        raise MlcilError(f"device: {device!r} needs torch, which is not installed; use --device cpu") from None

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise MlcilError(f"device: {device!r} is not a torch device ({exc}); use cpu, cuda or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MlcilError(f"device: {device!r} requested but torch sees no CUDA GPU; use --device cpu or auto")
    return str(dev)


def autocast_dtype(device: str, precision: str = "auto") -> str | None:
    """The autocast dtype a forward pass runs under ('bfloat16', 'float16'), or None for float32.

    ``precision``: 'auto' = bf16 (else fp16) on CUDA, float32 on CPU; 'float32'; 'bfloat16' (CUDA, or
    CPU where it is fast: AMX / AVX512-BF16); 'float16' (CUDA only).
    """
    import torch

    if precision not in ("auto", "float32", "bfloat16", "float16"):
        raise MlcilError(f"precision: expected auto, float32, bfloat16 or float16, got {precision!r}")
    cuda = device.startswith("cuda")
    if precision == "float32" or (precision == "auto" and not cuda):
        return None
    if precision == "auto":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if precision == "float16" and not cuda:
        raise MlcilError("precision: float16 runs on CUDA only; on CPU use bfloat16 or float32")
    return precision


def autocast(device: str, precision: str = "auto") -> contextlib.AbstractContextManager:
    """Mixed precision for a forward pass (see :func:`autocast_dtype`); a null context for float32."""
    import torch

    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=getattr(torch, dtype))


def load_image(path: str | os.PathLike) -> Any:
    """Open and fully decode an image as RGB (PIL). Raises :class:`InputError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later in a transform
            return img.convert("RGB")
    except FileNotFoundError:
        raise InputError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: unreadable or truncated image ({exc})") from None


class Encoder(ABC):
    """Frozen encoder: ``encode(batch) -> float32 n x d``.

    Attributes:
        kind: the spec kind ('tfidf-svd', 'timm', 'open_clip', 'sentence-transformers').
        modality: 'text' (inputs are strings) or 'image' (inputs are image file paths).
        needs_fit: True when :meth:`fit` must see the training inputs first (TF-IDF + SVD).
        short_name: readable name used in embedded dataset names (``minilm``, ``tfidf-svd-dim-256``).
    """

    kind: str = ""
    modality: str = "text"
    needs_fit: bool = False
    short_name: str | None = None
    """Readable name for embedded datasets (``goemotions@minilm``); set by ``make_encoder`` when None."""

    @property
    @abstractmethod
    def id(self) -> str:
        """Names model, weights and preprocessing: equal ids mean equal embeddings for equal inputs."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Embedding size d."""

    def fit(self, inputs: Sequence[Any], cache_dir: str | os.PathLike | None = None) -> "Encoder":
        """Fit on training inputs (only encoders with ``needs_fit``; ``cache_dir`` may keep the fit); returns self."""
        return self

    def load(self, item: Any) -> Any:
        """One raw input -> one model input; may run in a DataLoader worker. Raises InputError."""
        if self.modality == "image":
            return load_image(item)
        if not isinstance(item, str):
            raise InputError(f"expected a text (str), got {type(item).__name__}")
        return item

    def collate(self, items: list[Any]) -> Any:
        """A list of :meth:`load` outputs -> one batch for :meth:`forward` (default: the list)."""
        return items

    @abstractmethod
    def forward(self, batch: Any) -> np.ndarray:
        """The model on one collated batch -> float32 ``len(batch) x dim``."""

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Raw inputs -> float32 ``len(batch) x dim`` (load, collate and forward in this process)."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.forward(self.collate([self.load(x) for x in batch]))
        return np.ascontiguousarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


class TorchEncoder(Encoder):
    """Shared torch plumbing: device selection, eval mode, no grad, autocast on CUDA."""

    def __init__(self, device: str | None = "auto", precision: str = "auto") -> None:
        self.device = device
        self.precision = precision
        self._model: Any = None

    @property
    def id(self) -> str:
        """Built on first use: the model is loaded lazily, and the id names what was loaded.

        Mixed precision is part of it (``|autocast=bfloat16``): its embeddings differ in the last
        digits from float32's, so the cache keeps them apart.
        """
        self._build()
        dtype = autocast_dtype(self.device_, self.precision)
        return self._id + (f"|autocast={dtype}" if dtype else "")  # type: ignore[attr-defined]

    def _build(self) -> None:
        """Load the model and set ``_id`` (subclasses)."""
        raise NotImplementedError

    @property
    def device_(self) -> str:
        return select_device(self.device)

    def _run(self, fn, *args) -> np.ndarray:
        """Call ``fn(*args)`` under inference mode and autocast; return float32 numpy."""
        import torch

        with torch.inference_mode(), autocast(self.device_, self.precision):
            out = fn(*args)
        return out.float().cpu().numpy()
