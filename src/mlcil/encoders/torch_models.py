"""Encoders around pre-trained torch models: timm image models, open_clip (image and text towers),
sentence-transformers text models. The heavy libraries are imported on first use only.

Weights: ``pretrained=True`` (timm), a pretrained tag (open_clip) or a hub name
(sentence-transformers) load the published weights, which needs them in the local hub cache or a
network; a local file (``checkpoint=``) or folder works offline. Random weights (``pretrained=False``,
no tag) are seeded, so two encoders with the same id give the same embeddings; tests use them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from mlcil.encoders.base import InputError, TorchEncoder, load_image
from mlcil.errors import MlcilError


def file_digest(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file, or of every file under a folder (relative names + contents, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _describe_transform(transform: Any) -> str:
    """A stable one-line text for a torchvision preprocessing pipeline (part of the encoder id)."""
    import re

    return re.sub(r" at 0x[0-9a-fA-F]+", "", " ".join(repr(transform).split()))


def _load_failed(what: str, exc: BaseException) -> MlcilError:
    return MlcilError(
        f"{what}: cannot load the model or its weights ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
        f"published weights need the hub cache or a network: pass a local checkpoint, or pretrained=false for random weights"
    )


class _ImageTransform:
    """Picklable load step for DataLoader workers: decode an image file, then the model's transform."""

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, path: Any) -> Any:
        return self.transform(load_image(path))


class TimmEncoder(TorchEncoder):
    """A timm image model without its classifier: pooled features, float32 ``n x num_features``.

    Preprocessing is the model's own evaluation transform (``timm.data.resolve_model_data_config``
    + ``create_transform``): resize, centre crop, normalise. Inputs are image file paths.

    Args:
        model: timm model name, e.g. ``vit_base_patch16_224.augreg_in21k`` (MULTI-LANE's backbone).
        pretrained: load the published weights (hub) or ``checkpoint``; False = random weights from ``seed``.
        checkpoint: a local weights file for ``pretrained`` (offline use).
        img_size: override the input resolution (e.g. 32 for tests), or None for the model default.
        seed: seeds random initialisation.
        device, precision: see :class:`TorchEncoder`.
    """

    kind = "timm"
    modality = "image"

    def __init__(self, model: str, pretrained: bool = True, checkpoint: str | None = None, img_size: int | None = None,
                 seed: int = 0, device: str | None = "auto", precision: str = "auto") -> None:
        super().__init__(device, precision)
        self.model = model
        self.pretrained = bool(pretrained)
        self.checkpoint = checkpoint
        self.img_size = None if img_size is None else int(img_size)
        self.seed = int(seed)
        self._load: _ImageTransform | None = None
        self._id: str | None = None

    def _build(self) -> None:
        if self._model is not None:
            return
        import timm
        import torch

        kwargs: dict[str, Any] = {"num_classes": 0}
        if self.img_size is not None:
            kwargs["img_size"] = self.img_size
        if self.checkpoint is not None:
            if not Path(self.checkpoint).is_file():
                raise MlcilError(f"timm: checkpoint {self.checkpoint}: no such file")
            kwargs["pretrained_cfg_overlay"] = {"file": str(self.checkpoint)}
        torch.manual_seed(self.seed)
        try:
            model = timm.create_model(self.model, pretrained=self.pretrained, **kwargs)
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise MlcilError(f"timm: unknown model {self.model!r} (timm.list_models() lists them)") from None
            raise _load_failed(f"timm:{self.model}", exc) from None
        except Exception as exc:  # hub / network / file errors come in many types
            raise _load_failed(f"timm:{self.model}", exc) from None
        model.eval().to(self.device_)
        config = timm.data.resolve_model_data_config(model)
        if self.img_size is not None:  # the pretrained config still names the default resolution
            config["input_size"] = (3, self.img_size, self.img_size)
        transform = timm.data.create_transform(**config, is_training=False)
        self._load = _ImageTransform(transform)
        if self.checkpoint is not None:
            weights = f"file-sha256={file_digest(self.checkpoint)[:16]}"
        elif self.pretrained:
            weights = f"pretrained={getattr(model, 'pretrained_cfg', {}).get('tag') or 'default'}"
        else:
            weights = f"random(seed={self.seed})"
        self._id = (f"timm:{self.model}|{weights}|img_size={self.img_size}|timm={timm.__version__}|"
                    f"pre={_describe_transform(transform)}")
        self._model = model

    @property
    def dim(self) -> int:
        self._build()
        return int(self._model.num_features)

    def load(self, item: Any) -> Any:
        self._build()
        return self._load(item)  # type: ignore[misc]

    def collate(self, items: list[Any]) -> Any:
        import torch

        return torch.stack(items)

    def forward(self, batch: Any) -> np.ndarray:
        self._build()
        return self._run(lambda x: self._model(x.to(self.device_, non_blocking=True)), batch)


