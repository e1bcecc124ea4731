"""Wide sparse inputs (bag-of-words shape) for every learner: CSR stays CSR, memory is checked first."""

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil.data.dataset import Dataset
from mlcil.errors import MlcilError
from mlcil.learners import LDA, REGISTRY, Analytic, Prototype, make_learner
from mlcil.metrics import mean_average_precision
from mlcil.protocols import Protocol, Session

from .conftest import FAST_PARAMS


def bag_of_words(n=400, d=20_000, L=6, seed=0):
    """Word counts (CSR); class c is present when the row uses 5 of its 10 topic words."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.002, format="csr", dtype=np.float32, random_state=seed)
    X.data = np.ceil(X.data * 3)
    topics = rng.choice(d, size=(L, 10), replace=False)
    Y = np.zeros((n, L), dtype=np.uint8)
    for c in range(L):
        rows = rng.random(n) < 0.3
        X = X.tolil()
        for _ in range(5):
            X[np.flatnonzero(rows), rng.choice(topics[c], size=rows.sum())] = 2.0
        X = X.tocsr()
        Y[rows, c] = 1
    Y[Y.sum(1) == 0, 0] = 1
    split = np.where(np.arange(n) < int(0.7 * n), "train", "test")
    return Dataset(X, Y, [f"c{i}" for i in range(L)], split=split, name="bow")


@pytest.fixture(scope="module")
def wide_stream():
    return Protocol("B0-C3", order="dataset").build(bag_of_words())


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_learner_learns_wide_csr_within_budget(name, wide_stream, monkeypatch):
    monkeypatch.setenv("MLCIL_MEMORY_BUDGET", "3GB")
    params = {**FAST_PARAMS.get(name, {}), **({"M": 512} if name in ("analytic", "joint") else {})}
    spec = name + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")
    learner = make_learner(spec, seed=0)
    for t in range(len(wide_stream)):
        learner.learn(wide_stream.joint_session(t) if learner.needs_full_labels else wide_stream.sessions[t])
    assert sp.issparse(wide_stream.X_test)
    S = learner.scores(wide_stream.X_test)
    assert S.shape == (wide_stream.X_test.shape[0], 6) and np.isfinite(S).all()
    if name in ("analytic", "joint", "prototype", "lda"):  # the topic words make this easy for them
        mAP, _ = mean_average_precision(wide_stream.Y_test, S[:, np.argsort(learner.classes_)])
        assert mAP > 0.6, mAP


def test_analytic_on_wide_input_keeps_x_out_and_never_standardises(wide_stream):
    learner = Analytic(M=64).learn(wide_stream.sessions[0])
    assert not learner.include_x_ and learner.feature_map.D == 64
    assert learner.scaling_ in ("none", "scale", "l2")
    assert set(learner.scaling_scores_) == {"none", "scale", "l2"}


@pytest.mark.parametrize("scaling", ["none", "scale", "l2"])
def test_analytic_csr_equals_dense(scaling):
    ds = bag_of_words(n=200, d=60, seed=1)
    X = ds.X
    idx = np.arange(200)
    sparse = Analytic(M=32, scaling=scaling, include_x=True).learn(Session(X, ds.Y[:, :3], np.arange(3), idx))
    dense = Analytic(M=32, scaling=scaling, include_x=True).learn(Session(X.toarray(), ds.Y[:, :3], np.arange(3), idx))
    assert sparse.lambda_ == pytest.approx(dense.lambda_, rel=1e-6)  # same grid point; traces differ in the last bits
    np.testing.assert_allclose(sparse.scale_ if scaling == "scale" else 0, dense.scale_ if scaling == "scale" else 0,
                               rtol=1e-6)
    np.testing.assert_allclose(sparse.scores(X), dense.scores(X.toarray()), rtol=1e-4, atol=1e-5)


def test_prototype_sparse_scores_equal_dense():
    ds = bag_of_words(n=200, d=80, seed=2)
    idx = np.arange(200)
    for center in (True, False):
        a = Prototype(center=center).learn(Session(ds.X, ds.Y, np.arange(6), idx))
        b = Prototype(center=center).learn(Session(ds.X.toarray(), ds.Y, np.arange(6), idx))
        np.testing.assert_allclose(a.scores(ds.X), b.scores(ds.X.toarray()), rtol=1e-5, atol=1e-6)


def test_state_over_the_budget_is_refused_before_anything_is_allocated(wide_stream):
    learner = Analytic(M=4096, memory_budget="50MB")
    with pytest.raises(MlcilError, match=r"analytic: would need .* over the memory budget of 50\.0 MB; lower M \(now 4096\)"):
        learner.learn(wide_stream.sessions[0])
    assert not learner.is_fitted and not learner.has_frame
    narrow = Analytic(M=64, include_x=True, memory_budget="1MB")
    with pytest.raises(MlcilError, match="include_x=False"):
        narrow.learn(Session(np.ones((10, 300), np.float32), np.ones((10, 1), np.uint8), np.array([0]), np.arange(10)))


def test_lda_goes_diagonal_on_wide_input_and_refuses_a_full_covariance_over_budget(wide_stream, monkeypatch):
    lda = LDA().learn(wide_stream.sessions[0])
    assert not lda.full_ and lda.Q_.shape == (20_000,)
    monkeypatch.setenv("MLCIL_MEMORY_BUDGET", "1GB")
    with pytest.raises(MlcilError, match="covariance='diag'"):
        LDA(covariance="full").learn(wide_stream.sessions[0])
