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


def test_label_gcv_summed_is_the_cores_curve_of_rescaled_labels_and_no_evidence_when_too_small():
    rng = np.random.default_rng(1)
    phi, Y = rng.normal(size=(60, 5)), (rng.random((60, 2)) < [0.4, 0.1]).astype(float)
    assert Y.sum(axis=0).min() > 0
    G, B = phi.T @ phi, phi.T @ Y
    grid = ridge.lambda_grid(G, 7)
    p = Y.mean(axis=0)  # each label's mean squared target: its GCV in units of "predict 0 everywhere"
    want = sum(ridge.gcv_curve(G, B[:, [c]], float((Y[:, c] ** 2).sum()), 60.0, grid) / p[c] for c in range(2))
    np.testing.assert_allclose(lambdas.label_gcv(G, B, Y, None, grid).sum(axis=0), want, rtol=1e-10)
    tiny, Y2 = phi[:2], np.array([[1.0, 0.0], [0.0, 1.0]])
    small = ridge.lambda_grid(tiny.T @ tiny, 7)[:3]  # two rows, small λ: degrees of freedom above half the rows
    assert not np.isfinite(ridge.gcv_curve(tiny.T @ tiny, tiny.T @ Y2, 2.0, 2.0, small)).any()
    curve = lambdas.label_gcv(tiny.T @ tiny, tiny.T @ Y2, Y2, None, small).sum(axis=0)
    assert np.array_equal(curve, np.zeros(len(small)))  # no evidence rather than every λ ruled out
    empty = np.zeros((60, 2))  # no positive at all: no evidence either
    assert np.array_equal(lambdas.label_gcv(G, phi.T @ empty, empty, None, grid).sum(axis=0), np.zeros(len(grid)))


def test_label_gcv_counts_a_rare_label_as_much_as_a_frequent_one():
    """Scaling one label's targets by any factor leaves the curve unchanged: only relative errors count."""
    rng = np.random.default_rng(2)
    phi = rng.normal(size=(80, 6))
    Y = (rng.random((80, 3)) < [0.5, 0.1, 0.03]).astype(float)
    grid = np.logspace(-2, 3, 8)
    G = phi.T @ phi
    base = lambdas.label_gcv(G, phi.T @ Y, Y, None, grid).sum(axis=0)
    Y2 = Y * [1.0, 7.0, 0.2]
    np.testing.assert_allclose(lambdas.label_gcv(G, phi.T @ Y2, Y2, None, grid).sum(axis=0), base, rtol=1e-10)


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


def test_label_gcv_summed_equals_an_explicit_hat_matrix():
    """GCV from the statistics (G, B, Y) against the definition on the rows: H = Φ(ΦᵀΦ + λI)⁻¹Φᵀ,
    Σ_c ‖y_c − Hy_c‖² / ‖y_c‖² / (1 − tr H/n)² (each label's GCV over its mean square), +inf where tr H exceeds
    half the rows; with row weights w, the same on √w·Φ and √w·Y with n = Σ w."""
    rng = np.random.default_rng(3)
    phi, Y = rng.normal(size=(40, 6)), (rng.random((40, 3)) < 0.3).astype(float)
    grid = np.logspace(-3, 3, 9)
    for w in (None, rng.random(40) + 0.5):
        rw = np.ones(40) if w is None else np.sqrt(w)
        P, T, n = phi * rw[:, None], Y * rw[:, None], float(40 if w is None else w.sum())
        G, B = P.T @ P, P.T @ T
        want = []
        for lam in grid:
            H = P @ np.linalg.solve(G + lam * np.eye(6), P.T)
            dof = np.trace(H)
            rel = (((T - H @ T) ** 2).sum(axis=0) / (T ** 2).sum(axis=0)).sum()
            want.append(np.inf if dof > 0.5 * n else float(rel) / (1 - dof / n) ** 2)
        np.testing.assert_allclose(lambdas.label_gcv(G, B, Y, w, grid).sum(axis=0), want, rtol=1e-9)
        # with the eigendecomposition given (as the learner passes it), the same curve
        np.testing.assert_allclose(lambdas.label_gcv(G, B, Y, w, grid, eig=np.linalg.eigh(G)).sum(axis=0), want,
                                   rtol=1e-9)


