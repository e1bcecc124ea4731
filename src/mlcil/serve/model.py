"""The service's model: one ridge system over random features, updated batch by batch.

φ(x) = ReLU(x̂ᵀR) ⊕ x̂ (⊕ x̂ only when ``include_x``), x̂ = x / ‖x‖, R d×M Gaussian (seeded).
Statistics over every taught example: G = Σ φφᵀ (D×D, D = M [+ d]) and B[:, c] = Σ φ·[c positive]
(D×C; absent and explicit negatives both count as 0: the ``negative`` label-absence strategy,
DESIGN.md §3.1). Weights W = (G + λI)⁻¹B are solved lazily, once per model version.

A :class:`ModelState` is immutable once published: every update returns a new state, so a
reader holding one always sees one consistent version (no torn reads). Updates are pure and
deterministic (same inputs, same float operations in the same order), which is what lets any
process rebuild a version bit for bit from the database's log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from mlcil import ridge


@dataclass(frozen=True)
class FeatureConfig:
    """Fixed at service creation. d: embedding dimension; M: random features; lam: ridge λ."""

    d: int
    M: int = 1024
    seed: int = 0
    lam: float = 1.0
    include_x: bool = True

    @property
    def D(self) -> int:
        """Feature dimension: M, plus d when ``include_x``."""
        return self.M + (self.d if self.include_x else 0)


class FeatureMap:
    """φ for one :class:`FeatureConfig`: the ridge core's map with unit-norm rows (R built once, float32, CPU)."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self.R = ridge.gaussian_projection(config.d, config.M, config.seed, torch.device("cpu"))
        self._map = ridge.FeatureMap(self.R, "l2", include_x=config.include_x)

    def __call__(self, X: np.ndarray) -> torch.Tensor:
        """X n×d (float32, finite) -> Φ n×D float32. Zero rows stay zero (no division by 0)."""
        return self._map(np.ascontiguousarray(X, dtype=np.float32))


@dataclass
class ModelState:
    """Statistics at one model version. G D×D float64, B D×C float64, columns = ``label_ids``.

    Treat as immutable: :func:`apply_teach` and friends return new states.
    """

    version: int
    G: torch.Tensor
    B: torch.Tensor
    label_ids: tuple[int, ...]
    n_examples: int
    label_names: tuple[str, ...] = ()
    thresholds: tuple[float | None, ...] = ()
    lam: float | None = None  # ridge λ chosen after creation (set_lambda); None = the configured one
    _W: torch.Tensor | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def empty(D: int) -> "ModelState":
        """Version 0: no example, no label."""
        return ModelState(0, torch.zeros(D, D, dtype=torch.float64), torch.zeros(D, 0, dtype=torch.float64), (), 0)

    def with_stats(self, version: int, G: torch.Tensor, B: torch.Tensor, n_examples: int) -> "ModelState":
        """A new state at ``version`` with the same labels and new statistics."""
        return ModelState(version, G, B, self.label_ids, n_examples, self.label_names, self.thresholds, self.lam)

    def weights(self, lam: float) -> torch.Tensor:
        """W = (G + λI)⁻¹B (D×C float64), solved once per state (Cholesky), then cached."""
        with self._lock:
            if self._W is None:
                if self.B.shape[1] == 0:
                    self._W = torch.zeros_like(self.B)
                else:
                    self._W = ridge.ridge_solve(self.G, self.B, lam)
            return self._W

    def nbytes(self) -> int:
        """Bytes held by G and B (the state the service keeps besides its log)."""
        return self.G.numel() * 8 + self.B.numel() * 8


def label_matrix(known: list[dict[int, int]], label_ids: tuple[int, ...]) -> torch.Tensor:
    """n×C float64 targets: 1 where the label is a known positive, else 0 (absent or negative)."""
    col = {lid: j for j, lid in enumerate(label_ids)}
    Y = torch.zeros(len(known), len(label_ids), dtype=torch.float64)
    for i, labels in enumerate(known):
        for lid, value in labels.items():
            if value and lid in col:
                Y[i, col[lid]] = 1.0
    return Y


