"""Sufficient statistics of ridge regression, immutable and exactly additive.

For rows with features φ_i (D), labels y_i (C) and weights w_i: G = Σ w φφᵀ (D×D), B = Σ w φyᵀ (D×C),
n = number of rows. Statistics of disjoint blocks add: learning block by block, on one machine or
many, equals one pass over the union (up to float64 rounding of the sum order); subtracting a
block's statistics removes it exactly. All sums are float64.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcil.errors import MlcilError
from mlcil.ridge.features import FeatureMap, _torch


@dataclass(frozen=True)
class Stats:
    """G (D×D float64), B (D×C float64), n rows. Never mutated: operations return new objects.

    G may be 0×0 when only B was accumulated (``gram=False``).
    """

    G: np.ndarray
    B: np.ndarray
    n: int = 0

    def __post_init__(self) -> None:
        G = np.asarray(self.G, dtype=np.float64)
        B = np.asarray(self.B, dtype=np.float64)
        if G.ndim != 2 or G.shape[0] != G.shape[1]:
            raise MlcilError(f"statistics: G must be a square D×D array, got shape {G.shape}")
        if B.ndim != 2 or (G.shape[0] and B.shape[0] != G.shape[0]):
            raise MlcilError(f"statistics: B must be D×C with D = {G.shape[0]} (G's size), got shape {B.shape}")
        object.__setattr__(self, "G", G)
        object.__setattr__(self, "B", B)
        object.__setattr__(self, "n", int(self.n))

    @staticmethod
    def zeros(D: int, C: int = 0, device: Any = None) -> "Stats":
        """Empty statistics (n = 0). ``device`` is accepted for compatibility: statistics live on the host."""
        return Stats(np.zeros((D, D)), np.zeros((D, C)), 0)

    @property
    def D(self) -> int:
        return int(self.B.shape[0])

    @property
    def C(self) -> int:
        return int(self.B.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.G.nbytes + self.B.nbytes)

    def _check(self, other: "Stats", verb: str) -> None:
        if not isinstance(other, Stats):
            raise MlcilError(f"statistics: cannot {verb} {type(other).__name__}")
        if other.G.shape != self.G.shape or other.B.shape != self.B.shape:
            raise MlcilError(f"statistics: cannot {verb} shapes G {tuple(other.G.shape)}, B {tuple(other.B.shape)} "
                             f"and G {tuple(self.G.shape)}, B {tuple(self.B.shape)}")

    def __add__(self, other: "Stats") -> "Stats":
        self._check(other, "add")
        return Stats(self.G + other.G, self.B + other.B, self.n + other.n)

    def __sub__(self, other: "Stats") -> "Stats":
        self._check(other, "subtract")
        return Stats(self.G - other.G, self.B - other.B, self.n - other.n)

    def select(self, columns) -> "Stats":
        """Keep these label columns of B (a boolean mask or indices); G and n are unchanged."""
        columns = np.asarray(columns)
        idx = np.flatnonzero(columns) if columns.dtype == bool else columns.astype(np.int64).ravel()
        return Stats(self.G, self.B[:, idx], self.n)

    def with_columns(self, B_new: np.ndarray) -> "Stats":
        """Append label columns (D×k) to B."""
        B_new = np.asarray(B_new, dtype=np.float64)
        if B_new.ndim != 2 or B_new.shape[0] != self.D:
            raise MlcilError(f"statistics: new columns must be D×k with D = {self.D}, got shape {B_new.shape}")
        return Stats(self.G, np.concatenate([self.B, B_new], axis=1), self.n)

    def to(self, device: Any = "cpu") -> "Stats":
        """The same statistics (kept for compatibility: statistics always live on the host as NumPy)."""
        return self


def statistics(phi: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None,
               precision: str = "float64", gram: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """(G, B) = (Φᵀ diag(w) Φ, Φᵀ diag(w) Y) of one block, in float64. Φ n×D, Y n×C, w n.

    ``precision='float64'`` multiplies in float64; ``'float32'`` multiplies in float32 (about twice
    as fast on CPU) and returns float64, so sums over blocks and the solve stay float64.
    ``gram=False`` skips G (returned as None). A torch tensor Φ (e.g. :meth:`FeatureMap.on_device`)
    is multiplied on its device; the result is NumPy either way.
    """
    if precision not in ("float64", "float32"):
        raise MlcilError(f"precision: expected 'float64' or 'float32', got {precision!r}")
    torch = sys.modules.get("torch")  # a tensor can only come from a caller that imported torch
    if torch is not None and isinstance(phi, torch.Tensor):
        G, B = _torch_statistics(phi, Y, weights, precision, gram)
        return (None if G is None else G.cpu().numpy()), B.cpu().numpy()
    dtype = np.float64 if precision == "float64" else np.float32
    phi = np.asarray(phi)
    Y = np.asarray(Y)
    if weights is None:
        phi_, Y_ = phi.astype(dtype, copy=False), Y.astype(dtype, copy=False)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if not (w >= 0).all():  # negative weights: Φᵀ(wΦ) as a general product
            wphi = np.multiply(phi, w[:, None], dtype=dtype)
            G = np.asarray(wphi.T @ phi.astype(dtype, copy=False), dtype=np.float64) if gram else None
            return G, np.asarray(wphi.T @ Y.astype(dtype, copy=False), dtype=np.float64)
        # G = (√w Φ)ᵀ(√w Φ): one symmetric rank-k product (syrk), half the work of a general one
        r = np.sqrt(w).astype(dtype)[:, None]
        phi_, Y_ = np.multiply(phi, r, dtype=dtype), np.multiply(Y, r, dtype=dtype)
    G = np.asarray(phi_.T @ phi_, dtype=np.float64) if gram else None  # numpy computes AᵀA by syrk
    return G, np.asarray(phi_.T @ Y_, dtype=np.float64)


def _torch_statistics(phi, Y, weights, precision: str, gram: bool):
    """(G, B) as float64 torch tensors on Φ's device (the GPU path of :func:`statistics`)."""
    torch = _torch()
    dev = phi.device
    dtype = torch.float64 if precision == "float64" else torch.float32
    phi = phi.to(dtype)
    wphi = phi if weights is None else phi * torch.as_tensor(np.asarray(weights), dtype=dtype, device=dev)[:, None]
    Yt = torch.as_tensor(np.asarray(Y, dtype=np.float32), device=dev).to(dtype)
    G = (wphi.T @ phi).to(torch.float64) if gram else None
    return G, (wphi.T @ Yt).to(torch.float64)


