"""λ and per-class calibration of a ridge model from closed-form leave-one-out scores.

Given the statistics (G, B) of every row and a sample of those rows (φ and targets), each sampled
row is scored by the model fitted without it — (ŷ − h·y)/(1 − h), no refit
(:func:`mlcil.ridge.loo_scores`). λ (when a grid is given) maximises the leave-one-out mAP of the
evenly spaced rows of the sample over the grid (one eigendecomposition for the whole grid,
:func:`mlcil.ridge.choose_lambda`); each class's Platt map is fitted on the leave-one-out scores at
that λ (:func:`mlcil.decide.calibration.fit_platt`) with weights that make the sample stand for all
rows (positives of rare classes over-sampled, then weighted down: :func:`sample_weights`).

Pure functions over arrays (NumPy): no storage, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlcil.decide.calibration import fit_platt
from mlcil.errors import MlcilError
from mlcil.ridge.solve import Factor, choose_lambda, eigh, loo_path_scores

#: a class gets its own Platt map once it has this many positives and this many other rows
MIN_ROWS_PER_SIDE = 2


@dataclass(frozen=True)
class Calibration:
    """λ used; Platt (a, b) per column of B (None where too few rows); the λ grid searched and its
    leave-one-out mAPs (empty when λ was given)."""

    lam: float
    platt: list[tuple[float, float] | None]
    lambdas: list[float]
    loo_map: list[float]


def sample_weights(Y: np.ndarray, positives: np.ndarray, n_total: int) -> np.ndarray:
    """n×C float64 weights so that, per class c, the sampled positives weigh ``positives[c]`` in all and
    the sampled other rows ``n_total − positives[c]`` (post-stratification of a sample that
    over-represents positives).

    Args:
        Y: n×C 0/1 targets of the sampled rows. positives: (C,) positives per class among all rows.
        n_total: number of rows the sample stands for.
    """
    Y = np.asarray(Y, dtype=bool)
    positives = np.asarray(positives, dtype=np.float64)
    pos_in = np.maximum(Y.sum(axis=0), 1)
    neg_in = np.maximum((~Y).sum(axis=0), 1)
    neg_all = np.maximum(n_total - positives, 0)
    return np.where(Y, positives / pos_in, neg_all / neg_in).astype(np.float64)


def calibrate(G: np.ndarray, B: np.ndarray, phi: np.ndarray, Y: np.ndarray, even: np.ndarray,
              positives: np.ndarray, n_total: int, lam: float, lambdas=None) -> Calibration:
    """λ (chosen from ``lambdas`` when given, else ``lam``) and a Platt map per column of B.

    Args:
        G, B: statistics of all ``n_total`` rows (D×D, D×C float64).
        phi: m×D features of sampled rows (rows that are inside G and B); Y: m×C 0/1 targets of them.
        even: (m,) bool, the rows of the evenly spaced sample (λ is scored on these only).
        positives: (C,) known positives per class among all ``n_total`` rows.
        lam: λ used when ``lambdas`` is None (or fewer than 3 evenly spaced rows).
        lambdas: grid of λ > 0 to choose from, or None.
    Returns:
        :class:`Calibration`. Raises :class:`mlcil.ridge.NotPositiveDefinite` when G + λI has no
        Cholesky factor.
    """
    G = np.asarray(G, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    even = np.asarray(even, dtype=bool)
    m, C = Y.shape if Y.ndim == 2 else (-1, -1)
    if Y.ndim != 2 or B.shape[1:] != (C,) or phi.shape != (m, G.shape[0]) or even.shape != (m,):
        raise MlcilError(f"calibrate: expected phi m×D, Y m×C, even (m,) with D = {G.shape[0]} and C = "
                         f"{B.shape[1] if B.ndim == 2 else '?'} (B's columns); got phi {phi.shape}, Y {Y.shape}, "
                         f"even {even.shape}")
    positives = np.asarray(positives, dtype=np.float64)
    if positives.shape != (C,):
        raise MlcilError(f"positives: expected shape ({C},) (one per class), got {positives.shape}")
    grid: list[float] = []
    maps: list[float] = []
    if lambdas is not None and len(lambdas) and int(even.sum()) >= 3:
        eig = eigh(G)
        lam, path_maps = choose_lambda(G, B, phi[even], Y[even], lambdas, eig=eig)
        grid, maps = [float(x) for x in lambdas], [float(v) for v in path_maps]
        S = loo_path_scores(G, B, phi, Y, [lam], eig=eig)[0]
    else:
        factor = Factor(G, lam)
        S = factor.loo_scores(factor.solve(B), phi, Y)
    usable = (positives >= MIN_ROWS_PER_SIDE) & (n_total - positives >= MIN_ROWS_PER_SIDE) & \
        (Y.sum(axis=0) >= 1) & ((1 - Y).sum(axis=0) >= 1)
    platt: list[tuple[float, float] | None] = [None] * C
    cols = np.flatnonzero(usable)
    if cols.size:
        W = sample_weights(Y[:, cols], positives[cols], n_total)
        a, b = fit_platt(S[:, cols], Y[:, cols], weights=W)
        for j, c in enumerate(cols):
            if np.isfinite(a[j]) and np.isfinite(b[j]):
                platt[c] = (float(a[j]), float(b[j]))
    return Calibration(float(lam), platt, grid, maps)


__all__ = ["Calibration", "MIN_ROWS_PER_SIDE", "calibrate", "sample_weights"]
