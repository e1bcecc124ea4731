"""The Learner base class: the contract of docs/learners/contract.md, validation, persistence.

Subclasses implement ``_learn``, ``scores`` (and optionally ``proba``, ``_forget``).
The base class keeps what every learner shares and nothing else: parameter handling
(scikit-learn style: ``get_params(deep=True)``, ``set_params``, so ``sklearn.base.clone``
works), frozen parameters once a learner has learned, input checks that run *before* any
state changes, a name registry, and atomic, versioned save/load of the learned attributes
(names ending in ``_``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import importlib.util
import inspect
import json
import os
import secrets
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from mlcil.version import __version__
from mlcil.data.dataset import check_features, check_labels
from mlcil.decide.calibration import sigmoid
from mlcil.errors import MlcilError, NotFittedError
from mlcil.protocols.session import Session
from mlcil.ridge.model import DEFAULT_THRESHOLD  # the one decision threshold (the service's too)

#: ``format`` field of the header that :meth:`Learner.save` writes.
FILE_FORMAT = "mlcil-learner"
#: Version of the learner file layout. Bump it when the layout changes; :meth:`Learner.load`
#: reads every version from 0 (files written before versioning, same layout) to this one.
FORMAT_VERSION = 1



class Registry(Mapping):
    """Registry name -> Learner class. Learners that need an optional dependency (PyTorch) are
    listed by module and imported on first use, so ``import mlcil`` works without them and asking
    for one without its dependency says what to install."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}
        self._lazy: dict[str, tuple[str, str, str]] = {}  # name -> (module, class, extra)

    def add(self, name: str, cls: type) -> None:
        self._classes[name] = cls
        self._lazy.pop(name, None)

    def add_lazy(self, name: str, module: str, cls: str, extra: str = "torch") -> None:
        """Register ``name`` to be imported from ``module`` when first asked for."""
        if name not in self._classes:
            self._lazy[name] = (module, cls, extra)

    def needs(self, name: str) -> str | None:
        """The optional extra a registered but not yet importable learner needs (None when importable)."""
        if name in self._classes:
            return None
        module, _, extra = self._lazy[name]
        root = "torch" if extra == "torch" else module
        try:
            return None if importlib.util.find_spec(root) is not None else extra
        except (ImportError, ValueError):
            return extra

    def available(self) -> list[str]:
        """Names whose learner imports on this installation (sorted)."""
        return sorted(n for n in self if self.needs(n) is None)

    def __getitem__(self, name: str) -> type:
        if name in self._classes:
            return self._classes[name]
        if name not in self._lazy:
            raise KeyError(name)
        module, cls, extra = self._lazy[name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "torch":
                raise MlcilError(f"learner {name!r} needs PyTorch, which is not installed: pip install 'mlcil[{extra}]' "
                                 f"(the closed-form learners analytic, joint, prototype and lda need no torch)") from None
            raise
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._classes, *self._lazy}))

    def __len__(self) -> int:
        return len({*self._classes, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._classes or name in self._lazy


REGISTRY = Registry()


def register(name: str):
    """Class decorator: make a Learner available under a lower-case registry name."""

    def wrap(cls):
        cls.name = name
        REGISTRY.add(name, cls)
        return cls

    return wrap


class Learner:
    """Base class of every mlcil learner.

    Contract: ``learn(X, Y, classes)`` (or ``learn(session)``) once per session; ``scores(X)``,
    ``proba(X)`` and ``predict(X)`` return n × len(classes_) arrays whose columns follow ``classes_``
    (the class names or ids as learned); ``forget(classes)``; ``save(path)`` / ``Learner.load(path)``.
    """

    name: ClassVar[str] = "learner"
    #: True for upper bounds that must see all labels (the harness passes ``Stream.joint_session``).
    needs_full_labels: ClassVar[bool] = False
    #: True when training is a sum of per-row statistics that a non-local engine (:mod:`mlcil.engines`)
    #: may accumulate over blocks of rows on other processes or machines.
    distributable: ClassVar[bool] = False
    #: True for learners that compute with PyTorch tensors (the gradient heads): their saved
    #: tensors load back as tensors; every other learner's load as NumPy arrays.
    uses_torch: ClassVar[bool] = False
    #: The engine of the ``learn`` call in progress (None outside one: local).
    _engine = None
    _names = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every subclass's ``scores`` and ``proba`` raise :class:`NotFittedError` before ``learn``,
        whatever state they touch first."""
        super().__init_subclass__(**kwargs)
        for method in ("scores", "proba"):
            fn = cls.__dict__.get(method)
            if fn is not None and not hasattr(fn, "__wrapped_fitted__"):
                setattr(cls, method, _requires_fit(fn))

    #: Parameters that may change after the first ``learn`` (``set_params`` or assignment).
    #: Every other parameter defines the learned frame (feature map, shapes, how statistics
    #: were gathered) and is frozen once the learner holds learned state: a new parameter is
    #: frozen unless a learner lists it here. A changed ``device`` moves the state's tensors.
    mutable_params: ClassVar[frozenset[str]] = frozenset({"device"})

    # ---- parameters (scikit-learn style) -------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        """The constructor's parameters, in signature order (scikit-learn's convention)."""
        sig = inspect.signature(cls.__init__)
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must name its parameters (no *args/**kwargs)")
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters as stored; with ``deep``, also ``name__sub`` entries of nested estimators."""
        out: dict[str, Any] = {}
        for key in self._param_names():
            value = getattr(self, key)
            out[key] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{key}__{sub}": v for sub, v in value.get_params(deep=True).items()})
        return out

    def set_params(self, **params: Any) -> "Learner":
        """Set constructor parameters (``name__sub`` for a nested estimator's); returns self.

        Everything is checked before anything is set. Once the learner has learned, a parameter
        outside :attr:`mutable_params` may only be set to its learned value (MlcilError otherwise).
        """
        valid = self._param_names()
        own: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            head, sep, sub = key.partition("__")
            if head not in valid:
                raise MlcilError(f"{self.name}: unknown parameter {head!r}; expected one of {sorted(valid)}")
            if sep:
                if not hasattr(getattr(self, head), "set_params"):
                    raise MlcilError(f"{self.name}: parameter {head!r} has no parameters of its own (got {key!r})")
                nested.setdefault(head, {})[sub] = value
            else:
                own[key] = value
        self._check_frozen(own)
        for head, sub_params in nested.items():
            target = own.get(head, getattr(self, head))
            check = getattr(target, "_check_frozen", None)
            if check is not None:
                check({k: v for k, v in sub_params.items() if "__" not in k})
        for key, value in own.items():
            setattr(self, key, value)
        for head, sub_params in nested.items():
            getattr(self, head).set_params(**sub_params)
        self._sync_mutable()
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = [
            f"{k}={v!r}" for k, v in self.get_params(deep=False).items() if sig.parameters[k].default is not v
            and sig.parameters[k].default != v
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    # ---- frozen parameters ---------------------------------------------------------------
    @classmethod
    def frozen_params(cls) -> list[str]:
        """Parameters that cannot change once the learner has learned (all but :attr:`mutable_params`)."""
        return [p for p in cls._param_names() if p not in cls.mutable_params]

    def _has_learned(self) -> bool:
        """True once the learner holds learned state (a session learned, loaded, or a frame set)."""
        return self.is_fitted or bool(self._state_names())

    def _learned_params(self) -> dict[str, Any] | None:
        """The parameter values the learned state was built with (None before any state)."""
        if not self._has_learned():
            return None
        if "_params_learned" not in vars(self):  # state set from outside (e.g. Analytic.spawn)
            self._params_learned = _copy_params(self.get_params(deep=False))
        return self._params_learned

    def _check_frozen(self, proposed: dict[str, Any] | None = None) -> None:
        """Refuse a frozen parameter that differs from its learned value.

        ``proposed``: values about to be set (default: the current attributes, which catches
        direct assignment such as ``learner.M = 32``).
        """
        learned = self._learned_params()
        if learned is None:
            return
        proposed = self.get_params(deep=False) if proposed is None else proposed
        for key in self.frozen_params():
            if key in proposed and key in learned and not _same(proposed[key], learned[key]):
                raise MlcilError(
                    f"{self.name}: parameter {key!r} cannot change after learning: this learner learned with "
                    f"{key}={learned[key]!r} (given: {proposed[key]!r}), and its state is built on it. Create a "
                    f"new learner with the new value (e.g. sklearn.base.clone(learner).set_params({key}=...)) "
                    f"and learn from the first session again"
                )

    def _sync_mutable(self) -> None:
        """Apply changed mutable parameters to the learned state (``device``: move tensors)."""
        learned = self._learned_params()
        if learned is None:
            return
        current = self.get_params(deep=False)
        changed = [k for k in self.mutable_params if k in current and not _same(current[k], learned.get(k))]
        if "device" in changed:
            device = _resolve_device(current["device"])
            for key, value in list(vars(self).items()):
                setattr(self, key, _to_device(value, device))
        for key in changed:
            learned[key] = _copy_params({key: current[key]})[key]

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
    def learn(self, X, Y=None, classes=None, *, index=None, label_embeddings=None, engine=None) -> "Learner":
        """Learn one session: the rows ``X`` with labels ``Y`` for the session's new ``classes``.

        ``X``: n×d float features (ndarray or CSR); ``Y``: n×k 0/1 labels, column j for ``classes[j]``;
        ``classes``: k new class labels — names (str) or ints; default: the next k integers. Every class
        not in ``classes`` is *absent* for these rows (unknown, not negative). A :class:`Session` may be
        given instead of ``X`` (then nothing else). ``index``: one id per row (learners that remember
        examples by id); ``label_embeddings``: k×d embedded class names (a name prior, where the learner
        has one).

        Input is validated before any state changes, and a failure while learning (e.g. a numerical
        error) restores the learner's previous state. A frozen parameter changed since the first
        session (see :attr:`mutable_params`) is an error. ``engine``: where the full-data passes run:
        None or 'local' (this process), 'ray', or an :class:`mlcil.engines.Engine`; only
        ``distributable`` learners accept a non-local one.
        """
        from mlcil.engines import resolve_engine

        session = self._as_session(X, Y, classes, index, label_embeddings)
        self._check_frozen()
        self._sync_mutable()
        X, Y, classes = self._check_session(session)
        engine = resolve_engine(engine)
        if not engine.local and not self.distributable:
            raise MlcilError(f"{self.name} cannot be distributed: its training is sequential gradient descent; "
                             "use engine='local'")
        before = dict(vars(self))  # _learn assigns new objects, so a shallow copy restores
        # per-call context for _learn, never state: the engine, and the session's label-name embeddings
        self._engine, self._names = engine, getattr(session, "label_embeddings", None)
        try:
            if "_params_learned" not in vars(self):  # the values the state is built with
                self._params_learned = _copy_params(self.get_params(deep=False))
            self._learn(X, Y, classes)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise
        finally:
            vars(self).pop("_engine", None)
            vars(self).pop("_names", None)
        return self

    def _as_session(self, X, Y, classes, index, label_embeddings) -> Session:
        """``learn``'s arguments as a Session (a Session passes through)."""
        if isinstance(X, Session):
            if Y is not None or classes is not None or index is not None or label_embeddings is not None:
                raise MlcilError(f"{self.name}: learn(session) takes the session alone; its X, Y, classes, index "
                                 "and label_embeddings are the session's")
            return X
        if Y is None:
            raise MlcilError(f"{self.name}: learn expects X and Y (n×k labels of the session's classes), or a Session;"
                             f" got X of type {type(X).__name__} and no Y")
        Y = np.asarray(Y) if not sp.issparse(Y) else Y.toarray()
        if Y.ndim == 1:
            raise MlcilError(f"{self.name}: Y: expected n×k 0/1 labels (one column per class), got a 1-d array of "
                             f"shape {Y.shape}; for one class pass Y.reshape(-1, 1)")
        if classes is None:
            known = self.classes_
            if known.size and known.dtype.kind not in "iu":
                raise MlcilError(f"{self.name}: classes: this learner's classes are names "
                                 f"({known[:3].tolist()}...): name the new ones, learn(X, Y, classes=[...])")
            start = int(known.max()) + 1 if known.size else 0
            classes = np.arange(start, start + (Y.shape[1] if Y.ndim == 2 else 0))
        t = len(getattr(self, "session_classes_", ()))
        return Session(X, Y, as_classes(classes, f"{self.name}: classes"), index, t, label_embeddings)

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        raise NotImplementedError

    def scores(self, X) -> np.ndarray:
        """n × len(classes_) ranking scores (higher = more likely)."""
        raise NotImplementedError

    def proba(self, X) -> np.ndarray:
        """n × len(classes_) probabilities in [0, 1]; default: sigmoid of ``scores``."""
        return sigmoid(self.scores(X))

    def predict_proba(self, X) -> np.ndarray:
        """n × len(classes_) calibrated probabilities (the same as :meth:`proba`)."""
        return self.proba(X)

    def decision_function(self, X) -> np.ndarray:
        """n × len(classes_) ranking scores (the same as :meth:`scores`; scikit-learn's name)."""
        return self.scores(X)

    @property
    def decision_thresholds_(self) -> np.ndarray:
        """Per-class thresholds on probabilities that :meth:`predict` applies: the learner's own
        (``thresholds_``, e.g. F1-optimal on leave-one-out scores) where it has them, else
        :data:`DEFAULT_THRESHOLD`."""
        own = getattr(self, "thresholds_", None)
        if own is not None and len(own) == len(self.classes_):
            return np.asarray(own, dtype=np.float64)
        return np.full(len(self.classes_), DEFAULT_THRESHOLD)

    def predict(self, X, threshold: float | None = None) -> np.ndarray:
        """n × len(classes_) 0/1 label sets (uint8): probability ≥ ``threshold``, or ≥ each class's
        own threshold (:attr:`decision_thresholds_`) when None. Columns follow ``classes_``."""
        P = self.proba(X)
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
                raise MlcilError(f"{self.name}: threshold: expected a probability in [0, 1] or None, got {threshold!r}")
            t = np.full(P.shape[1], float(threshold))
        else:
            t = self.decision_thresholds_
        return (P >= t[None, :]).astype(np.uint8)

    # scikit-learn's verbs: fit = learn one session from scratch, partial_fit = learn the next session
    def fit(self, X, Y, classes=None, **kwargs) -> "Learner":
        """Forget everything learned, then learn one session (scikit-learn's ``fit``)."""
        self._reset()
        return self.learn(X, Y, classes, **kwargs)

    def partial_fit(self, X, Y, classes=None, **kwargs) -> "Learner":
        """Learn the next session (new classes) on top of what is learned (scikit-learn's ``partial_fit``)."""
        return self.learn(X, Y, classes, **kwargs)

    def __sklearn_tags__(self):
        """scikit-learn's estimator tags: a multi-label classifier on dense or sparse 2-d input (scikit-learn
        ≥ 1.6 asks for them in ``clone``-free tooling such as ``cross_val_predict``)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True, two_d_labels=True,
                                                                       multi_output=True, single_output=False),
                    classifier_tags=ClassifierTags(multi_class=False, multi_label=True),
                    input_tags=InputTags(sparse=True), non_deterministic=False)

    def _reset(self) -> None:
        """Drop every learned attribute, keeping the constructor's parameters."""
        params = set(self._param_names())
        for key in list(vars(self)):
            if key not in params:
                delattr(self, key)

    def forget(self, classes) -> "Learner":
        """Drop ``classes`` (names or ids as in ``classes_``); exact where the learner allows it."""
        if not self.is_fitted:
            raise NotFittedError(f"{self.name}: not fitted yet, nothing to forget; call learn(X, Y) first")
        classes = as_classes(np.atleast_1d(np.asarray(classes)), f"{self.name}: forget: classes")
        if classes.dtype.kind != self.classes_.dtype.kind and not (
                classes.dtype.kind in "iu" and self.classes_.dtype.kind in "iu"):
            raise MlcilError(f"{self.name}: forget: classes {classes.tolist()} are not of the learner's kind "
                             f"({'names' if self.classes_.dtype.kind == 'U' else 'ids'}: {self.classes_[:5].tolist()})")
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
        """Validated rows to score; :class:`NotFittedError` before the first ``learn``."""
        if not self.is_fitted:
            raise NotFittedError(f"{self.name}: not fitted yet; call learn(X, Y) first")
        d = getattr(self, "n_features_", None)
        return check_features(X, f"{self.name}: {name}", d=d)

    def _check_session(self, session: Session):
        if not isinstance(session, Session):
            raise MlcilError(f"{self.name}: learn expects X and Y, or a mlcil Session; got {type(session).__name__}")
        classes = as_classes(session.classes, f"{self.name}: session.classes")
        X = check_features(session.X, f"{self.name}: session.X", d=getattr(self, "n_features_", None))
        Y = check_labels(session.Y, f"{self.name}: session.Y", n=X.shape[0], L=len(classes))
        if X.shape[0] == 0:
            raise MlcilError(f"{self.name}: session {session.t} is empty (0 examples)")
        if len(classes) == 0:
            raise MlcilError(f"{self.name}: session {session.t} introduces no class")
        if len(np.unique(classes)) != len(classes):
            raise MlcilError(f"{self.name}: session.classes contains duplicates")
        known = self.classes_
        if known.size and (known.dtype.kind == "U") != (classes.dtype.kind == "U") and not self.needs_full_labels:
            raise MlcilError(f"{self.name}: session.classes {classes[:3].tolist()}...: this learner's classes are "
                             f"{'names' if known.dtype.kind == 'U' else 'integer ids'} ({known[:3].tolist()}...); "
                             "use the same kind for every session")
        if not self.needs_full_labels:
            again = np.intersect1d(classes, known) if known.dtype.kind == classes.dtype.kind else []
            if len(again):
                raise MlcilError(
                    f"{self.name}: session {session.t} re-introduces classes {list(again)} learned before; "
                    "a session must bring new classes"
                )
        return X, Y, classes

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write parameters and learned state to one ``.npz`` file (no pickle); returns ``path``.

        Atomic: the file is written beside ``path`` under a temporary name, flushed to disk and
        renamed over ``path``, so a crash mid-write leaves the previous file (or none) in place,
        never a truncated one (only a hidden ``.<name>.<pid>.<random>.tmp`` may stay behind).
        The header names the file format and its version (:data:`FORMAT_VERSION`).
        """
        if not self.is_fitted:
            raise NotFittedError(f"{self.name}: not fitted yet, nothing to save; call learn(session) first")
        self._check_frozen()
        path = Path(path)
        arrays: dict[str, np.ndarray] = {"_classes": self.classes_}
        meta: dict[str, Any] = {}
        for key in self._state_names():
            _flatten(key, getattr(self, key), arrays, meta)
        header = {"format": FILE_FORMAT, "format_version": FORMAT_VERSION, "mlcil_version": __version__,
                  "class": type(self).__name__, "name": self.name, "params": self.get_params(deep=False),
                  "meta": meta}
        arrays["__header__"] = np.array(json.dumps(header, default=_json_default))
        _write_atomic(path, arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Learner":
        """Read a learner written by :meth:`save`; works from the base class or the subclass.

        Refuses, with an MlcilError naming the file, a file that is not an mlcil learner, a
        corrupt or truncated one, and one written in a newer or unknown format version.
        """
        path = Path(path)
        if not path.exists():
            raise MlcilError(f"load: no such file: {path}")
        header, arrays = _read_learner_file(path)
        target = REGISTRY.get(header["name"])
        if target is None or (cls is not Learner and not issubclass(target, cls)):
            raise MlcilError(f"load: {path} holds a {header['class']!r} learner, not {cls.__name__}")
        try:
            learner = target(**header["params"])
        except TypeError as exc:
            raise MlcilError(f"load: {path}: its parameters do not fit this mlcil's {target.__name__} ({exc}); "
                             f"it was written by mlcil {header.get('mlcil_version', '< 0.1')}") from None
        try:
            learner._classes = as_classes(arrays.pop("_classes"), f"load: {path}: classes")
            state = _unflatten(arrays, header["meta"], tensors=target.uses_torch)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MlcilError(f"load: {path} is corrupt: its learned state is incomplete ({type(exc).__name__}: "
                             f"{exc})") from None
        for key, value in state.items():
            setattr(learner, key, value)
        learner._params_learned = _copy_params(learner.get_params(deep=False))
        learner._after_load()
        return learner

    def _after_load(self) -> None:
        """Hook for subclasses to move tensors to their device after ``load``."""


def _requires_fit(fn):
    """Wrap a scoring method so that an unfitted learner raises NotFittedError first."""

    @functools.wraps(fn)
    def checked(self, *args, **kwargs):
        if not self.is_fitted:
            raise NotFittedError(f"{self.name}: not fitted yet; call learn(session) first")
        return fn(self, *args, **kwargs)

    checked.__wrapped_fitted__ = True
    return checked


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temporary file in ``path``'s folder, fsync, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX; not possible on Windows)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_learner_file(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a learner file, or an MlcilError saying why it cannot be one."""
    not_ours = f"load: {path} is not an mlcil learner file"
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):
            raise MlcilError(f"{not_ours} (a single .npy array)")
        with z:
            if "__header__" not in z.files:
                raise MlcilError(f"{not_ours} (an .npz without the learner header)")
            text = str(z["__header__"])
            arrays = {k: z[k] for k in z.files if k != "__header__"}
    except MlcilError:
        raise
    except Exception as exc:  # zipfile, zlib, pickle refusal, EOF: a truncated or foreign file
        raise MlcilError(f"{not_ours}, or it is corrupt or truncated (numpy cannot read it: "
                         f"{type(exc).__name__}: {exc})") from None
    try:
        header = json.loads(text)
    except ValueError:
        raise MlcilError(f"load: {path} is corrupt: its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise MlcilError(f"{not_ours} (its header is not a JSON object)")
    fmt = header.get("format")
    if fmt is None and {"class", "name", "params", "meta"} <= set(header):
        version = 0  # written before files carried a format; same layout as version 1
    elif fmt == FILE_FORMAT:
        version = header.get("format_version")
    else:
        raise MlcilError(f"{not_ours} (format {fmt!r}, expected {FILE_FORMAT!r})")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= FORMAT_VERSION:
        written = header.get("mlcil_version", "unknown")
        raise MlcilError(
            f"load: {path} is in learner file format version {version!r} (written by mlcil {written}); this mlcil "
            f"{__version__} reads format versions 0 to {FORMAT_VERSION}: upgrade mlcil to load it"
        )
    missing = [k for k in ("class", "name", "params", "meta") if k not in header]
    if missing or not isinstance(header["params"], dict) or not isinstance(header["meta"], dict):
        raise MlcilError(f"load: {path} is corrupt: its header lacks {missing or 'a valid params/meta'}")
    if "_classes" not in arrays:
        raise MlcilError(f"load: {path} is corrupt: no '_classes' array")
    return header, arrays


def _same(a: Any, b: Any) -> bool:
    """Parameter equality that never raises: 2048 == 2048.0, but True != 1 and arrays compare unequal."""
    if a is b:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    try:
        return bool(a == b)
    except Exception:
        return False


def _copy_params(params: dict[str, Any]) -> dict[str, Any]:
    """Deep copies of parameter values, except estimators (kept by reference, as clone would see them)."""
    return {k: v if hasattr(v, "get_params") else copy.deepcopy(v) for k, v in params.items()}


#: longest class name accepted (characters)
MAX_CLASS_NAME = 256


def as_classes(classes, what: str) -> np.ndarray:
    """Class labels as a 1-d array: int64 ids, or names (a NumPy str array). Clear errors otherwise."""
    arr = np.asarray(classes)
    if arr.ndim != 1:
        raise MlcilError(f"{what}: expected a 1-d list of class names or ids, got shape {np.asarray(classes).shape}")
    if arr.size == 0 or arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "O" and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in arr):
        return arr.astype(np.int64)
    if arr.dtype.kind in "UO" and all(isinstance(c, str) for c in arr.tolist()):
        names = [str(c) for c in arr.tolist()]
        bad = [c for c in names if not c.strip() or len(c) > MAX_CLASS_NAME]
        if bad:
            raise MlcilError(f"{what}: class names must be non-empty strings of at most {MAX_CLASS_NAME} characters, "
                             f"got {bad[0][:40]!r}")
        return np.array(names, dtype=str)
    raise MlcilError(f"{what}: expected class names (str) or integer ids, got {arr.dtype} values "
                     f"{arr[:3].tolist()}")


def _is_tensor(value: Any) -> bool:
    """True for a torch tensor; never imports torch (a tensor exists only if torch was imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _resolve_device(device: Any):
    """``'auto'``/None -> CUDA when available, else CPU; anything else as torch reads it."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _to_device(value: Any, device: Any) -> Any:
    """``value`` with every tensor in it (also inside dicts, lists and tuples) moved to ``device``."""
    if _is_tensor(value):
        return value.to(_resolve_device(device))
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_to_device(v, device) for v in value)
    return value


