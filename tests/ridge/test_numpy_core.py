"""The ridge core on NumPy/SciPy: torch's R reproduced without torch, no torch import on the CPU path,
the l2 scaling of rows near the float32 limits, the optional torch (GPU) path checked on CPU tensors."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil import ridge
from mlcil.errors import MlcilError


def test_importing_the_core_and_computing_on_cpu_never_imports_torch():
    code = ("import sys, numpy as np, mlcil.ridge as r\n"
            "X = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)\n"
            "f = r.FeatureMap.fit(X, M=20, scaling='l2', include_x=True)\n"
            "st = r.partial_statistics(f, X, (X[:, :2] > 0).astype(np.uint8))\n"
            "m = r.RidgeModel.solve(f, st, 1.0); m.predict(X); r.eigh(st.G)\n"
            "assert r.resolve_device('cpu') == 'cpu'\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("d, M, seed", [(1, 1, 0), (3, 5, 2), (9, 16, 3), (7, 13, 0), (17, 33, 11), (64, 96, 1),
                                        (100, 301, 7), (768, 512, 0), (5, 7, 2 ** 32 + 9), (4, 9, -12345)])
def test_gaussian_projection_reproduces_torch_randn(d, M, seed):
    """R = torch.randn(d, M, generator=manual_seed(seed)) / √d, including sizes below 16 (torch's serial
    path) and not divisible by 16 (its recomputed tail), and seeds above 2³² or negative (their low 32 bits)."""
    torch = pytest.importorskip("torch")
    expected = (torch.randn(d, M, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
                / np.sqrt(d)).numpy()
    R = ridge.gaussian_projection(d, M, seed)
    assert isinstance(R, np.ndarray) and R.dtype == np.float32 and R.shape == (d, M)
    if torch.backends.cpu.get_cpu_capability() == "AVX2":  # the path R is defined by (float32 angle)
        np.testing.assert_allclose(R, expected, rtol=1e-6, atol=0)
    else:  # torch's scalar path rounds the angle 2πu from double: a few ulps of the angle apart
        np.testing.assert_allclose(R, expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(R, ridge.gaussian_projection(d, M, seed))
    assert not np.array_equal(R, ridge.gaussian_projection(d, M, seed + 1)) or d * M == 0


def test_gaussian_projection_statistics():
    R = ridge.gaussian_projection(50, 4000, 5)
    assert abs(R.mean()) < 5 * R.std() / np.sqrt(R.size) and R.std() * np.sqrt(50) == pytest.approx(1.0, rel=0.01)
    with pytest.raises(MlcilError, match="gaussian_projection"):
        ridge.gaussian_projection(-1, 3, 0)


@pytest.mark.parametrize("sparse", [False, True])
def test_l2_rows_near_the_float32_limits_equal_the_float64_normalised_row(sparse):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 8))
    base[:, 3] = 0.0
    X = np.zeros((7, 8), dtype=np.float32)
    for i, scale in enumerate([1e30, 1e-30, 3e38 / np.abs(base[2]).max(), 1.0, 1e-42, 1e19]):
        X[i] = (base[i] * scale).astype(np.float32)  # row 4 holds float32 denormals; row 6 stays zero
    assert np.isfinite(X).all() and np.abs(X[2]).max() > 2.9e38
    X64 = X.astype(np.float64)
    norms = np.linalg.norm(X64, axis=1, keepdims=True)
    Z_ref = X64 / np.where(norms > 0, norms, 1.0)
    fmap = ridge.FeatureMap.fit(X, M=12, seed=1, scaling="l2", include_x=True)
    Xin = sp.csr_matrix(X) if sparse else X
    Z = fmap.inputs(Xin)
    Z = Z.toarray() if sparse else Z
    np.testing.assert_allclose(Z, Z_ref, rtol=2e-7, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(Z[:6].astype(np.float64), axis=1), 1.0, rtol=1e-6)
    assert not Z[6].any()
    phi = fmap(Xin)
    assert np.isfinite(phi).all()
    np.testing.assert_allclose(phi, np.hstack([np.maximum(Z_ref @ fmap.R.astype(np.float64), 0), Z_ref]),
                               rtol=1e-5, atol=1e-6)
    if sparse:  # the caller's matrix is not changed
        np.testing.assert_array_equal(Xin.toarray(), X)


def test_resolve_device_names():
    assert ridge.resolve_device("cpu") == "cpu" and ridge.resolve_device("cuda:1") == "cuda:1"
    for bad in ("gpu", "cuda:x", 3, ""):
        with pytest.raises(MlcilError, match="device"):
            ridge.resolve_device(bad)
    torch = pytest.importorskip("torch")
    assert ridge.resolve_device(torch.device("cpu")) == "cpu"
    assert ridge.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_torch_path_on_cpu_tensors_equals_the_numpy_path():
    """The GPU path (φ and the Gram products in torch) run on CPU tensors: same φ, statistics and scores."""
    pytest.importorskip("torch")
    from mlcil.ridge.stats import _device_statistics

    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 10)).astype(np.float32)
    Y = (rng.random((300, 4)) < 0.3).astype(np.uint8)
    w = rng.uniform(0.5, 2.0, 300)
    for scaling, Xin in (("standardize", X), ("scale", sp.csr_matrix(np.where(X > 0.5, X, 0)))):
        fmap = ridge.FeatureMap.fit(Xin, M=40, seed=4, scaling=scaling, include_x=True)
        np.testing.assert_allclose(fmap.on_device(Xin, "cpu").numpy(), fmap(Xin), rtol=1e-5, atol=1e-5)
        ref = ridge.partial_statistics(fmap, Xin, Y, w)
        for precision, tol in (("float64", 1e-5), ("float32", 1e-4)):
            st = _device_statistics(fmap, Xin, Y, w, precision, True, "cpu")
            assert isinstance(st.G, np.ndarray) and st.G.dtype == np.float64 and st.n == 300
            np.testing.assert_allclose(st.G, ref.G, rtol=tol, atol=tol * np.abs(ref.G).max())
            np.testing.assert_allclose(st.B, ref.B, rtol=tol, atol=tol * np.abs(ref.B).max())
        only_b = _device_statistics(fmap, Xin, Y, None, "float64", False, "cpu")
        assert only_b.G.shape == (0, 0) and only_b.B.shape == (fmap.D, 4)
        G, B = ridge.statistics(fmap.on_device(Xin, "cpu"), Y, w)  # a tensor Φ: multiplied in torch
        assert isinstance(G, np.ndarray) and isinstance(B, np.ndarray)
        np.testing.assert_allclose(G, ref.G, rtol=1e-5, atol=1e-5 * np.abs(ref.G).max())
        np.testing.assert_allclose(B, ref.B, rtol=1e-5, atol=1e-5 * np.abs(ref.B).max())


def test_feature_map_checks_its_arrays_and_pickles():
    X = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    fmap = ridge.FeatureMap.fit(X, M=8, scaling="standardize", clip=3.0)
    again = pickle.loads(pickle.dumps(fmap))
    assert again.same_as(fmap) and again.device == "cpu"
    np.testing.assert_array_equal(again(X), fmap(X))
    with pytest.raises(MlcilError, match="X: expected n×5"):
        fmap(X[:, :4])
    with pytest.raises(MlcilError, match=r"shift: expected shape \(5,\)"):
        ridge.FeatureMap(fmap.R, "standardize", np.zeros(4), np.ones(5))
    with pytest.raises(MlcilError, match="R: expected"):
        ridge.FeatureMap(np.zeros(5))
    with pytest.raises(MlcilError, match="device"):
        ridge.FeatureMap(fmap.R, device="tpu")


def test_statistics_precision_and_stats_checks():
    rng = np.random.default_rng(1)
    phi = rng.random((50, 6)).astype(np.float32)
    Y = (rng.random((50, 2)) < 0.5).astype(np.float32)
    G64, B64 = ridge.statistics(phi, Y)
    G32, B32 = ridge.statistics(phi, Y, precision="float32")
    assert G32.dtype == np.float64 and B32.dtype == np.float64
    P = phi.astype(np.float64)
    np.testing.assert_allclose(G64, P.T @ P, rtol=1e-12)
    np.testing.assert_allclose(G32, G64, rtol=1e-5)
    np.testing.assert_allclose(B32, B64, rtol=1e-5)
    assert ridge.statistics(phi, Y, gram=False)[0] is None
    for w in (rng.uniform(0.1, 3.0, 50), rng.normal(size=50)):  # √w Φ (syrk) and, with negative weights, wΦ
        Gw, Bw = ridge.statistics(phi, Y, w)
        assert np.array_equal(Gw, Gw.T) or (w < 0).any()  # syrk: exactly symmetric
        np.testing.assert_allclose(Gw, P.T @ (w[:, None] * P), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(Bw, P.T @ (w[:, None] * Y), rtol=1e-12, atol=1e-12)
        Gw32, _ = ridge.statistics(phi, Y, w, precision="float32")
        np.testing.assert_allclose(Gw32, Gw, rtol=1e-4, atol=1e-4 * np.abs(Gw).max())
    assert np.array_equal(G64, G64.T)
    with pytest.raises(MlcilError, match="precision"):
        ridge.statistics(phi, Y, precision="half")
    z = ridge.Stats.zeros(6, 2)
    assert z.D == 6 and z.C == 2 and z.n == 0 and z.nbytes == (36 + 12) * 8 and z.to("cpu") is z
    with pytest.raises(MlcilError, match="square"):
        ridge.Stats(np.zeros((3, 4)), np.zeros((3, 1)))
    with pytest.raises(MlcilError, match="B must be D×C"):
        ridge.Stats(np.zeros((3, 3)), np.zeros((4, 1)))
    with pytest.raises(MlcilError, match="new columns"):
        z.with_columns(np.zeros((5, 1)))
    with pytest.raises(MlcilError, match="weights"):
        X = rng.normal(size=(5, 3)).astype(np.float32)
        ridge.partial_statistics(ridge.FeatureMap.fit(X, M=4), X, np.ones((5, 1)), np.ones(4))


def test_eigh_and_lambda_grid_equal_numpy():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(30, 12))
    G = A.T @ A
    s, V = ridge.eigh(G)
    np.testing.assert_allclose(s, np.linalg.eigvalsh(G), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(V @ np.diag(s) @ V.T, G, rtol=1e-10, atol=1e-10)
    grid = ridge.lambda_grid(G, n=5, low=-2, high=2)
    np.testing.assert_allclose(grid, np.trace(G) / 12 * np.logspace(-2, 2, 5))
    with pytest.raises(MlcilError, match="NaN"):
        ridge.Factor(np.full((2, 2), np.nan), 1.0)


def test_eigh_runs_lapack_with_one_thread(monkeypatch):
    """One BLAS thread inside eigh (measured slowdowns with threads, see its docstring), restored after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg

    seen = []
    real = scipy.linalg.eigh

    def spy(*args, **kwargs):
        seen.append([lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"])
        return real(*args, **kwargs)

    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    monkeypatch.setattr(scipy.linalg, "eigh", spy)
    ridge.eigh(np.eye(4))
    assert seen and all(n == 1 for n in seen[0])
    assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"] == before
