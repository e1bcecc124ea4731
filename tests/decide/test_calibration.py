"""Calibration maps scores generated from known probabilities back to those probabilities."""

import numpy as np
import pytest

from mlcil.decide import apply_calibration, apply_isotonic, fit_calibration, fit_isotonic, fit_platt
from mlcil.decide.calibration import concat_calibration, select_calibration, sigmoid
from mlcil.errors import MlcilError
from mlcil.metrics import expected_calibration_error


@pytest.fixture(scope="module")
def sigmoid_data():
    """Scores s with P(y = 1 | s) = sigmoid(a s + b) for known (a, b) per class."""
    rng = np.random.default_rng(0)
    a, b = np.array([2.0, 0.5, 4.0]), np.array([-1.0, 0.3, 2.0])
    s = rng.normal(size=(40000, 3))
    p = sigmoid(a * s + b)
    Y = (rng.random(p.shape) < p).astype(np.uint8)
    return s, Y, p, a, b


def test_platt_recovers_the_generating_sigmoid(sigmoid_data):
    s, Y, p, a, b = sigmoid_data
    fa, fb = fit_platt(s, Y)
    np.testing.assert_allclose(fa, a, rtol=0.05)
    np.testing.assert_allclose(fb, b, atol=0.05)
    assert np.abs(apply_calibration({"a": fa, "b": fb}, s) - p).max() < 0.02


def test_isotonic_recovers_the_probabilities(sigmoid_data):
    s, Y, p, _, _ = sigmoid_data
    kx, ky = fit_isotonic(s, Y)
    q = apply_isotonic(s, kx, ky)
    assert np.all(np.diff(q[np.argsort(s[:, 0]), 0]) >= -1e-12)  # monotone
    assert np.abs(q - p).mean() < 0.02


def test_isotonic_matches_sklearn_per_column():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(1)
    s = rng.normal(size=(300, 4))
    Y = (rng.random((300, 4)) < sigmoid(2 * s)).astype(np.uint8)
    kx, ky = fit_isotonic(s, Y)
    grid = np.linspace(-4, 4, 101)[:, None].repeat(4, axis=1)
    ref = np.column_stack([IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s[:, c], Y[:, c])
                           .predict(grid[:, c]) for c in range(4)])
    np.testing.assert_allclose(apply_isotonic(grid, kx, ky), ref, atol=1e-12)


def test_concat_and_select_keep_each_class_map():
    rng = np.random.default_rng(2)
    s1, s2 = rng.normal(size=(200, 2)), rng.normal(size=(50, 3))
    Y1, Y2 = (s1 > 0).astype(np.uint8), (s2 > 0.5).astype(np.uint8)
    for method in ("platt", "isotonic"):
        c1, c2 = fit_calibration(method, s1, Y1), fit_calibration(method, s2, Y2)
        both = concat_calibration(c1, c2)
        S = rng.normal(size=(30, 5))
        P = apply_calibration(both, S)
        np.testing.assert_allclose(P[:, :2], apply_calibration(c1, S[:, :2]))
        np.testing.assert_allclose(P[:, 2:], apply_calibration(c2, S[:, 2:]))
        keep = np.array([True, False, True, False, True])
        np.testing.assert_allclose(apply_calibration(select_calibration(both, keep), S[:, keep]), P[:, keep])


def test_unknown_method():
    with pytest.raises(MlcilError, match="calibration"):
        fit_calibration("beta", np.zeros((3, 1)), np.zeros((3, 1)))


def test_calibration_lowers_ece(sigmoid_data):
    s, Y, p, _, _ = sigmoid_data
    raw = sigmoid(s)  # a miscalibrated reading of the same scores
    fitted = apply_calibration(fit_calibration("platt", s, Y), s)
    assert expected_calibration_error(Y, fitted) < 0.01 < expected_calibration_error(Y, raw)
