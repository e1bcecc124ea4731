"""Calibration error of probabilities: does "0.8" mean right 80% of the time?"""

from __future__ import annotations

import numpy as np

from mlcil.metrics._validation import binary_2d, check_same_shape, finite_float_2d

__all__ = ["expected_calibration_error"]


def expected_calibration_error(y_true: object, proba: object, n_bins: int = 15) -> float:
    """Expected calibration error over all (example, class) pairs, equal-width bins.

    ECE = Σ_b (n_b / N) · |mean(y in b) − mean(p in b)| over bins b of [0, 1] (bin edges
    i/n_bins; a probability equal to an inner edge goes to the upper bin, 1.0 to the last),
    with N the number of pairs. 0 is perfect calibration. Returned as a fraction (not %).

    Args:
        y_true: (n, C) binary labels. proba: (n, C) probabilities in [0, 1] (clipped).
        n_bins: number of equal-width bins.
    Returns:
        float in [0, 1]; NaN when there are no pairs.

    >>> round(expected_calibration_error(np.array([[1], [0]]), np.array([[0.9], [0.1]]), n_bins=10), 6)
    0.1
    """
    y = binary_2d("y_true", y_true)
    p = finite_float_2d("proba", proba)
    check_same_shape("proba", p, "y_true", y)
    p = np.clip(p.ravel().astype(np.float64), 0.0, 1.0)
    y = y.ravel().astype(np.float64)
    if p.size == 0:
        return float("nan")
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    gap = np.abs(np.bincount(b, weights=y, minlength=n_bins) - np.bincount(b, weights=p, minlength=n_bins))
    return float(gap.sum() / p.size)
