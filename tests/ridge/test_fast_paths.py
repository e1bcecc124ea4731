"""The ridge core's cheaper routes (issue 27) against direct references: the in-place Cholesky factor."""

import threading
import time

import numpy as np
import pytest

from mlcil import ridge


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
