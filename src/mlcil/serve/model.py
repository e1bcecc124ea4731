"""The model a service process answers predictions with: W solved once per published version.

A :class:`Model` is built from a :class:`~mlcil.serve.state.ModelState` off the request path (the
background refresher of :mod:`mlcil.serve.service`) and then only read: scores φ(x)ᵀW, calibrated
probabilities (per-label Platt maps, :mod:`mlcil.decide.calibration`), decisions. It is the
library's model: :func:`to_learner` turns it into an :class:`~mlcil.learners.Analytic` learner
(strategy 'negative') whose ``scores`` and ``proba`` equal the service's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from mlcil import ridge
from mlcil.decide.calibration import apply_platt
from mlcil.serve.state import DEFAULT_PLATT, Label, ModelState, ServiceFeatureMap

#: decision threshold on probabilities of a label without its own
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Model:
    """An immutable, solved model at ``version``. W is D×C float64 (None before the dimension is known)."""

    version: int
    labels: tuple[Label, ...]
    fmap: ServiceFeatureMap | None
    W: torch.Tensor | None
    lam: float
    n_examples: int
    built_at: float = field(default_factory=time.monotonic)

    @staticmethod
    def build(state: ModelState, fmap: ServiceFeatureMap | None) -> "Model":
        """Solve W = (G + λI)⁻¹B (Cholesky; least squares if not positive definite)."""
        W = None
        if state.stats is not None and fmap is not None:
            if state.stats.C:
                W = ridge.ridge_solve(state.stats.G, state.stats.B, state.lam)
            else:
                W = torch.zeros(state.stats.D, 0, dtype=torch.float64)
        return Model(state.version, state.labels, fmap, W, state.lam, state.n_examples)

    @property
    def names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    @property
    def platt(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) per label; labels not calibrated yet get :data:`DEFAULT_PLATT`."""
        ab = np.array([lab.platt or DEFAULT_PLATT for lab in self.labels], dtype=np.float64).reshape(-1, 2)
        return ab[:, 0], ab[:, 1]

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([DEFAULT_THRESHOLD if lab.threshold is None else lab.threshold for lab in self.labels])

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Ridge scores φ(x)ᵀW, n×C float64 (zeros before the first example)."""
        if self.W is None or not self.labels:
            return np.zeros((X.shape[0], len(self.labels)))
        phi = self.fmap(np.ascontiguousarray(X, dtype=np.float32)).to(torch.float64)
        return (phi @ self.W).numpy()

    def proba(self, S: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of scores S (n×C)."""
        a, b = self.platt
        return apply_platt(S, a, b)

    def decide(self, P: np.ndarray, threshold: float | None = None, top_k: int | None = None) -> list[list[str]]:
        """Label names per row: the ``top_k`` most probable, else P ≥ ``threshold``, else P ≥ each label's own."""
        names = self.names
        if top_k is not None:
            order = np.argsort(-P, axis=1, kind="stable")[:, :min(int(top_k), len(names))]
            return [[names[j] for j in row] for row in order]
        t = np.full(len(names), float(threshold)) if threshold is not None else self.thresholds
        return [[names[j] for j in np.flatnonzero(row >= t)] for row in P]


def to_learner(state: ModelState, fmap: ServiceFeatureMap, model: Model, seed: int = 0):
    """The service's model as an ``Analytic`` learner (strategy 'negative', Platt calibration).

    One session holding every label (global class ids = label ids); its ``scores`` and ``proba``
    equal the service's; save it with ``learner.save(path)`` and read it with ``Learner.load``.
    """
    from mlcil.learners.analytic import Analytic

    if state.stats is None or model.W is None:
        raise ValueError("the model has no example yet: nothing to export")
    ids = np.array(state.label_ids, dtype=np.int64)
    learner = Analytic(M=fmap.M, include_x=fmap.include_x, scaling=fmap.scaling, strategy="negative",
                       calibration="platt", seed=int(seed))
    learner.n_features_ = fmap.d
    learner.include_x_ = fmap.include_x
    learner.scaling_ = fmap.scaling
    learner.shift_, learner.scale_ = fmap.shift, fmap.scale
    learner.R_ = fmap.R
    learner.lambda_, learner.alpha_ = float(state.lam), 1.0
    learner.G_, learner.B_ = [state.stats.G.clone()], [state.stats.B.clone()]
    learner.session_classes_ = [ids.tolist()]
    learner.session_rows_ = [state.n_examples]
    a, b = model.platt
    learner.calibration_ = {"a": a.copy(), "b": b.copy()}
    learner.thresholds_ = model.thresholds
    learner.W_ = model.W.clone()
    learner._classes = ids  # the learner's class ids (what Learner.load restores)
    return learner
