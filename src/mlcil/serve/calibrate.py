"""λ and per-label calibration from leave-one-out scores, as the library's ``Analytic`` does it.

Given the statistics (G, B) and a sample of stored rows (φ and targets), each row is scored by the
model fitted without it — closed form, (ŷ − h·y)/(1 − h), no refit (:mod:`mlcil.ridge`). λ (when
not fixed) maximises the leave-one-out mAP of the evenly spaced rows over the ridge core's λ grid
(one eigendecomposition for the whole grid); each label's Platt map is fitted on the leave-one-out
scores at that λ (:func:`mlcil.decide.calibration.fit_platt`) with weights that make the sample
stand for all stored rows (positives of rare labels are over-sampled, then weighted down).
Pure: no storage, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlcil import ridge
from mlcil.decide.calibration import fit_platt

#: a label gets its own Platt map once it has this many positives and this many other rows stored
MIN_ROWS_PER_SIDE = 2


@dataclass(frozen=True)
class Calibration:
    """λ used, Platt (a, b) per calibrated column (None where too few rows), the λ grid and its mAPs."""

    lam: float
    platt: list[tuple[float, float] | None]
    lambdas: list[float]
    loo_map: list[float]


def sample_weights(Y: np.ndarray, positives: np.ndarray, n_total: int) -> np.ndarray:
    """n×C weights so that, per label c, the sampled positives weigh ``positives[c]`` in all and the
    sampled other rows ``n_total − positives[c]`` (post-stratification of a sample that over-represents
    positives). Y n×C 0/1 targets of the sampled rows."""
    Y = np.asarray(Y, dtype=bool)
    pos_in = np.maximum(Y.sum(axis=0), 1)
    neg_in = np.maximum((~Y).sum(axis=0), 1)
    neg_all = np.maximum(n_total - positives, 0)
    return np.where(Y, positives / pos_in, neg_all / neg_in).astype(np.float64)


def calibrate(G: torch.Tensor, B: torch.Tensor, phi: torch.Tensor, Y: np.ndarray, even: np.ndarray,
              positives: np.ndarray, n_total: int, lam: float, lambdas=None) -> Calibration:
    """λ (chosen from ``lambdas`` when given, else ``lam``) and Platt maps per column of B.

    Args:
        G, B: statistics (D×D, D×C float64). phi: m×D features of sampled stored rows; Y: m×C targets.
        even: (m,) bool, the rows of the evenly spaced sample (λ is scored on these only).
        positives: (C,) known positives per label among all ``n_total`` stored rows.
    """
    Y = np.asarray(Y, dtype=np.float64)
    Yt = torch.as_tensor(Y, dtype=torch.float64)
    grid: list[float] = []
    maps: list[float] = []
    if lambdas is not None and len(lambdas) and int(even.sum()) >= 3:
        eig = ridge.eigh(G)
        lam, path_maps = ridge.choose_lambda(G, B, phi[torch.as_tensor(even)], Y[even], lambdas, eig=eig)
        grid, maps = [float(x) for x in lambdas], [float(m) for m in path_maps]
        S = ridge.loo_path_scores(G, B, phi, Yt, [lam], eig=eig)[0].numpy()
    else:
        factor = ridge.Factor(G, lam)
        S = factor.loo_scores(factor.solve(B), phi, Yt).numpy()
    positives = np.asarray(positives, dtype=np.float64)
    usable = (positives >= MIN_ROWS_PER_SIDE) & (n_total - positives >= MIN_ROWS_PER_SIDE) & \
        (Y.sum(axis=0) >= 1) & ((1 - Y).sum(axis=0) >= 1)
    platt: list[tuple[float, float] | None] = [None] * Y.shape[1]
    cols = np.flatnonzero(usable)
    if cols.size:
        W = sample_weights(Y[:, cols], positives[cols], n_total)
        a, b = fit_platt(S[:, cols], Y[:, cols], weights=W)
        for j, c in enumerate(cols):
            if np.isfinite(a[j]) and np.isfinite(b[j]):
                platt[c] = (float(a[j]), float(b[j]))
    return Calibration(float(lam), platt, grid, maps)
