"""mlcil.ridge.absence: label absence as linear algebra, against numpy.linalg.solve and refitting."""

import numpy as np
import pytest

from mlcil import ridge
from mlcil.ridge.absence import (SessionSpectrum, absence_system, eig_solve, simulated_loo, simulated_loo_dual,
                                 use_dual, weighted_solve)

from ..conftest import assert_reproduced


def spd(rng, n: int, D: int, w=None) -> np.ndarray:
    """A Gram matrix ΦᵀΦ of n random rows (positive semi-definite, rank min(n, D))."""
    phi = rng.normal(size=(n, D))
    return phi.T @ phi if w is None else (phi * w[:, None]).T @ phi


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_absence_system_is_the_weighted_sum(alpha, lam):
    rng = np.random.default_rng(0)
    G_all, K = spd(rng, 30, 6), spd(rng, 10, 6)
    want = alpha * G_all + (1 - alpha) * K + lam * np.eye(6)
    A = absence_system(G_all, K, alpha, lam)
    np.testing.assert_allclose(A, want, rtol=1e-12, atol=1e-12)
    assert A is not G_all and A is not K and A.dtype == np.float64
    A[0, 0] += 1.0  # a copy: the statistics are untouched
    np.testing.assert_allclose(absence_system(G_all, K, alpha, lam), want, rtol=1e-12, atol=1e-12)


def test_absence_system_without_copy_reads_the_statistics_themselves():
    rng = np.random.default_rng(1)
    G_all, K = spd(rng, 30, 5), spd(rng, 10, 5)
    assert absence_system(G_all, K, 1.0, 0.0, copy=False) is G_all
    assert absence_system(G_all, K, 0.0, 0.0, copy=False) is K
    A = absence_system(G_all, K, 0.5, 0.0, copy=False)  # anything else is a new array
    assert A is not G_all and A is not K


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0])
def test_weighted_solve_equals_numpy(alpha):
    rng = np.random.default_rng(2)
    D = 7
    G_all, K = spd(rng, 40, D), spd(rng, 12, D)
    B = rng.normal(size=(D, 3))
    lam = 0.3
    want = np.linalg.solve(alpha * G_all + (1 - alpha) * K + lam * np.eye(D), B)
    np.testing.assert_allclose(weighted_solve(G_all, K, B, alpha, lam), want, rtol=1e-9, atol=1e-12)


def test_eig_solve_equals_numpy_for_every_lambda():
    rng = np.random.default_rng(3)
    D = 8
    G = spd(rng, 5, D)  # rank 5 < D: λ alone keeps the system invertible
    B = rng.normal(size=(D, 2))
    eig = np.linalg.eigh(G)
    for lam in (1e-3, 0.1, 10.0):
        np.testing.assert_allclose(eig_solve(eig, B, lam), np.linalg.solve(G + lam * np.eye(D), B),
                                   rtol=1e-7, atol=1e-10)


def test_use_dual_exactly_when_fewer_rows_than_features():
    assert use_dual(10, 11) and not use_dual(11, 11) and not use_dual(12, 11)


