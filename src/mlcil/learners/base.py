"""The Learner base class: the contract of DESIGN.md §2, validation, persistence.

Subclasses implement ``_learn``, ``scores`` (and optionally ``proba``, ``_forget``).
The base class keeps what every learner shares and nothing else: parameter handling
(scikit-learn style), input checks that run *before* any state changes, a name
registry, and save/load of the learned attributes (names ending in ``_``).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from mlcil.data.dataset import check_features, check_labels
from mlcil.decide.calibration import sigmoid
from mlcil.errors import MlcilError
from mlcil.protocols.session import Session

REGISTRY: dict[str, type["Learner"]] = {}


def register(name: str):
    """Class decorator: make a Learner available under a lower-case registry name."""

    def wrap(cls):
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return wrap


class Learner:
    """Base class of every mlcil learner.

    Contract: ``learn(session)`` once per session; ``scores(X)`` and ``proba(X)`` return
    n × len(classes_) arrays whose columns follow ``classes_`` (global class ids);
    ``forget(classes)``; ``save(path)`` / ``Learner.load(path)``.
    """

    name: ClassVar[str] = "learner"
    #: True for upper bounds that must see all labels (the harness passes ``Stream.joint_session``).
    needs_full_labels: ClassVar[bool] = False
    #: True when training is a sum of per-row statistics that a non-local engine (:mod:`mlcil.engines`)
    #: may accumulate over blocks of rows on other processes or machines.
    distributable: ClassVar[bool] = False
    #: The engine of the ``learn`` call in progress (None outside one: local).
    _engine = None
    _names = None

    # ---- parameters (scikit-learn style) -------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def set_params(self, **params: Any) -> "Learner":
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise MlcilError(f"{self.name}: unknown parameter {key!r}; expected one of {sorted(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = [
            f"{k}={v!r}" for k, v in self.get_params().items() if sig.parameters[k].default is not v
            and sig.parameters[k].default != v
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    # ---- state ---------------------------------------------------------------------------
    @property
    def classes_(self) -> np.ndarray:
        return getattr(self, "_classes", np.zeros(0, dtype=np.int64))

    @property
    def is_fitted(self) -> bool:
        return len(self.classes_) > 0

    def _state_names(self) -> list[str]:
        return sorted(k for k in vars(self) if k.endswith("_") and not k.startswith("__"))

    @property
    def state_bytes(self) -> int:
        """Bytes of learned state (arrays and tensors); exemplar buffers included."""
        total = 0
        for key in self._state_names():
            total += _nbytes(getattr(self, key))
        return total + self.classes_.nbytes

    # ---- the contract --------------------------------------------------------------------
    def learn(self, session: Session, engine=None) -> "Learner":
        """Learn one session. Input is validated before any state changes, and a failure while
        learning (e.g. a numerical error) restores the learner's previous state.

        ``engine``: where the full-data passes run: None or 'local' (this process), 'ray', or an
        :class:`mlcil.engines.Engine`; only ``distributable`` learners accept a non-local one.
        """
        from mlcil.engines import resolve_engine

        X, Y, classes = self._check_session(session)
        engine = resolve_engine(engine)
        if not engine.local and not self.distributable:
            raise MlcilError(f"{self.name} cannot be distributed: its training is sequential gradient descent; "
                             "use engine='local'")
        before = dict(vars(self))  # _learn assigns new objects, so a shallow copy restores
        # per-call context for _learn, never state: the engine, and the session's label-name embeddings
        self._engine, self._names = engine, getattr(session, "label_embeddings", None)
        try:
            self._learn(X, Y, classes)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise
        finally:
            vars(self).pop("_engine", None)
            vars(self).pop("_names", None)
        return self

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        raise NotImplementedError

    def scores(self, X) -> np.ndarray:
        """n × len(classes_) ranking scores (higher = more likely)."""
        raise NotImplementedError

    def proba(self, X) -> np.ndarray:
        """n × len(classes_) probabilities in [0, 1]; default: sigmoid of ``scores``."""
        return sigmoid(self.scores(X))

    def forget(self, classes) -> "Learner":
        """Drop ``classes`` (global ids); exact where the learner allows it."""
        classes = np.atleast_1d(np.asarray(classes, dtype=np.int64))
        unknown = np.setdiff1d(classes, self.classes_)
        if unknown.size:
            raise MlcilError(f"{self.name}: forget: classes {unknown.tolist()} were never learned")
        keep = ~np.isin(self.classes_, classes)
        self._forget(keep)
        self._classes = self.classes_[keep]
        return self

    def _forget(self, keep: np.ndarray) -> None:
        raise MlcilError(f"{self.name}: forgetting classes is not supported by this learner")

    # ---- validation ----------------------------------------------------------------------
    def _check_X(self, X, name: str = "X"):
        d = getattr(self, "n_features_", None)
        X = check_features(X, f"{self.name}: {name}", d=d)
        if not self.is_fitted:
            raise MlcilError(f"{self.name}: not fitted yet; call learn(session) first")
        return X

    def _check_session(self, session: Session):
        if not isinstance(session, Session):
            raise MlcilError(f"{self.name}: learn expects a mlcil Session, got {type(session).__name__}")
        classes = np.asarray(session.classes, dtype=np.int64).ravel()
        X = check_features(session.X, f"{self.name}: session.X", d=getattr(self, "n_features_", None))
        Y = check_labels(session.Y, f"{self.name}: session.Y", n=X.shape[0], L=len(classes))
        if X.shape[0] == 0:
            raise MlcilError(f"{self.name}: session {session.t} is empty (0 examples)")
        if len(classes) == 0:
            raise MlcilError(f"{self.name}: session {session.t} introduces no class")
        if len(np.unique(classes)) != len(classes):
            raise MlcilError(f"{self.name}: session.classes contains duplicates")
        if not self.needs_full_labels:
            again = np.intersect1d(classes, self.classes_)
            if again.size:
                raise MlcilError(
                    f"{self.name}: session {session.t} re-introduces classes {again.tolist()} learned before; "
                    "a session must bring new classes"
                )
        return X, Y, classes

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write parameters and learned state to one ``.npz`` file (no pickle)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {"_classes": self.classes_}
        meta: dict[str, Any] = {}
        for key in self._state_names():
            _flatten(key, getattr(self, key), arrays, meta)
        header = {"class": type(self).__name__, "name": self.name, "params": self.get_params(), "meta": meta}
        arrays["__header__"] = np.array(json.dumps(header, default=_json_default))
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Learner":
        """Read a learner written by :meth:`save`; works from the base class or the subclass."""
        path = Path(path)
        if not path.exists():
            raise MlcilError(f"load: no such file: {path}")
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["__header__"]))
            arrays = {k: z[k] for k in z.files if k != "__header__"}
        target = REGISTRY.get(header["name"])
        if target is None or (cls is not Learner and not issubclass(target, cls)):
            raise MlcilError(f"load: {path} holds a {header['class']!r} learner, not {cls.__name__}")
        learner = target(**header["params"])
        learner._classes = arrays.pop("_classes").astype(np.int64)
        state = _unflatten(arrays, header["meta"])
        for key, value in state.items():
            setattr(learner, key, value)
        learner._after_load()
        return learner

    def _after_load(self) -> None:
        """Hook for subclasses to move tensors to their device after ``load``."""


def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if sp.issparse(value):
        return value.data.nbytes + value.indices.nbytes + value.indptr.nbytes
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


def _flatten(key: str, value, arrays: dict, meta: dict) -> None:
    """Store arrays/tensors (also inside dicts and lists) in ``arrays``; JSON values in ``meta``."""
    if isinstance(value, torch.Tensor):
        arrays[key] = value.detach().cpu().numpy()
        meta[key] = {"kind": "tensor", "dtype": str(value.dtype).replace("torch.", "")}
    elif isinstance(value, np.ndarray):
        arrays[key] = value
        meta[key] = {"kind": "array"}
    elif isinstance(value, dict):
        meta[key] = {"kind": "dict", "keys": list(value)}
        for sub, item in value.items():
            _flatten(f"{key}.{sub}", item, arrays, meta)
    elif isinstance(value, list) and value and all(isinstance(v, (np.ndarray, torch.Tensor, dict)) for v in value):
        meta[key] = {"kind": "list", "len": len(value)}
        for i, item in enumerate(value):
            _flatten(f"{key}.{i}", item, arrays, meta)
    else:
        meta[key] = {"kind": "json", "value": value}


def _unflatten(arrays: dict, meta: dict) -> dict:
    def build(key):
        info = meta[key]
        kind = info["kind"]
        if kind == "tensor":
            return torch.from_numpy(arrays[key].copy()).to(getattr(torch, info["dtype"]))
        if kind == "array":
            return arrays[key]
        if kind == "dict":
            return {sub: build(f"{key}.{sub}") for sub in info["keys"]}
        if kind == "list":
            return [build(f"{key}.{i}") for i in range(info["len"])]
        return info["value"]

    return {key: build(key) for key in meta if "." not in key}


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a learner header")
