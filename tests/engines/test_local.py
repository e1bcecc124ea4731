"""The engine layer without Ray: block splitting, the fixed-order sum, the local engine, and the
refusal of learners that cannot be distributed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil import ridge
from mlcil.learners.calibrated import Calibrated
from mlcil.engines import LOCAL, LocalEngine, RayEngine, add, resolve_engine, split_rows, tree_add
from mlcil.errors import MlcilError
from mlcil.learners import make_learner
from .helpers import make_sessions


@pytest.mark.parametrize("n,k", [(10, 1), (10, 3), (10, 10), (3, 8), (0, 2)])
def test_split_rows_covers_every_row_once_in_order(n, k):
    bounds = split_rows(n, k)
    assert len(bounds) == k and bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1  # uneven by one row at most; k > n leaves empty blocks
    assert np.array_equal(np.concatenate([np.arange(a, b) for a, b in bounds]), np.arange(n))


def test_split_rows_by_sizes_and_bad_blocks():
    assert split_rows(6, [0, 2, 0, 4, 0]) == [(0, 0), (0, 2), (2, 2), (2, 6), (6, 6)]
    for bad in (0, -1, True, [1, 2], [3, -1, 4], "two", None):
        with pytest.raises(MlcilError, match="blocks"):
            split_rows(6, bad)


def test_add_is_structural():
    a = (np.ones(2), 3, (np.zeros(1), 1.5))
    total = tree_add([a, a, a])
    assert np.array_equal(total[0], [3.0, 3.0]) and total[1] == 9 and total[2][1] == 4.5
    with pytest.raises(MlcilError, match="different structure"):
        add((1, 2), (1,))
    with pytest.raises(MlcilError, match="nothing to sum"):
        tree_add([])


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("blocks", [1, 4, [0, 50, 0, 77, 0]])
def test_local_blocks_equal_a_direct_numpy_sum(sparse, blocks):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(127, 9)).astype(np.float32)
    if sparse:
        X = sp.csr_matrix(np.where(rng.random(X.shape) < 0.6, 0, np.abs(X)).astype(np.float32))
    Y = (rng.random((127, 4)) < 0.3).astype(np.uint8)
    w = rng.random(127)
    fmap = ridge.FeatureMap.fit(X, 32, seed=3, scaling="scale" if sparse else "standardize", include_x=True)
    st = LocalEngine(blocks=blocks).statistics(fmap, X, Y, w)
    # independent reference: one product in numpy of φ computed block by block. φ is float32 and BLAS may
    # round a row's zᵀR differently with the shape of its block (OpenBLAS's small-matrix kernels, MKL's
    # AVX2 path), so the reference takes each row's φ from the same block; the summation must be exact.
    Phi = np.concatenate([fmap(X[a:b]) for a, b in split_rows(127, blocks)]).astype(np.float64)
    assert isinstance(st.G, np.ndarray) and st.G.dtype == np.float64
    np.testing.assert_allclose(st.G, Phi.T @ (Phi * w[:, None]), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(st.B, Phi.T @ (Y * w[:, None]), rtol=1e-10, atol=1e-10)
    assert st.n == 127
    whole = fmap(X).astype(np.float64)  # φ of all rows at once: equal to float32 rounding
    np.testing.assert_allclose(st.G, whole.T @ (whole * w[:, None]), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["analytic:M=48", "joint:M=48", "prototype", "lda"])
def test_learners_through_local_blocks_equal_the_plain_learn(name):
    sessions = make_sessions()
    plain, blocked = make_learner(name), make_learner(name)
    for s in sessions:
        plain.learn(s)
        blocked.learn(s, engine=LocalEngine(blocks=5))
    X = sessions[1].X
    np.testing.assert_allclose(blocked.scores(X), plain.scores(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["finetune:epochs=1", "lwf:epochs=1", "replay:epochs=1", "joint-sgd:epochs=1",
                                  "pseudolabel:epochs=1"])
def test_gradient_learners_refuse_a_distributed_engine(name):
    learner = make_learner(name)
    engine = RayEngine()  # nothing starts before first use, so this needs no cluster (nor ray)
    with pytest.raises(MlcilError, match=rf"^{learner.name} cannot be distributed: its training is sequential "
                                         r"gradient descent; use engine='local'$"):
        learner.learn(make_sessions()[0], engine=engine)
    assert not learner.is_fitted and "_engine" not in vars(learner)
    wrapped = Calibrated(make_learner(name))
    with pytest.raises(MlcilError, match=f"^{learner.name} cannot be distributed"):
        wrapped.learn(make_sessions()[0], engine=engine)
    assert not wrapped.is_fitted and not wrapped.base.is_fitted


def test_resolve_engine():
    assert resolve_engine(None) is LOCAL and resolve_engine("local") is LOCAL
    engine = LocalEngine(blocks=2)
    assert resolve_engine(engine) is engine
    with pytest.raises(MlcilError, match="engine: expected one of local, ray"):
        resolve_engine("spark")
    with pytest.raises(MlcilError, match="engine"):
        make_learner("prototype").learn(make_sessions()[0], engine="dask")


def test_engine_is_not_kept_after_learn():
    learner = make_learner("analytic:M=16").learn(make_sessions()[0], engine=LocalEngine(blocks=2))
    assert "_engine" not in vars(learner) and learner._engine is None
    assert "_engine" not in learner._state_names()


def test_the_engines_and_their_statistics_import_no_torch():
    code = ("import sys, numpy as np, mlcil.engines, mlcil.engines.ray_engine as r\n"
            "from mlcil import ridge\n"
            "X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)\n"
            "f = ridge.FeatureMap.fit(X, M=8)\n"
            "st = mlcil.engines.LocalEngine(blocks=3).statistics(f, X, np.ones((40, 2)))\n"
            "assert isinstance(r.unpack(r.pack(st)).G, np.ndarray)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
