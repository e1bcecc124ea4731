"""Probability calibration of ranking scores (per class, vectorised over classes)."""

from __future__ import annotations

import numpy as np

from mlcil.errors import MlcilError


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−z) without overflow warnings (tanh form), same dtype as z."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_platt(scores: np.ndarray, Y: np.ndarray, iters: int = 100, reg: float = 1e-6,
              weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Platt scaling for every column at once: p = sigmoid(a·s + b).

    Args:
        scores: n×C held-out scores. Y: n×C binary labels of the same rows.
        iters: Newton iterations (the loss is convex; 20–30 usually suffice).
        reg: small L2 penalty on (a, b) keeping classes with one label value finite.
        weights: optional (n,) or n×C non-negative row weights (a row of weight w counts w times).
    Returns:
        (a, b), each of shape (C,), in the units of the raw scores.
    Uses Platt's (1999) smoothed targets (N₊+1)/(N₊+2) and 1/(N₋+2), which keep the fit
    finite on separable columns.
    """
    s = np.asarray(scores, dtype=np.float64)
    Y = np.asarray(Y, dtype=bool)
    n = s.shape[0]
    w = np.ones((n, 1)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(n, -1)
    mu, sd = s.mean(axis=0), s.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    z = (s - mu) / sd
    npos = (w * Y).sum(axis=0)
    nneg = (w * ~Y).sum(axis=0)
    T = np.where(Y, (npos + 1.0) / (npos + 2.0), 1.0 / (nneg + 2.0))
    a = np.ones(s.shape[1])
    b = np.log((npos + 1.0) / (nneg + 1.0))
    for _ in range(iters):
        p = sigmoid(a * z + b)
        r = w * (p - T)
        h = w * (p * (1 - p) + 1e-12)
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


METHODS = ("platt", "isotonic")


def fit_isotonic(scores: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic calibration of every column: the non-decreasing step map from score to P(y = 1).

    Args:
        scores: n×C held-out scores. Y: n×C binary labels of the same rows.
        weights: optional (n,) row weights.
    Returns:
        (knots_x, knots_y), each C×K float64: the map of column c is linear interpolation
        through (knots_x[c], knots_y[c]), constant beyond the ends (pooled adjacent violators,
        scikit-learn's ``IsotonicRegression``). Columns with fewer knots repeat their last one.
        A column with no rows maps everything to 0.5.
    """
    from sklearn.isotonic import IsotonicRegression

    s = np.asarray(scores, dtype=np.float64)
    Yf = np.asarray(Y, dtype=np.float64)
    knots = []
    for c in range(s.shape[1]):
        if s.shape[0] == 0:
            knots.append((np.zeros(1), np.full(1, 0.5)))
            continue
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(
            s[:, c], Yf[:, c], sample_weight=None if weights is None else np.asarray(weights, dtype=np.float64))
        knots.append((np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64)))
    return stack_knots(knots)


def stack_knots(knots: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Pad per-class knot vectors (or C×K blocks) to one C×K pair by repeating each row's last knot."""
    rows = []
    for kx, ky in knots:
        kx, ky = np.atleast_2d(kx), np.atleast_2d(ky)
        rows.extend(zip(kx, ky))
    K = max((len(x) for x, _ in rows), default=1)
    out_x = np.zeros((len(rows), K))
    out_y = np.zeros((len(rows), K))
    for c, (x, y) in enumerate(rows):
        out_x[c, :len(x)], out_x[c, len(x):] = x, x[-1]
        out_y[c, :len(y)], out_y[c, len(y):] = y, y[-1]
    return out_x, out_y


def apply_isotonic(scores: np.ndarray, knots_x: np.ndarray, knots_y: np.ndarray) -> np.ndarray:
    """Probabilities from :func:`fit_isotonic`'s knots, column by column; scores n×C."""
    s = np.asarray(scores, dtype=np.float64)
    out = np.empty(s.shape)
    for c in range(s.shape[1]):
        x, y = knots_x[c], knots_y[c]
        keep = np.r_[True, np.diff(x) > 0] | np.r_[True, np.diff(y) != 0]  # drop the padding repeats
        out[:, c] = np.interp(s[:, c], x[keep], y[keep])
    return out


def fit_calibration(method: str, scores: np.ndarray, Y: np.ndarray,
                    weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-class calibration parameters by ``method`` ('platt' or 'isotonic'), as a dict of arrays
    with one row (or entry) per column of ``scores``; apply with :func:`apply_calibration`.
    ``weights``: optional (n,) row weights."""
    if method == "platt":
        a, b = fit_platt(scores, Y, weights=weights)
        return {"a": a, "b": b}
    if method == "isotonic":
        kx, ky = fit_isotonic(scores, Y, weights)
        return {"x": kx, "y": ky}
    raise MlcilError(f"calibration: expected one of {', '.join(METHODS)}, got {method!r}")


def apply_calibration(params: dict[str, np.ndarray], scores: np.ndarray) -> np.ndarray:
    """n×C probabilities from parameters made by :func:`fit_calibration`."""
    if "a" in params:
        return apply_platt(scores, params["a"], params["b"])
    return apply_isotonic(scores, params["x"], params["y"])


def concat_calibration(first: dict[str, np.ndarray] | None, second: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parameters of ``first``'s classes followed by ``second``'s (same method)."""
    if not first:
        return dict(second)
    if "a" in first:
        return {"a": np.concatenate([first["a"], second["a"]]), "b": np.concatenate([first["b"], second["b"]])}
    x, y = stack_knots([(first["x"], first["y"]), (second["x"], second["y"])])
    return {"x": x, "y": y}


def select_calibration(params: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """Parameters of the classes where ``keep`` is True."""
    return {key: value[keep] for key, value in params.items()}
