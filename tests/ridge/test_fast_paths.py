"""The ridge core's cheaper routes (issue 27) against direct references: the in-place Cholesky factor, the
tridiagonal spectrum that GCV reads, and the identity coordinates the λ paths skip."""

import threading
import time

import numpy as np
import pytest

from mlcil import ridge
from mlcil.ridge import solve


def spd(D, n=None, seed=0):
    rng = np.random.default_rng(seed)
    P = np.abs(rng.normal(size=(n or 2 * D, D)))
    return P.T @ P


@pytest.mark.parametrize("order", ["C", "F"])
def test_factor_is_numpys_cholesky_and_solves_like_numpy(order):
    G = np.asarray(spd(30), order=order)
    G_before = G.copy()
    B = np.random.default_rng(1).normal(size=(30, 4))
    factor = ridge.Factor(G, 0.7)
    np.testing.assert_array_equal(G, G_before)  # the caller's G is never changed
    A = G + 0.7 * np.eye(30)
    np.testing.assert_allclose(factor.L, np.linalg.cholesky(A), rtol=1e-10, atol=1e-12)
    assert not np.triu(factor.L, 1).any()  # a lower factor: zeros above the diagonal
    np.testing.assert_allclose(factor.solve(B), np.linalg.solve(A, B), rtol=1e-9)


def test_factor_in_place_keeps_the_matrix_when_it_is_not_positive_definite():
    rng = np.random.default_rng(2)
    P = rng.normal(size=(5, 300))  # rank 5: the 300×300 G − I is indefinite (a block of 256 rows and a remainder)
    G = P.T @ P - np.eye(300)
    scratch = G.copy()
    with pytest.raises(ridge.NotPositiveDefinite):
        ridge.Factor(scratch, 0.5, overwrite=True)
    np.testing.assert_array_equal(scratch, G + 0.5 * np.eye(300))  # left as G + λI, entry for entry
    B = rng.normal(size=(300, 2))
    want = ridge.ridge_solve(G, B, 0.5)  # least squares
    np.testing.assert_allclose(ridge.ridge_solve(G.copy(), B, 0.5, overwrite=True), want, rtol=1e-8, atol=1e-10)
    ok = spd(300) + np.eye(300)
    factor = ridge.Factor(ok, 0.0, overwrite=True)
    assert factor.L is ok  # factored in its own memory
    np.testing.assert_allclose(ok @ ok.T, spd(300) + np.eye(300), rtol=1e-10)


def test_factor_releases_the_gil_while_it_factors():
    """Another thread runs while the factor is computed (a service answers predictions during refreshes)."""
    G = spd(1200, n=1300, seed=3)
    share = []
    for _ in range(3):
        stop, gaps = threading.Event(), [0.0]

        def spin():
            last = time.perf_counter()
            while not stop.is_set():
                now = time.perf_counter()
                gaps[0] = max(gaps[0], now - last)
                last = now

        thread = threading.Thread(target=spin)
        thread.start()
        time.sleep(0.02)
        gaps[0] = 0.0
        start = time.perf_counter()
        ridge.Factor(G, 1.0)
        took = time.perf_counter() - start
        stop.set()
        thread.join()
        share.append(gaps[0] / took)
        if share[-1] < 0.5:
            break
    assert min(share) < 0.5, share  # holding the GIL, the other thread would wait for the whole factorisation


@pytest.mark.parametrize("D", [1, 2, 3, 40])
def test_tridiagonal_spectrum_equals_eigh(D):
    rng = np.random.default_rng(D)
    G = spd(D, n=D + 3, seed=D)
    B = rng.normal(size=(D, 3))
    tri = solve.Tridiagonal(G)
    s, V = np.linalg.eigh(G)
    np.testing.assert_allclose(tri.s, s, rtol=1e-10, atol=1e-10 * s.max())
    # coordinates in the eigenvectors: equal up to each eigenvector's sign; GCV reads their squares
    np.testing.assert_allclose(np.abs(tri.rotate(B)), np.abs(V.T @ B), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tri.unrotate(tri.rotate(B)), B, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tri.unrotate(np.diag(tri.s) @ tri.rotate(np.eye(D))), G, rtol=1e-9,
                               atol=1e-9 * s.max())
    assert tri.rotate(np.zeros((D, 0))).shape == (D, 0)


def test_primal_session_spectrum_gives_the_gcv_and_leave_one_out_of_eigh():
    rng = np.random.default_rng(5)
    n, D = 70, 25
    phi = np.abs(rng.normal(size=(n, D)))
    Y = (rng.random((n, 3)) < 0.4).astype(float)
    G, B = phi.T @ phi, phi.T @ Y
    sub = np.arange(0, n, 2)
    spectrum = ridge.SessionSpectrum.primal(G, B, phi[sub])
    assert spectrum.eig[1] is solve.identity(D)
    lambdas = ridge.lambda_grid(G, 9)
    yy = float((Y ** 2).sum())
    np.testing.assert_allclose(ridge.gcv_curve(G, spectrum.B, yy, n, lambdas, max_dof=1.0, eig=spectrum.eig),
                               ridge.gcv_curve(G, B, yy, n, lambdas, max_dof=1.0, eig=np.linalg.eigh(G)), rtol=1e-9)
    np.testing.assert_allclose(ridge.loo_path_scores(G, spectrum.B, spectrum.phi, Y[sub], lambdas, eig=spectrum.eig),
                               ridge.loo_path_scores(G, B, phi[sub], Y[sub], lambdas), rtol=1e-8, atol=1e-10)
    for lam in lambdas[::3]:
        np.testing.assert_allclose(spectrum.solve(lam), np.linalg.solve(G + lam * np.eye(D), B), rtol=1e-8)
        # eig_solve in the eigenvectors' coordinates (V = I): VᵀW, of the same column norms as W
        np.testing.assert_allclose(np.linalg.norm(ridge.eig_solve(spectrum.eig, spectrum.B, lam), axis=0),
                                   np.linalg.norm(np.linalg.solve(G + lam * np.eye(D), B), axis=0), rtol=1e-8)


def test_identity_is_shared_read_only_and_skipped():
    I = solve.identity(7)
    assert solve.identity(7) is I and not I.flags.writeable
    X = np.arange(14.0).reshape(7, 2)
    np.testing.assert_array_equal(solve._in_coordinates(I, X), X)
    np.testing.assert_array_equal(solve._in_coordinates(np.eye(7), X), X)  # another identity: multiplied, equal
