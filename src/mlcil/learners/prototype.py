"""``Prototype``: SimpleCIL's class-mean (prototype) classifier with cosine scores."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mlcil.decide.calibration import apply_platt, fit_platt
from mlcil.engines import resolve_engine
from mlcil.errors import MlcilError
from mlcil.learners.base import Learner, as_classes, register
from mlcil.ridge import check_budget, rows_per_chunk


def row_sums(X, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Sufficient statistics of one batch of rows (float64).

    Returns (S, counts, total, n): S = Xᵀ Y (d×k, per-class sums of positive rows),
    counts = positives per class (k,), total = Σ rows (d,), n = number of rows.
    """
    Yf = np.asarray(Y, dtype=np.float64)
    if sp.issparse(X):
        S = np.asarray((X.T @ sp.csr_matrix(Yf)).todense(), dtype=np.float64)
        total = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
    else:
        X64 = np.asarray(X, dtype=np.float64)
        S, total = X64.T @ Yf, X64.sum(axis=0)
    return S, Yf.sum(axis=0), total, int(X.shape[0])


def _unit(A: np.ndarray, axis: int) -> np.ndarray:
    norm = np.linalg.norm(A, axis=axis, keepdims=True)
    return A / np.where(norm > 1e-12, norm, 1.0)


@register("prototype")
class Prototype(Learner):
    """Prototype classifier of SimpleCIL (Zhou et al., "Revisiting Class-Incremental Learning with
    Pre-Trained Models: Generalizability and Adaptivity are All You Need", 2023, IJCV 2024).

    SimpleCIL freezes a pre-trained encoder and replaces the classifier with the class
    means (prototypes) of the embeddings, scored by cosine similarity. Multi-label form:
    the prototype of class c is the mean of the examples where c is positive, and

        score_c(x) = cos(x − m, μ_c − m)

    where m is the mean of every row fed so far (``center=True``; SimpleCIL uses raw
    embeddings, ``center=False``). Centring removes the direction shared by all embeddings,
    which otherwise dominates cosines of non-negative features.

    State: per-class sums (d×C, float64) and counts, the sum and count of all rows. They
    only grow by addition, so learning session by session gives the same prototypes as
    one fit on the union of the same rows and partial labels (up to float64 rounding).
    ``forget`` drops a class's sums exactly (m keeps every row fed).

    ``proba``: per-class Platt scaling fitted on the introducing session's own rows (the
    only rows where the class's label is known); with ``center=True`` an old class's
    scores can shift as m moves, so its calibration is approximate.

    Args:
        center: subtract the running mean of all rows before the cosine.
        prior: β, weight of the name prior: a session's ``label_embeddings`` (one row per new class,
            its embedded name) count as β pseudo-positives of their class: sums += β e_c, counts += β.
            :meth:`learn_names` adds classes from their names alone (prototype = e_c). 0 = off.

    >>> import numpy as np
    >>> from mlcil.protocols import Session
    >>> X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.8]], dtype=np.float32)
    >>> Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    >>> model = Prototype(center=False).learn(Session(X, Y, np.array([3, 5]), np.arange(4)))
    >>> print(model.scores(np.array([[1.0, 0.0]])).round(3))
    [[0.999 0.055]]
    """
    mutable_params = frozenset({"prior"})  # the name prior weighs each later session; every other parameter is frozen

    distributable = True  # row_sums over blocks, through the engine of learn(session, engine=...)

    def __init__(self, center: bool = True, prior: float = 1.0) -> None:
        self.center = center
        self.prior = prior

    def _name_sums(self, k: int, d: int) -> tuple[np.ndarray, np.ndarray]:
        """(β Eᵀ, β·1): the name pseudo-positives of this session's k classes (zeros without names)."""
        E = getattr(self, "_names", None)
        if isinstance(self.prior, bool) or not isinstance(self.prior, (int, float)) or not self.prior >= 0:
            raise MlcilError(f"{self.name}: prior must be a weight >= 0, got {self.prior!r}")
        if E is None or not float(self.prior) > 0:
            return np.zeros((d, k)), np.zeros(k)
        E = np.asarray(E, dtype=np.float64)
        if E.shape != (k, d) or not np.isfinite(E).all():
            raise MlcilError(f"{self.name}: label_embeddings: expected {k}×{d} finite values (one row per new "
                             f"class), got shape {E.shape}")
        return float(self.prior) * E.T, np.full(k, float(self.prior))

    def learn_names(self, classes, label_embeddings) -> "Prototype":
        """Add classes known only by name (zero-shot): each prototype is its name's embedding.

        Platt scaling is fitted on the names' own scores (each positive for its class only).
        """
        from mlcil.data.dataset import check_features

        if not self.is_fitted:
            raise MlcilError(f"{self.name}: learn_names needs a learned first session")
        classes = as_classes(np.atleast_1d(np.asarray(classes)), f"{self.name}: learn_names classes")
        if len(classes) == 0 or len(np.unique(classes)) != len(classes) or np.isin(classes, self.classes_).any():
            raise MlcilError(f"{self.name}: learn_names expects new, distinct classes, got {classes.tolist()}")
        E = check_features(np.asarray(label_embeddings, dtype=np.float32), f"{self.name}: label_embeddings",
                           d=self.n_features_)
        self._names = E
        try:
            S, counts = self._name_sums(len(classes), self.n_features_)
        finally:
            self.__dict__.pop("_names", None)
        if not counts.any():
            raise MlcilError(f"{self.name}: learn_names needs prior > 0, got {self.prior}")
        self.sums_ = np.hstack([self.sums_, S])
        self.counts_ = np.concatenate([self.counts_, counts])
        self._classes = np.concatenate([self.classes_, classes])
        a, b = fit_platt(self.scores(E)[:, -len(classes):], np.eye(len(classes), dtype=np.uint8))
        self.platt_a_ = np.concatenate([self.platt_a_, a])
        self.platt_b_ = np.concatenate([self.platt_b_, b])
        return self

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        d, C = X.shape[1], len(self.classes_) + Y.shape[1]
        check_budget(self.name, {f"class sums ({d} features × {C} classes, float64)": 2 * d * C * 8}, hint="")
        S, counts, total, n = resolve_engine(self._engine).accumulate(row_sums, X, Y, desc="class sums")
        S_names, n_names = self._name_sums(len(classes), X.shape[1])
        S, counts = S + S_names, counts + n_names
        if not self.is_fitted:
            self.n_features_ = X.shape[1]
            self.sums_ = np.zeros((X.shape[1], 0))
            self.counts_ = np.zeros(0)
            self.total_ = np.zeros(X.shape[1])
            self.n_rows_ = 0
            self.platt_a_, self.platt_b_ = np.zeros(0), np.zeros(0)
        self.sums_ = np.hstack([self.sums_, S])
        self.counts_ = np.concatenate([self.counts_, counts])
        self.total_ = self.total_ + total
        self.n_rows_ += n
        self._classes = np.concatenate([self.classes_, classes])
        a, b = fit_platt(self.scores(X)[:, -len(classes):], Y)
        self.platt_a_ = np.concatenate([self.platt_a_, a])
        self.platt_b_ = np.concatenate([self.platt_b_, b])

    def prototypes(self) -> np.ndarray:
        """d×C class means (float64); a class without a positive example has a zero prototype."""
        return self.sums_ / np.maximum(self.counts_, 1.0)

    def scores(self, X, chunk: int | None = None) -> np.ndarray:
        X = self._check_X(X)
        m = self.total_ / max(self.n_rows_, 1) if self.center else np.zeros(self.n_features_)
        P = self.prototypes() - m[:, None]
        P = _unit(np.where(self.counts_ > 0, P, 0.0), axis=0)
        out = np.empty((X.shape[0], P.shape[1]), dtype=np.float32)
        step = chunk or rows_per_chunk(self.n_features_)
        if sp.issparse(X):  # cos(x − m, p) from sparse products: x − m is never formed
            mP, mm = m @ P, float(m @ m)
            for start in range(0, X.shape[0], step):
                rows = sp.csr_matrix(X[start:start + step], dtype=np.float64)
                xx = np.asarray(rows.multiply(rows).sum(axis=1)).ravel()
                norm = np.sqrt(np.maximum(xx - 2 * (rows @ m) + mm, 0.0))
                out[start:start + step] = (np.asarray(rows @ P) - mP) / np.where(norm > 1e-12, norm, 1.0)[:, None]
            return out
        for start in range(0, X.shape[0], step):
            Z = np.asarray(X[start:start + step], dtype=np.float64) - m
            out[start:start + step] = _unit(Z, axis=1) @ P
        return out

    def proba(self, X) -> np.ndarray:
        return apply_platt(self.scores(X), self.platt_a_, self.platt_b_)

    def _forget(self, keep: np.ndarray) -> None:
        self.sums_, self.counts_ = self.sums_[:, keep], self.counts_[keep]
        self.platt_a_, self.platt_b_ = self.platt_a_[keep], self.platt_b_[keep]