def test_floored_argmax_is_the_brute_force_best_at_or_above_the_floor():
    rng = np.random.default_rng(4)
    grid = np.logspace(-2, 2, 9)
    for _ in range(20):
        evidence = rng.integers(0, 4, size=9).astype(float)  # ties included
        floor = float(grid[rng.integers(0, 9)]) * rng.choice([1.0, 1.3])
        allowed = [i for i in range(9) if grid[i] >= floor * (1 - 1e-12)]
        best = max(allowed, key=lambda i: (evidence[i], i)) if allowed else 8  # ties: the larger λ
        assert lambdas.floored_argmax(grid, evidence, floor) == grid[best]
    evidence = rng.random(9)
    assert lambdas.floored_argmax(grid, evidence, None) == lambdas.grid_argmax(grid, evidence)
    assert lambdas.floored_argmax(grid, evidence, 1e3) == grid[-1]  # a floor above the grid: its largest λ


def test_lambda_floor_is_the_brute_force_leave_one_out_map_choice_and_only_for_large_first_sessions(monkeypatch):
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(5)
    phi = rng.normal(size=(40, 4))
    Y = (phi @ rng.normal(size=(4, 2)) + rng.normal(scale=1.5, size=(40, 2)) > 0.8).astype(float)
    G, B = phi.T @ phi, phi.T @ Y
    grid = ridge.lambda_grid(G, lambdas.N_LAMBDAS)
    maps = []
    for lam in grid:  # leave each row out, refit, score it
        S = np.array([phi[i] @ np.linalg.solve(G - np.outer(phi[i], phi[i]) + lam * np.eye(4), B - np.outer(phi[i], Y[i]))
                      for i in range(40)])
        maps.append(np.mean([average_precision_score(Y[:, c], S[:, c]) for c in range(2)]))
    want = float(grid[int(np.argmax(maps))])

    class Selector(lambdas.LambdaSelection):
        pass

    sel = Selector()
    monkeypatch.setattr(lambdas, "LOO_FLOOR_ROWS", 40)
    sel._set_lambda_floor(40, G, B, phi, Y, None)
    assert sel.lambda_floor_ == pytest.approx(want, rel=1e-12)
    sel._set_lambda_floor(39, G, B, phi, Y, None)  # fewer rows than the threshold: no floor
    assert sel.lambda_floor_ is None


def test_the_learner_floors_gcv_at_the_first_sessions_leave_one_out_choice_from_enough_rows(monkeypatch):
    """Analytic(): with a first session of at least LOO_FLOOR_ROWS rows, λ is never below the λ that
    lambda_search='first' picks on the same session (same frame and grid); with fewer rows there is no floor.
    The floor is kept through save/load and holds in later sessions."""
    from mlcil import Analytic, Learner

    rng = np.random.default_rng(7)
    X = rng.normal(size=(240, 10)).astype(np.float32)
    Y = (X[:, :4] + rng.normal(scale=1.0, size=(240, 4)) > 0.9).astype(np.uint8)
    first = Analytic(M=32, scaling="standardize", strategy="negative", lambda_search="first").learn(X, Y[:, :2])
    monkeypatch.setattr(lambdas, "LOO_FLOOR_ROWS", 200)
    model = Analytic(M=32, scaling="standardize", strategy="negative").learn(X, Y[:, :2])
    assert model.lambda_floor_ == pytest.approx(first.lambda_, rel=1e-12)
    assert model.lambda_ >= first.lambda_ * (1 - 1e-12)
    assert model.lambda_ == lambdas.floored_argmax(model.lambda_grid_, model.lambda_evidence_, first.lambda_)
    model.learn(X[:120], Y[:120, 2:])
    assert model.lambda_ >= first.lambda_ * (1 - 1e-12)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        back = Learner.load(model.save(Path(tmp) / "m.npz"))
    assert back.lambda_floor_ == pytest.approx(model.lambda_floor_)
    monkeypatch.setattr(lambdas, "LOO_FLOOR_ROWS", 241)
    small = Analytic(M=32, scaling="standardize", strategy="negative").learn(X, Y[:, :2])
    assert small.lambda_floor_ is None
