"""mlcil.ridge.calibrate (the service's λ and Platt calibration, pure over statistics) against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from mlcil.decide.calibration import fit_platt
from mlcil.errors import MlcilError
from mlcil.metrics import average_precision
from mlcil.ridge.calibrate import calibrate, sample_weights


def problem(n: int = 60, D: int = 12, C: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(n, D))
    Y = (phi[:, :C] + 0.5 * rng.normal(size=(n, C)) > 0.3).astype(np.float64)
    return phi, Y, phi.T @ phi, phi.T @ Y


def brute_loo(phi: np.ndarray, Y: np.ndarray, lam: float) -> np.ndarray:
    """Each row scored by the ridge fit on the other rows (numpy.linalg.solve, one refit per row)."""
    S = np.empty_like(Y)
    for i in range(len(phi)):
        keep = np.arange(len(phi)) != i
        W = np.linalg.solve(phi[keep].T @ phi[keep] + lam * np.eye(phi.shape[1]), phi[keep].T @ Y[keep])
        S[i] = phi[i] @ W
    return S


def test_lambda_is_the_grid_point_of_best_leave_one_out_map_and_platt_fits_its_scores():
    phi, Y, G, B = problem()
    grid = [0.01, 0.3, 3.0, 30.0]
    cal = calibrate(G, B, phi, Y, np.ones(len(Y), bool), Y.sum(axis=0), len(Y), lam=1.0, lambdas=grid)
    maps = [np.mean(average_precision(Y, brute_loo(phi, Y, lam))) for lam in grid]
    np.testing.assert_allclose(cal.loo_map, maps, atol=1e-9)
    assert cal.lam == grid[int(np.argmax(maps))] and cal.lambdas == grid
    a, b = fit_platt(brute_loo(phi, Y, cal.lam), Y)  # every row sampled: weights 1
    np.testing.assert_allclose(np.array(cal.platt), np.c_[a, b], rtol=1e-4, atol=1e-4)


def test_fixed_lambda_and_labels_too_rare_for_their_own_map():
    phi, Y, G, B = problem(seed=1)
    Y[:, 2] = 0
    Y[0, 2] = 1  # one positive: no map of its own
    B = phi.T @ Y
    cal = calibrate(G, B, phi, Y, np.ones(len(Y), bool), Y.sum(axis=0), len(Y), lam=0.7)
    assert cal.lam == 0.7 and cal.lambdas == [] and cal.loo_map == []
    assert cal.platt[2] is None and cal.platt[0] is not None


def test_sample_weights_make_the_sample_stand_for_all_rows():
    Y = np.array([[1, 0], [1, 1], [0, 0], [0, 0], [0, 1]], dtype=bool)
    positives, n_total = np.array([40.0, 10.0]), 100
    W = sample_weights(Y, positives, n_total)
    for c in range(2):
        assert W[Y[:, c], c].sum() == pytest.approx(positives[c])
        assert W[~Y[:, c], c].sum() == pytest.approx(n_total - positives[c])


def test_bad_shapes_are_refused_naming_the_arguments():
    phi, Y, G, B = problem()
    with pytest.raises(MlcilError, match="phi"):
        calibrate(G, B, phi[:, :5], Y, np.ones(len(Y), bool), Y.sum(axis=0), len(Y), lam=1.0)
    with pytest.raises(MlcilError, match="positives"):
        calibrate(G, B, phi, Y, np.ones(len(Y), bool), Y.sum(axis=0)[:2], len(Y), lam=1.0)
