"""The ridge core against direct numpy references: feature map (dense and CSR), statistics, solve,
leave-one-out, λ path, memory budget."""

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil import ridge
from mlcil.errors import MlcilError
from mlcil.metrics import average_precision


def data(n=120, d=9, C=3, seed=0, density=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    if density is not None:
        X = np.where(rng.random((n, d)) < density, np.abs(X), 0).astype(np.float32)
    Y = (rng.random((n, C)) < 0.3).astype(np.uint8)
    return X, Y


def numpy_phi(X, R, scaling, X_fit, include_x, clip=None):
    X = np.asarray(X, np.float64)
    F = np.asarray(X_fit, np.float64)
    spread = lambda v: np.where(v > 1e-12, v, 1.0)  # noqa: E731  (a constant column keeps scale 1)
    if scaling == "standardize":
        Z = (X - F.mean(0)) / spread(F.std(0))
    elif scaling == "scale":
        Z = X / spread(np.sqrt((F ** 2).mean(0)))
    elif scaling == "l2":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        Z = X / np.where(norms > 0, norms, 1)
    else:
        Z = X
    if clip is not None and scaling in ("standardize", "scale"):
        Z = np.clip(Z, -clip, clip)
    phi = np.maximum(Z @ np.asarray(R, dtype=np.float64), 0)
    return np.hstack([phi, Z]) if include_x else phi


@pytest.mark.parametrize("scaling", ridge.SCALINGS)
@pytest.mark.parametrize("include_x", [False, True])
def test_feature_map_dense_and_csr_equal_numpy(scaling, include_x):
    X, _ = data(density=0.3)
    X[5] = 0  # a zero row stays finite under l2
    fmap = ridge.FeatureMap.fit(X, M=16, seed=3, scaling=scaling, include_x=include_x)
    ref = numpy_phi(X, fmap.R, scaling, X, include_x)
    phi = fmap(X)
    assert isinstance(phi, np.ndarray) and phi.dtype == np.float32 and phi.shape == (120, fmap.D)
    np.testing.assert_allclose(phi, ref, rtol=1e-5, atol=1e-5)
    if scaling != "standardize":
        Xs = sp.csr_matrix(X)
        sparse_map = ridge.FeatureMap.fit(Xs, M=16, seed=3, scaling=scaling, include_x=include_x)
        np.testing.assert_allclose(sparse_map(Xs), ref, rtol=1e-5, atol=1e-5)
    assert fmap.D == 16 + (9 if include_x else 0)


@pytest.mark.parametrize("scaling", ridge.SCALINGS)
def test_clip_winsorises_the_per_column_scalings_of_rows_from_another_session(scaling):
    """Statistics from one block (a column constant there), applied to a shifted, heavy-tailed block:
    z is clipped to ±c for 'standardize' and 'scale' (dense and CSR alike), untouched for 'none' and 'l2'."""
    X_fit, _ = data(n=40, density=0.5, seed=1)
    X_fit[:, 2] = 1.0  # constant in the first session: scale 1
    X, _ = data(n=60, density=0.5, seed=2)
    X[:, 2] = 25.0
    X[::7] *= 40  # a heavy tail
    fmap = ridge.FeatureMap.fit(X_fit, M=16, seed=3, scaling=scaling, include_x=True, clip=2.5)
    ref = numpy_phi(X, fmap.R, scaling, X_fit, True, clip=2.5)
    np.testing.assert_allclose(fmap(X), ref, rtol=1e-5, atol=1e-4)
    z = fmap(X)[:, 16:]
    if scaling in ("standardize", "scale"):
        assert np.abs(z).max() == pytest.approx(2.5) and fmap.clips
        unclipped = ridge.FeatureMap.fit(X_fit, M=16, seed=3, scaling=scaling, include_x=True)
        assert np.abs(unclipped(X)[:, 16:]).max() > 20 and not unclipped.same_as(fmap)
    if scaling != "standardize":
        sparse_map = ridge.FeatureMap.fit(sp.csr_matrix(X_fit), M=16, seed=3, scaling=scaling, include_x=True,
                                          clip=2.5)
        np.testing.assert_allclose(sparse_map(sp.csr_matrix(X)), ref, rtol=1e-5, atol=1e-4)
    assert fmap.to("cpu").same_as(fmap) and fmap.to("cpu").clip == 2.5


@pytest.mark.parametrize("clip", [0, -1.0, float("nan"), float("inf"), True, "3"])
def test_clip_must_be_a_finite_positive_number(clip):
    X, _ = data()
    with pytest.raises(MlcilError, match="clip"):
        ridge.FeatureMap.fit(X, M=4, scaling="standardize", clip=clip)


def test_standardize_refuses_sparse_and_unknown_scaling():
    X, _ = data(density=0.3)
    with pytest.raises(MlcilError, match="scale"):
        ridge.fit_scaling(sp.csr_matrix(X), "standardize")
    with pytest.raises(MlcilError, match="scaling"):
        ridge.FeatureMap.fit(X, M=4, scaling="minmax")


def test_chunks_are_bounded_and_cover_every_row():
    X = sp.random(300, 50_000, density=1e-3, format="csr", dtype=np.float32, random_state=0)
    fmap = ridge.FeatureMap.fit(X, M=64, scaling="scale", include_x=False)
    step = ridge.rows_per_chunk(20_000)
    assert step * 20_000 * 4 <= ridge.features.CHUNK_BYTES
    seen = 0
    for rows, phi in fmap.chunks(X, chunk=128):
        assert phi.shape == (rows.stop - rows.start, 64)
        seen += phi.shape[0]
    assert seen == 300


def test_partial_statistics_equal_direct_products_and_add_exactly():
    X, Y = data(n=200)
    w = np.random.default_rng(1).random(200)
    fmap = ridge.FeatureMap.fit(X, M=20, scaling="standardize", include_x=True)
    Phi = fmap(X).astype(np.float64)
    st = ridge.partial_statistics(fmap, X, Y, w)
    assert st.G.dtype == np.float64 and st.B.dtype == np.float64
    np.testing.assert_allclose(st.G, Phi.T @ (Phi * w[:, None]), rtol=1e-10)
    np.testing.assert_allclose(st.B, Phi.T @ (Y * w[:, None]), rtol=1e-10, atol=1e-12)
    assert st.n == 200
    parts = [ridge.partial_statistics(fmap, X[a:b], Y[a:b], w[a:b]) for a, b in ((0, 70), (70, 70), (70, 200))]
    total = ridge.tree_sum(parts)
    # the sums add in float64, but φ of a row is float32 and, under some BLAS kernels (MKL's AVX2 path),
    # depends in its last bits on the shape of the block it was computed in: 7e-8 relative measured
    np.testing.assert_allclose(total.G, st.G, rtol=1e-6, atol=1e-6)
    assert total.n == 200
    back = total - parts[0]
    np.testing.assert_allclose(back.G, ridge.partial_statistics(fmap, X[70:], Y[70:], w[70:]).G, rtol=1e-9, atol=1e-9)
    kept = st.select(np.array([True, False, True]))
    np.testing.assert_array_equal(kept.B, st.B[:, [0, 2]])
    np.testing.assert_array_equal(st.select([2, 0]).B, st.B[:, [2, 0]])
    assert st.with_columns(st.B[:, :1]).C == 4
    with pytest.raises(MlcilError, match="shapes"):
        st + kept


def test_factor_solve_and_leave_one_out_equal_refits():
    X, Y = data(n=60, d=5)
    fmap = ridge.FeatureMap.fit(X, M=12, scaling="standardize", include_x=True)
    Phi = fmap(X).astype(np.float64)
    st = ridge.partial_statistics(fmap, X, Y)
    lam = 0.7
    factor = ridge.Factor(st.G, lam)
    W = factor.solve(st.B)
    A = st.G + lam * np.eye(st.D)
    np.testing.assert_allclose(W, np.linalg.solve(A, st.B), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(factor.L @ factor.L.T, A, rtol=1e-12, atol=1e-9)
    assert np.array_equal(factor.L, np.tril(factor.L))
    loo = factor.loo_scores(W, Phi, Y)
    P = Phi
    for i in (0, 17, 59):  # brute force: refit without row i
        keep = np.arange(60) != i
        Wi = np.linalg.solve(P[keep].T @ P[keep] + lam * np.eye(st.D), P[keep].T @ Y[keep])
        np.testing.assert_allclose(loo[i], P[i] @ Wi, rtol=1e-7, atol=1e-9)
    lambdas = [0.1, 0.7, 5.0]
    path = ridge.loo_path_scores(st.G, st.B, Phi, Y, lambdas)
    assert isinstance(path, np.ndarray) and path.shape == (3, 60, 3) and path.dtype == np.float64
    np.testing.assert_allclose(path[1], loo, rtol=1e-6, atol=1e-8)
    best, maps = ridge.choose_lambda(st.G, st.B, Phi, Y, lambdas)
    expected = [np.mean(average_precision(Y, p)) for p in path]
    np.testing.assert_allclose(maps, expected, rtol=1e-12)
    assert best == lambdas[int(np.argmax(expected))]


def test_not_positive_definite_is_a_clear_error_and_solve_falls_back():
    G = np.array([[1.0, 0.0], [0.0, -1.0]])
    with pytest.raises(ridge.NotPositiveDefinite, match="positive definite"):
        ridge.Factor(G, 0.0)
    B = np.ones((2, 1))
    W = ridge.ridge_solve(G, B, 0.5)
    np.testing.assert_allclose(W, np.linalg.solve(G + 0.5 * np.eye(2), B), rtol=1e-9)


def test_memory_budget_parsing_and_refusal(monkeypatch):
    assert ridge.memory.parse_size("8GB") == 8_000_000_000
    assert ridge.memory.parse_size("1.5 GiB") == int(1.5 * 2**30)
    assert ridge.memory.parse_size(4096) == 4096
    assert 0 < ridge.memory.parse_size(0.25) <= ridge.memory.available_memory()
    for bad in ("lots", -1, True, "0"):
        with pytest.raises(MlcilError, match="memory_budget"):
            ridge.memory.parse_size(bad)
    monkeypatch.setenv("MLCIL_MEMORY_BUDGET", "1MB")
    assert ridge.memory_budget() == 1_000_000
    with pytest.raises(MlcilError, match=r"analytic: would need 2\.0 MB .*over the memory budget of 1\.0 MB; lower M"):
        ridge.check_budget("analytic", {"G": 2_000_000}, hint="lower M")
    assert ridge.check_budget("analytic", {"G": 2_000_000}, budget="3MB") == 2_000_000


def direct_gcv(Phi, Y, w, lam):
    """GCV by the explicit weighted hat matrix: H = Φ(ΦᵀWΦ + λI)⁻¹ΦᵀW,
    GCV = Σ w‖y − Hy‖² / n / (1 − tr H / n)², n = Σ w."""
    Wd = np.diag(w)
    H = Phi @ np.linalg.solve(Phi.T @ Wd @ Phi + lam * np.eye(Phi.shape[1]), Phi.T @ Wd)
    n = w.sum()
    R = Y - H @ Y
    return float(np.sum(w[:, None] * R ** 2)) / n / (1 - np.trace(H) / n) ** 2, float(np.trace(H))


@pytest.mark.parametrize("weighted", [False, True])
def test_gcv_curve_equals_the_explicit_hat_matrix(weighted):
    rng = np.random.default_rng(3)
    n, D, C = 40, 12, 3
    Phi = rng.normal(size=(n, D))
    Y = (rng.random((n, C)) < 0.4).astype(float)
    w = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    G = Phi.T @ (w[:, None] * Phi)
    B = Phi.T @ (w[:, None] * Y)
    lambdas = np.logspace(-3, 3, 9)
    curve = ridge.gcv_curve(G, B, float(w @ (Y ** 2).sum(1)), float(w.sum()), lambdas, max_dof=1.0)
    expected = [direct_gcv(Phi, Y, w, lam)[0] for lam in lambdas]
    np.testing.assert_allclose(curve, expected, rtol=1e-9)


@pytest.mark.parametrize("weighted", [False, True])
def test_gcv_column_curves_are_each_columns_explicit_gcv_and_share_the_cap(weighted):
    rng = np.random.default_rng(5)
    n, D, C = 30, 24, 4
    Phi = rng.normal(size=(n, D))
    Y = (rng.random((n, C)) < [0.5, 0.2, 0.1, 0.3]).astype(float)
    w = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    G, B = Phi.T @ (w[:, None] * Phi), Phi.T @ (w[:, None] * Y)
    lambdas = np.logspace(-3, 3, 9)
    curves = ridge.gcv_column_curves(G, B, w @ Y ** 2, float(w.sum()), lambdas)
    assert curves.shape == (C, len(lambdas))
    for j, lam in enumerate(lambdas):
        dof = direct_gcv(Phi, Y, w, lam)[1]
        for c in range(C):
            if dof > ridge.GCV_MAX_DOF * w.sum():
                assert np.isinf(curves[c, j])
            else:
                assert curves[c, j] == pytest.approx(direct_gcv(Phi, Y[:, [c]], w, lam)[0], rel=1e-9)
    assert np.isinf(curves).any() and np.isfinite(curves).any()  # (both sides of the cap are exercised)
    total = ridge.gcv_curve(G, B, float(w @ (Y ** 2).sum(1)), float(w.sum()), lambdas)
    np.testing.assert_allclose(curves.sum(axis=0), total, rtol=1e-9)


def test_gcv_curve_refuses_lambdas_whose_degrees_of_freedom_exceed_the_cap():
    rng = np.random.default_rng(4)
    n, D = 20, 60  # more features than rows: at small λ tr H → n and GCV would reward interpolation
    Phi = rng.normal(size=(n, D))
    Y = (rng.random((n, 2)) < 0.5).astype(float)
    G, B = Phi.T @ Phi, Phi.T @ Y
    lambdas = np.logspace(-4, 4, 17)
    curve = ridge.gcv_curve(G, B, float((Y ** 2).sum()), float(n), lambdas)
    dof = np.array([direct_gcv(Phi, Y, np.ones(n), lam)[1] for lam in lambdas])
    assert np.isinf(curve[dof > ridge.GCV_MAX_DOF * n]).all() and (dof > ridge.GCV_MAX_DOF * n).any()
    assert np.isfinite(curve[dof <= ridge.GCV_MAX_DOF * n]).all() and (dof <= ridge.GCV_MAX_DOF * n).any()


def test_gcv_minimum_is_the_continuous_minimum_of_the_explicit_gcv():
    """The grid brackets the minimum; the refinement lands where scipy's bounded search on the explicit hat
    matrix GCV lands (in log λ), whichever grid points bracket it; an all-infinite curve gives the grid's end."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(5)
    n, D, C = 80, 30, 3
    Phi = rng.normal(size=(n, D))
    Y = ((Phi[:, :C] + rng.normal(scale=2.0, size=(n, C))) > 0.8).astype(float)
    G, B, yy = Phi.T @ Phi, Phi.T @ Y, float((Y ** 2).sum())
    f = lambda t: direct_gcv(Phi, Y, np.ones(n), np.exp(t))[0]  # noqa: E731
    ref = np.exp(minimize_scalar(f, bounds=(np.log(1e-3), np.log(1e4)), method="bounded",
                                 options={"xatol": 1e-10}).x)
    assert 1e-2 < ref < 1e3  # an interior minimum
    for grid in (np.logspace(-3, 4, 15), np.logspace(-2.9, 4.1, 22)):
        lam, curve = ridge.gcv_minimum(G, B, yy, float(n), grid)
        np.testing.assert_allclose(curve, ridge.gcv_curve(G, B, yy, float(n), grid))
        assert lam == pytest.approx(ref, rel=1e-5) and curve.min() >= f(np.log(lam))
    small = np.logspace(-3, 0, 5)
    lam, curve = ridge.gcv_minimum(G, B, yy, 4.0, small)  # 4 rows: every λ here exceeds the dof cap
    assert np.isinf(curve).all() and lam == small[-1]
