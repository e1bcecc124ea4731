"""Sufficient statistics of ridge regression, immutable and exactly additive.

For rows with features φ_i (D), labels y_i (C) and weights w_i: G = Σ w φφᵀ (D×D), B = Σ w φyᵀ (D×C),
n = number of rows. Statistics of disjoint blocks add: learning block by block, on one machine or
many, equals one pass over the union (up to float64 rounding of the sum order); subtracting a
block's statistics removes it exactly. All sums are float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlcil.errors import MlcilError
from mlcil.ridge.features import FeatureMap


@dataclass(frozen=True)
class Stats:
    """G (D×D float64), B (D×C float64), n rows. Never mutated: operations return new objects."""

    G: torch.Tensor
    B: torch.Tensor
    n: int = 0

    @staticmethod
    def zeros(D: int, C: int = 0, device: str | torch.device = "cpu") -> "Stats":
        return Stats(torch.zeros(D, D, dtype=torch.float64, device=device),
                     torch.zeros(D, C, dtype=torch.float64, device=device), 0)

    @property
    def D(self) -> int:
        return int(self.G.shape[0])

    @property
    def C(self) -> int:
        return int(self.B.shape[1])

    @property
    def nbytes(self) -> int:
        return (self.G.numel() + self.B.numel()) * 8

    def _check(self, other: "Stats", verb: str) -> None:
        if not isinstance(other, Stats):
            raise MlcilError(f"statistics: cannot {verb} {type(other).__name__}")
        if other.G.shape != self.G.shape or other.B.shape != self.B.shape:
            raise MlcilError(f"statistics: cannot {verb} shapes G {tuple(other.G.shape)}, B {tuple(other.B.shape)} "
                             f"and G {tuple(self.G.shape)}, B {tuple(self.B.shape)}")

    def __add__(self, other: "Stats") -> "Stats":
        self._check(other, "add")
        return Stats(self.G + other.G.to(self.G.device), self.B + other.B.to(self.B.device), self.n + other.n)

    def __sub__(self, other: "Stats") -> "Stats":
        self._check(other, "subtract")
        return Stats(self.G - other.G.to(self.G.device), self.B - other.B.to(self.B.device), self.n - other.n)

    def select(self, columns) -> "Stats":
        """Keep these label columns of B (a boolean mask or indices); G and n are unchanged."""
        idx = torch.as_tensor(np.flatnonzero(columns) if np.asarray(columns).dtype == bool else columns,
                              dtype=torch.long, device=self.B.device)
        return Stats(self.G, self.B.index_select(1, idx), self.n)

    def with_columns(self, B_new: torch.Tensor) -> "Stats":
        """Append label columns (D×k) to B."""
        return Stats(self.G, torch.cat([self.B, B_new.to(self.B)], dim=1), self.n)

    def to(self, device: str | torch.device) -> "Stats":
        return Stats(self.G.to(device), self.B.to(device), self.n)


def statistics(phi: torch.Tensor, Y: torch.Tensor, weights: torch.Tensor | None = None,
               precision: str = "float64", gram: bool = True):
    """(G, B) = (Φᵀ diag(w) Φ, Φᵀ diag(w) Y) of one block, in float64. Φ n×D, Y n×C, w n.

    ``precision='float64'`` multiplies in float64; ``'float32'`` multiplies in float32 (about twice
    as fast on CPU) and returns float64, so sums over blocks and the solve stay float64.
    ``gram=False`` skips G (returned as None).
    """
    dtype = torch.float64 if precision == "float64" else torch.float32
    phi_ = phi.to(dtype)
    wphi = phi_ if weights is None else phi_ * weights.to(dtype)[:, None]
    G = (wphi.T @ phi_).to(torch.float64) if gram else None
    return G, (wphi.T @ Y.to(dtype)).to(torch.float64)


def partial_statistics(fmap: FeatureMap, X, Y, weights: np.ndarray | None = None, precision: str = "float64",
                       gram: bool = True) -> Stats:
    """Statistics of rows X (n×d, dense or CSR) with labels Y (n×C, 0/1 or soft) and optional weights (n).

    Pure and engine-free: the function any engine maps over blocks before summing the results
    (:func:`tree_sum`). Chunked internally (bounded memory). ``gram=False`` leaves G as zeros of
    shape 0×0 (only B is wanted, e.g. pseudo-labels).
    """
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise MlcilError(f"statistics: Y must be n×C with n = {X.shape[0]} rows, got shape {Y.shape}")
    dev = fmap.device
    G = torch.zeros(fmap.D, fmap.D, dtype=torch.float64, device=dev) if gram else torch.zeros(0, 0, dtype=torch.float64)
    B = torch.zeros(fmap.D, Y.shape[1], dtype=torch.float64, device=dev)
    for rows, phi in fmap.chunks(X):
        y = torch.as_tensor(np.asarray(Y[rows], dtype=np.float32), device=dev)
        w = None if weights is None else torch.as_tensor(np.asarray(weights[rows], dtype=np.float64), device=dev)
        g, b = statistics(phi, y, w, precision, gram)
        if gram:
            G += g
        B += b
    return Stats(G, B, int(X.shape[0]))


def tree_sum(parts: list[Stats]) -> Stats:
    """Σ parts by pairwise (tree) reduction in list order: O(log k) depth, a fixed summation order."""
    if not parts:
        raise MlcilError("statistics: nothing to sum")
    level = list(parts)
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


def imbalance_weights(Y: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Per-example weights against class imbalance (L3A's weighting idea).

    w_i = mean over i's positive classes c of n_c^(−power), where n_c = positives of c;
    rows with no positive get the mean weight; normalised to mean 1. Y n×C -> n.
    """
    counts = np.maximum(Y.sum(axis=0), 1).astype(np.float64)
    per_class = counts ** (-power)
    npos = Y.sum(axis=1)
    w = (Y @ per_class) / np.maximum(npos, 1)
    w[npos == 0] = w[npos > 0].mean() if (npos > 0).any() else 1.0
    return w / w.mean()