def batch_statistics(fmap: FeatureMap, X: np.ndarray, known: list[dict[int, int]],
                     label_ids: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ΦᵀΦ, ΦᵀY) in float64 of one batch: X n×d, known = per-row {label id: 0/1}."""
    phi = fmap(X)
    return ridge.statistics(phi, label_matrix(known, label_ids), precision="float64")


def apply_teach(state: ModelState, version: int, fmap: FeatureMap, X: np.ndarray,
                known: list[dict[int, int]]) -> ModelState:
    """New state at ``version``: G += ΦᵀΦ, B += ΦᵀY for one taught batch."""
    if state.G.shape[0] != fmap.config.D:  # first examples ever: the dimension was unknown until now
        if state.n_examples:
            raise ValueError(f"feature dimension changed from {state.G.shape[0]} to {fmap.config.D}")
        D = fmap.config.D
        state = state.with_stats(state.version, torch.zeros(D, D, dtype=torch.float64),
                                 torch.zeros(D, state.B.shape[1], dtype=torch.float64), 0)
    g, b = batch_statistics(fmap, X, known, state.label_ids)
    return state.with_stats(version, state.G + g, state.B + b, state.n_examples + len(known))


def apply_forget_examples(state: ModelState, version: int, fmap: FeatureMap, X: np.ndarray,
                          known: list[dict[int, int]]) -> ModelState:
    """New state at ``version`` without these examples: G −= ΦᵀΦ, B −= ΦᵀY (exact up to rounding)."""
    g, b = batch_statistics(fmap, X, known, state.label_ids)
    return state.with_stats(version, state.G - g, state.B - b, state.n_examples - len(known))


def apply_create_label(state: ModelState, version: int, label_id: int, name: str,
                       threshold: float | None) -> ModelState:
    """New state at ``version`` with a zero column for a new label (no example yet)."""
    B = torch.cat([state.B, torch.zeros(state.B.shape[0], 1, dtype=torch.float64)], dim=1)
    return ModelState(version, state.G, B, state.label_ids + (label_id,), state.n_examples,
                      state.label_names + (name,), state.thresholds + (threshold,), state.lam)


def apply_forget_label(state: ModelState, version: int, label_id: int) -> ModelState:
    """New state at ``version`` without the label's B column (exact: G does not depend on labels)."""
    keep = [j for j, lid in enumerate(state.label_ids) if lid != label_id]
    return ModelState(version, state.G, state.B[:, keep].clone(), tuple(state.label_ids[j] for j in keep),
                      state.n_examples, tuple(state.label_names[j] for j in keep),
                      tuple(state.thresholds[j] for j in keep), state.lam)


def apply_set_threshold(state: ModelState, version: int, label_id: int, threshold: float | None) -> ModelState:
    """New state at ``version`` where one label decides at ``threshold`` (None = the default)."""
    thresholds = tuple(threshold if lid == label_id else t for lid, t in zip(state.label_ids, state.thresholds))
    return ModelState(version, state.G, state.B, state.label_ids, state.n_examples, state.label_names, thresholds,
                      state.lam)


def apply_set_lambda(state: ModelState, version: int, lam: float) -> ModelState:
    """New state at ``version`` solved with ridge λ = ``lam`` from now on."""
    return ModelState(version, state.G, state.B, state.label_ids, state.n_examples, state.label_names,
                      state.thresholds, float(lam))


def scores(state: ModelState, fmap: FeatureMap, lam: float, X: np.ndarray) -> np.ndarray:
    """Ridge scores φ(x)ᵀW, n×C float64 ndarray (≈1 for positives, ≈0 otherwise; not probabilities)."""
    if not state.label_ids or state.G.shape[0] != fmap.config.D:  # no label, or no example taught yet
        return np.zeros((X.shape[0], len(state.label_ids)))
    W = state.weights(state.lam if state.lam is not None else lam)
    return (fmap(X).to(torch.float64) @ W).numpy()
