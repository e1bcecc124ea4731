"""Probability calibration of ranking scores (per class, vectorised over classes)."""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−z) without overflow warnings (tanh form), same dtype as z."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_platt(scores: np.ndarray, Y: np.ndarray, iters: int = 100, reg: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Platt scaling for every column at once: p = sigmoid(a·s + b).

    Args:
        scores: n×C held-out scores. Y: n×C binary labels of the same rows.
        iters: Newton iterations (the loss is convex; 20–30 usually suffice).
        reg: small L2 penalty on (a, b) keeping classes with one label value finite.
    Returns:
        (a, b), each of shape (C,), in the units of the raw scores.
    Uses Platt's (1999) smoothed targets (N₊+1)/(N₊+2) and 1/(N₋+2), which keep the fit
    finite on separable columns.
    """
    s = np.asarray(scores, dtype=np.float64)
    Y = np.asarray(Y, dtype=bool)
    n = s.shape[0]
    mu, sd = s.mean(axis=0), s.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    z = (s - mu) / sd
    npos = Y.sum(axis=0)
    nneg = n - npos
    T = np.where(Y, (npos + 1.0) / (npos + 2.0), 1.0 / (nneg + 2.0))
    a = np.ones(s.shape[1])
    b = np.log((npos + 1.0) / (nneg + 1.0))
    for _ in range(iters):
        p = sigmoid(a * z + b)
        r = p - T
        h = p * (1 - p) + 1e-12
        ga, gb = (r * z).sum(0) + reg * a, r.sum(0) + reg * b
        haa, hab, hbb = (h * z * z).sum(0) + reg, (h * z).sum(0), h.sum(0) + reg
        det = haa * hbb - hab * hab
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if max(np.abs(da).max(initial=0), np.abs(db).max(initial=0)) < 1e-10:
            break
    return a / sd, b - a * mu / sd


def apply_platt(scores: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Probabilities sigmoid(a·s + b) column by column; scores n×C, a and b (C,)."""
    return sigmoid(np.asarray(scores, dtype=np.float64) * a + b)
