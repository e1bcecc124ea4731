"""The model a service process answers predictions with: the library's :class:`~mlcil.ridge.RidgeModel`
solved once per published version, plus the service's label registry and version.

A :class:`Model` is built from a :class:`~mlcil.serve.state.ModelState` off the request path (the
refresher, :mod:`mlcil.serve.refresher`) and then only read. Scores, probabilities and decisions
are the ridge model's (φ(x)ᵀW; per-label Platt maps, :data:`mlcil.ridge.DEFAULT_PLATT` for a
label without its own; thresholds, :data:`mlcil.ridge.DEFAULT_THRESHOLD` for a label without its
own). What is the service's own: label names and ids, the version, and top-k decisions by name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mlcil import ridge
from mlcil.decide.calibration import apply_platt
from mlcil.ridge import DEFAULT_PLATT, DEFAULT_THRESHOLD
from mlcil.serve.state import Label, ModelState


def calibration_of(labels: tuple[Label, ...]) -> dict[str, np.ndarray]:
    """Platt parameters {'a', 'b'} (C,) of the labels; a label not calibrated yet gets :data:`DEFAULT_PLATT`."""
    ab = np.array([lab.platt or DEFAULT_PLATT for lab in labels], dtype=np.float64).reshape(-1, 2)
    return {"a": ab[:, 0].copy(), "b": ab[:, 1].copy()}


def thresholds_of(labels: tuple[Label, ...]) -> np.ndarray:
    """(C,) decision thresholds; :data:`DEFAULT_THRESHOLD` for a label without its own."""
    return np.array([DEFAULT_THRESHOLD if lab.threshold is None else lab.threshold for lab in labels],
                    dtype=np.float64)


@dataclass(frozen=True)
class Model:
    """An immutable, solved model at ``version``: ``ridge`` (None before the embedding dimension is known)
    over the columns ``labels``."""

    version: int
    labels: tuple[Label, ...]
    ridge: ridge.RidgeModel | None
    lam: float
    n_examples: int
    built_at: float = field(default_factory=time.monotonic)

    @staticmethod
    def empty() -> "Model":
        """Version 0: no label, no dimension."""
        return Model(0, (), None, 1.0, 0)

    @staticmethod
    def build(state: ModelState, fmap: ridge.FeatureMap | None) -> "Model":
        """Solve W = (G + λI)⁻¹B (Cholesky; least squares if not positive definite) with the labels'
        calibration and thresholds."""
        solved = None
        if state.stats is not None and fmap is not None:
            solved = ridge.RidgeModel.solve(fmap, state.stats, state.lam, calibration_of(state.labels),
                                            thresholds_of(state.labels))
        return Model(state.version, state.labels, solved, state.lam, state.n_examples)

    @property
    def names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    @property
    def fmap(self) -> ridge.FeatureMap | None:
        return None if self.ridge is None else self.ridge.fmap

    @property
    def W(self) -> np.ndarray | None:
        """D×C float64 weights (None before the dimension is known)."""
        return None if self.ridge is None else self.ridge.W

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Ridge scores φ(x)ᵀW, n×C (zeros before the first example)."""
        if self.ridge is None or not self.labels:
            return np.zeros((X.shape[0], len(self.labels)), dtype=np.float32)
        return self.ridge.scores(X)

    def proba(self, S: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of scores S (n×C)."""
        if self.ridge is None:  # no dimension yet: the labels' maps on the (zero) scores
            c = calibration_of(self.labels)
            return apply_platt(np.asarray(S, dtype=np.float64), c["a"], c["b"])
        return self.ridge.proba_from_scores(S)

    def decide(self, P: np.ndarray, threshold: float | None = None, top_k: int | None = None) -> list[list[str]]:
        """Label names per row: the ``top_k`` most probable, else P ≥ ``threshold``, else P ≥ each label's own."""
        names = self.names
        if top_k is not None:
            order = np.argsort(-P, axis=1, kind="stable")[:, :min(int(top_k), len(names))]
            return [[names[j] for j in row] for row in order]
        if self.ridge is None:
            t = np.full(len(names), float(threshold)) if threshold is not None else thresholds_of(self.labels)
            chosen = P >= t
        else:
            chosen = self.ridge.decide(P, threshold)
        return [[names[j] for j in np.flatnonzero(row)] for row in chosen]

