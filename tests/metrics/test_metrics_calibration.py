"""Expected calibration error against a direct loop over bins."""

import numpy as np
import pytest

from mlcil.errors import MlcilError
from mlcil.metrics import expected_calibration_error


def ece_loop(y, p, n_bins):
    y, p = y.ravel().astype(float), p.ravel()
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (p >= lo) & ((p < hi) if b < n_bins - 1 else (p <= hi))
        if inside.any():
            total += inside.sum() / p.size * abs(y[inside].mean() - p[inside].mean())
    return total


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_against_loop(n_bins):
    rng = np.random.default_rng(0)
    p = rng.random((200, 5))
    y = (rng.random((200, 5)) < p ** 2).astype(np.uint8)
    assert np.isclose(expected_calibration_error(y, p, n_bins), ece_loop(y, p, n_bins))


def test_perfect_and_worst():
    y = np.array([[1, 0], [0, 1]])
    assert expected_calibration_error(y, y.astype(float)) == 0.0
    assert expected_calibration_error(y, 1.0 - y) == 1.0


def test_shape_mismatch_names_the_argument():
    with pytest.raises(MlcilError, match="proba"):
        expected_calibration_error(np.zeros((2, 2)), np.zeros((3, 2)))
