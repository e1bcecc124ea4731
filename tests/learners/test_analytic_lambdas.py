"""mlcil.learners.analytic.lambdas: λ selection's pure functions against explicit sums and the ridge core."""

import numpy as np
import pytest

from mlcil import ridge
from mlcil.learners import label_memory
from mlcil.learners.analytic import lambdas


def test_target_sums_are_the_weighted_squared_targets_and_row_count():
    rng = np.random.default_rng(0)
    Y = (rng.random((9, 3)) < 0.5).astype(np.uint8)
    w = rng.random(9) + 0.5
    assert lambdas.target_sums(Y, None) == (pytest.approx(float((Y ** 2).sum())), 9.0)
    yy, n = lambdas.target_sums(Y, w)
    assert yy == pytest.approx(sum(w[i] * float((Y[i].astype(float) ** 2).sum()) for i in range(9)), rel=1e-12)
    assert n == pytest.approx(w.sum(), rel=1e-12)


def test_session_gcv_is_the_cores_curve_and_no_evidence_when_too_small():
    rng = np.random.default_rng(1)
    phi, Y = rng.normal(size=(60, 5)), (rng.random((60, 2)) < 0.4).astype(float)
    G, B = phi.T @ phi, phi.T @ Y
    grid = ridge.lambda_grid(G, 7)
    want = ridge.gcv_curve(G, B, float((Y ** 2).sum()), 60.0, grid)
    np.testing.assert_allclose(lambdas.session_gcv(G, B, Y, None, grid), want, rtol=1e-12)
    tiny, Y2 = phi[:2], np.array([[1.0, 0.0], [0.0, 1.0]])
    small = ridge.lambda_grid(tiny.T @ tiny, 7)[:3]  # two rows, small λ: degrees of freedom above half the rows
    assert not np.isfinite(ridge.gcv_curve(tiny.T @ tiny, tiny.T @ Y2, 2.0, 2.0, small)).any()
    curve = lambdas.session_gcv(tiny.T @ tiny, tiny.T @ Y2, Y2, None, small)
    assert np.array_equal(curve, np.zeros(len(small)))  # no evidence rather than every λ ruled out


def test_grid_argmax_breaks_ties_towards_the_larger_lambda():
    grid = np.array([0.1, 1.0, 10.0, 100.0])
    assert lambdas.grid_argmax(grid, [0.0, 0.0, 0.0, 0.0]) == 100.0
    assert lambdas.grid_argmax(grid, [1.0, 3.0, 3.0, 2.0]) == 10.0
    assert lambdas.grid_argmax(grid, [5.0, 3.0, 3.0, 2.0]) == 0.1


def test_session_evidence_is_class_weighted_and_a_curve_without_finite_points_changes_nothing():
    grid = np.array([0.1, 1.0, 10.0])
    evidence = np.array([1.0, 0.5, 0.0])
    lam, out = lambdas.add_session_evidence(grid, np.array([0.2, np.nan, 0.9]), evidence, 0.1, n_classes=3)
    np.testing.assert_allclose(out, evidence + 3 * np.array([0.2, 0.2, 0.9]))  # NaN counts as the worst point
    assert lam == 10.0
    lam, out = lambdas.add_session_evidence(grid, np.full(3, np.nan), evidence, 0.1, n_classes=3)
    assert lam == 0.1 and out is evidence


def test_union_counts_from_the_label_memory_count_examples_once():
    keys = np.arange(6, dtype=np.uint64)
    Y0 = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]], dtype=np.uint8)
    memory, _, _ = label_memory.add_session(label_memory.empty(), keys, Y0)
    Y1 = np.array([[1], [0], [1]], dtype=np.uint8)  # two reappearing examples and a new one
    memory, _, _ = label_memory.add_session(memory, np.array([0, 2, 9], dtype=np.uint64), Y1)
    yy, n = lambdas.union_counts(None, None, memory, None)
    assert (yy, n) == (float(Y0.sum() + Y1.sum()), 7.0)
    yy, n = lambdas.union_counts(None, None, memory, np.array([2.0, 0.0, 0.5]))  # β per class: rows of the prior
    assert (yy, n) == (float(Y0.sum() + Y1.sum()) + 2.5, 9.5)
    assert lambdas.union_counts(Y0, None, None, None) == lambdas.target_sums(Y0, None)


def test_session_gcv_equals_an_explicit_hat_matrix():
    """GCV from the statistics (G, B, Σ‖y‖², n) against the definition on the rows: H = Φ(ΦᵀΦ + λI)⁻¹Φᵀ,
    GCV = ‖Y − HY‖²/n / (1 − tr H/n)², +inf where tr H exceeds half the rows."""
    rng = np.random.default_rng(3)
    phi, Y = rng.normal(size=(40, 6)), (rng.random((40, 3)) < 0.3).astype(float)
    G, B = phi.T @ phi, phi.T @ Y
    grid = np.logspace(-3, 3, 9)
    want = []
    for lam in grid:
        H = phi @ np.linalg.solve(G + lam * np.eye(6), phi.T)
        dof = np.trace(H)
        want.append(np.inf if dof > 0.5 * 40 else float(((Y - H @ Y) ** 2).sum()) / 40 / (1 - dof / 40) ** 2)
    np.testing.assert_allclose(lambdas.session_gcv(G, B, Y, None, grid), want, rtol=1e-9)
    # with the eigendecomposition given (as the learner passes it), the same curve
    np.testing.assert_allclose(lambdas.session_gcv(G, B, Y, None, grid, eig=np.linalg.eigh(G)), want, rtol=1e-9)