def partial_statistics(fmap: FeatureMap, X, Y, weights: np.ndarray | None = None, precision: str = "float64",
                       gram: bool = True) -> Stats:
    """Statistics of rows X (n×d, dense or CSR) with labels Y (n×C, 0/1 or soft) and optional weights (n).

    Pure and engine-free: the function any engine maps over blocks before summing the results
    (:func:`tree_sum`). Chunked internally (bounded memory). ``gram=False`` leaves G as zeros of
    shape 0×0 (only B is wanted, e.g. pseudo-labels). On a GPU map (``fmap.device`` not 'cpu') φ and
    the products run on the device; the result is NumPy either way.
    """
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise MlcilError(f"statistics: Y must be n×C with n = {X.shape[0]} rows, got shape {Y.shape}")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (X.shape[0],):
            raise MlcilError(f"statistics: weights must have shape ({X.shape[0]},), got {weights.shape}")
    if fmap.device != "cpu":
        return _device_statistics(fmap, X, Y, weights, precision, gram, fmap.device)
    G = np.zeros((fmap.D, fmap.D)) if gram else np.zeros((0, 0))
    B = np.zeros((fmap.D, Y.shape[1]))
    for rows, phi in fmap.chunks(X):
        g, b = statistics(phi, np.asarray(Y[rows], dtype=np.float32), None if weights is None else weights[rows],
                          precision, gram)
        if gram:
            G += g
        B += b
    return Stats(G, B, int(X.shape[0]))


def _device_statistics(fmap: FeatureMap, X, Y: np.ndarray, weights: np.ndarray | None, precision: str,
                       gram: bool, device: Any) -> Stats:
    """:func:`partial_statistics` with φ and the products in torch on ``device`` (the GPU path)."""
    if precision not in ("float64", "float32"):
        raise MlcilError(f"precision: expected 'float64' or 'float32', got {precision!r}")
    torch = _torch()
    dev = torch.device(device)
    G = torch.zeros(fmap.D, fmap.D, dtype=torch.float64, device=dev) if gram else None
    B = torch.zeros(fmap.D, Y.shape[1], dtype=torch.float64, device=dev)
    step = fmap.chunk_rows()
    for start in range(0, X.shape[0], step):
        rows = slice(start, min(start + step, X.shape[0]))
        g, b = _torch_statistics(fmap.on_device(X[rows], dev), Y[rows], None if weights is None else weights[rows],
                                 precision, gram)
        if gram:
            G += g
        B += b
    return Stats(np.zeros((0, 0)) if G is None else G.cpu().numpy(), B.cpu().numpy(), int(X.shape[0]))


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