@pytest.mark.parametrize("alpha", [0.3, 0.0, 1.0])
@pytest.mark.parametrize("memory", [False, True])
def test_simulated_absence_loo_equals_refitting_without_the_row(alpha, memory):
    """The α search's closed-form leave-one-out (primal, and in the n×n dual) equals removing the row from
    every group and refitting. With a label memory a row is once in G_all (also a row of no group)."""
    rng = np.random.default_rng(4)
    n, M = 25, 5
    phi = rng.normal(size=(n, M))
    Y = (rng.random((n, 3)) < 0.5).astype(float)
    Y[Y.sum(1) == 0, 0] = 1
    Y[3] = 0  # a row in no group
    w = rng.random(n) + 0.5
    groups = [np.array([0]), np.array([1, 2])]
    lam = 0.7

    def group_stats(keep):
        parts = []
        for cols in groups:
            rows = np.flatnonzero(Y[:, cols].any(axis=1) & keep)
            G = (phi[rows] * w[rows, None]).T @ phi[rows]
            B = (phi[rows] * w[rows, None]).T @ Y[np.ix_(rows, cols)]
            parts.append((G, B, cols, Y[:, cols].any(axis=1)))
        G_all = ((phi[keep] * w[keep, None]).T @ phi[keep]) if memory else parts[0][0] + parts[1][0]
        return parts, G_all

    parts, G_all = group_stats(np.ones(n, dtype=bool))
    n_parts = np.ones(n) if memory else sum(p[3].astype(float) for p in parts)
    S = simulated_loo(parts, G_all, n_parts, alpha, lam, phi, Y, w)
    loo = np.arange(0, n, 2)
    dual = simulated_loo_dual(phi @ phi.T, [(cols, member) for _, _, cols, member in parts], n_parts, alpha,
                              lam, loo, Y, w)
    for i in range(n):
        keep = np.arange(n) != i
        sub, G_all_i = group_stats(keep)
        for G, B, cols, _ in sub:
            A = alpha * G_all_i + (1 - alpha) * G + lam * np.eye(M)
            refit = phi[i] @ np.linalg.solve(A, B)
            np.testing.assert_allclose(S[i, cols], refit, rtol=1e-9, atol=1e-12)
            if i in loo:
                np.testing.assert_allclose(dual[i // 2, cols], refit, rtol=1e-9, atol=1e-12)


def test_dual_eigendecomposition_solves_like_the_primal():
    """Fewer rows than features: the n×n dual's spectrum gives the same W, leave-one-out path and GCV as G's own
    eigendecomposition and as numpy, a repeated row (rank n − 1) included."""
    rng = np.random.default_rng(7)
    n, D = 30, 80
    phi = np.abs(rng.normal(size=(n, D)))
    phi[5] = phi[4]
    w = rng.random(n) + 0.5
    Y = (rng.random((n, 3)) < 0.4).astype(float)
    G = (phi * w[:, None]).T @ phi
    B = (phi * w[:, None]).T @ Y
    sub = np.arange(0, n, 3)
    dual = SessionSpectrum.dual(phi, Y, w, sub)
    primal = SessionSpectrum.primal(G, B, phi[sub])
    lambdas = ridge.lambda_grid(G, 7)
    for lam in lambdas:
        want = np.linalg.solve(G + lam * np.eye(D), B)
        assert_reproduced(dual.solve(lam), want, rtol=1e-9)
        assert_reproduced(primal.solve(lam), want, rtol=1e-9)
    want = ridge.loo_path_scores(G, B, phi[sub], Y[sub], lambdas, w[sub])
    for spectrum in (dual, primal):
        got = ridge.loo_path_scores(G, spectrum.B, spectrum.phi, Y[sub], lambdas, w[sub], spectrum.eig)
        assert_reproduced(got, want, rtol=1e-8)
    yy, m = float(w @ (Y ** 2).sum(1)), float(w.sum())
    np.testing.assert_allclose(ridge.gcv_curve(G, dual.B, yy, m, lambdas, max_dof=1.0, eig=dual.eig),
                               ridge.gcv_curve(G, B, yy, m, lambdas, max_dof=1.0), rtol=1e-8)


def test_unweighted_dual_spectrum_solves_like_numpy():
    rng = np.random.default_rng(8)
    n, D = 12, 20
    phi = rng.normal(size=(n, D))
    Y = (rng.random((n, 2)) < 0.5).astype(float)
    spectrum = SessionSpectrum.dual(phi, Y, None, np.arange(0, n, 2))
    assert np.allclose(spectrum.eig[1], np.eye(n))  # coordinates of G's eigenvectors: (s, I)
    np.testing.assert_allclose(np.sort(spectrum.eig[0]), np.sort(np.linalg.eigvalsh(phi @ phi.T)), rtol=1e-9,
                               atol=1e-9)
    for lam in (0.01, 1.0):
        want = np.linalg.solve(phi.T @ phi + lam * np.eye(D), phi.T @ Y)
        assert_reproduced(spectrum.solve(lam), want, rtol=1e-9)