class OpenClipEncoder(TorchEncoder):
    """An open_clip model's image tower (inputs: image paths) or text tower (inputs: texts).

    Output: the joint embedding space, ``n x embed_dim`` float32, L2-normalised when ``normalize``.

    Args:
        model: open_clip model name, e.g. ``ViT-B-32``.
        pretrained: pretrained tag, e.g. ``laion2b_s34b_b79k``, or a local checkpoint file; None = random
            weights from ``seed``.
        tower: 'image' or 'text'.
        normalize: L2-normalise embeddings (CLIP's cosine space).
    """

    kind = "open_clip"

    def __init__(self, model: str, pretrained: str | None = None, tower: str = "image", normalize: bool = True,
                 seed: int = 0, device: str | None = "auto", precision: str = "auto") -> None:
        super().__init__(device, precision)
        if tower not in ("image", "text"):
            raise MlcilError(f"open_clip: tower must be 'image' or 'text', got {tower!r}")
        self.model = model
        self.pretrained = pretrained or None
        self.tower = tower
        self.modality = tower
        self.normalize = bool(normalize)
        self.seed = int(seed)
        self._load: _ImageTransform | None = None
        self._tokenizer: Any = None
        self._id: str | None = None
        self._dim = 0

    def _build(self) -> None:
        if self._model is not None:
            return
        import open_clip
        import torch

        config = open_clip.get_model_config(self.model)
        if config is None:
            raise MlcilError(f"open_clip: unknown model {self.model!r} (open_clip.list_models() lists them)")
        torch.manual_seed(self.seed)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(self.model, pretrained=self.pretrained)
        except Exception as exc:  # hub / network / file errors come in many types
            raise _load_failed(f"open_clip:{self.model}/{self.pretrained}", exc) from None
        model.eval().to(self.device_)
        if self.pretrained is None:
            weights = f"random(seed={self.seed})"
        elif Path(self.pretrained).is_file():
            weights = f"file-sha256={file_digest(self.pretrained)[:16]}"
        else:
            weights = f"pretrained={self.pretrained}"
        if self.tower == "image":
            self._load = _ImageTransform(preprocess)
            pre = _describe_transform(preprocess)
        else:
            self._tokenizer = open_clip.get_tokenizer(self.model)
            pre = f"{type(self._tokenizer).__name__}(context_length={getattr(self._tokenizer, 'context_length', '?')})"
        self._dim = int(config["embed_dim"])
        self._id = (f"open_clip:{self.model}|{weights}|tower={self.tower}|normalize={self.normalize}|"
                    f"open_clip={open_clip.__version__}|pre={pre}")
        self._model = model

    @property
    def dim(self) -> int:
        self._build()
        return self._dim

    def load(self, item: Any) -> Any:
        self._build()
        if self.tower == "image":
            return self._load(item)  # type: ignore[misc]
        if not isinstance(item, str):
            raise InputError(f"expected a text (str), got {type(item).__name__}")
        return item

    def collate(self, items: list[Any]) -> Any:
        import torch

        return torch.stack(items) if self.tower == "image" else self._tokenizer(items)

    def forward(self, batch: Any) -> np.ndarray:
        self._build()
        fn = self._model.encode_image if self.tower == "image" else self._model.encode_text
        return self._run(lambda x: fn(x.to(self.device_, non_blocking=True), normalize=self.normalize), batch)


class SentenceTransformerEncoder(TorchEncoder):
    """A sentence-transformers model (hub name or local folder): texts -> ``n x d`` float32.

    The id names a local folder by the sha256 of its files, a hub name by its name.
    """

    kind = "sentence-transformers"
    modality = "text"

    def __init__(self, model: str, normalize: bool = False, device: str | None = "auto",
                 precision: str = "auto") -> None:
        super().__init__(device, precision)
        self.model = model
        self.normalize = bool(normalize)
        self._id: str | None = None

    def _build(self) -> None:
        if self._model is not None:
            return
        import sentence_transformers

        local = Path(self.model).expanduser()
        try:
            model = sentence_transformers.SentenceTransformer(str(local) if local.is_dir() else self.model,
                                                              device=self.device_)
        except Exception as exc:  # hub / network / file errors come in many types
            raise _load_failed(f"sentence-transformers:{self.model}", exc) from None
        model.eval()
        weights = f"folder-sha256={file_digest(local)[:16]}" if local.is_dir() else f"hub={self.model}"
        self._id = (f"sentence-transformers:{weights}|normalize={self.normalize}|"
                    f"max_seq_length={model.max_seq_length}|sentence-transformers={sentence_transformers.__version__}")
        self._model = model

    @property
    def dim(self) -> int:
        self._build()
        get = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(get())

    def forward(self, batch: list[str]) -> np.ndarray:
        import torch

        self._build()
        with torch.inference_mode():
            from mlcil.encoders.base import autocast

            with autocast(self.device_, self.precision):
                out = self._model.encode(list(batch), batch_size=max(len(batch), 1), convert_to_numpy=True,
                                         normalize_embeddings=self.normalize, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)