def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if _is_tensor(value):
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
    if _is_tensor(value):
        arrays[key] = value.detach().cpu().numpy()
        meta[key] = {"kind": "tensor", "dtype": str(value.dtype).replace("torch.", "")}
    elif isinstance(value, np.ndarray):
        arrays[key] = value
        meta[key] = {"kind": "array"}
    elif isinstance(value, dict):
        meta[key] = {"kind": "dict", "keys": list(value)}
        for sub, item in value.items():
            _flatten(f"{key}.{sub}", item, arrays, meta)
    elif isinstance(value, list) and value and all(isinstance(v, (np.ndarray, dict)) or _is_tensor(v) for v in value):
        meta[key] = {"kind": "list", "len": len(value)}
        for i, item in enumerate(value):
            _flatten(f"{key}.{i}", item, arrays, meta)
    else:
        meta[key] = {"kind": "json", "value": value}


def _unflatten(arrays: dict, meta: dict, tensors: bool = True) -> dict:
    """Learned state from :func:`_flatten`'s arrays; entries saved from torch tensors come back as
    tensors when ``tensors`` (a learner that computes with torch), else as NumPy arrays (files written
    while the closed-form learners still kept torch tensors load without torch)."""
    def build(key):
        info = meta[key]
        kind = info["kind"]
        if kind == "tensor":
            if not tensors:
                return arrays[key]
            import torch

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
