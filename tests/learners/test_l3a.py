"""`l3a`: the paper's recursive update transcribed directly, the former benchmark head, the weights."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil.errors import MlcilError
from mlcil.learners import REGISTRY, make_learner
from mlcil.learners.l3a import L3A, L3A_F1_THRESHOLD, frequency_weights
from mlcil.metrics.conventions import get_convention
from mlcil.protocols import Protocol

from .conftest import make_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stream3():
    return Protocol("B2-C2", order="dataset").build(make_dataset(n=300, d=8, L=6, seed=3))


def recursive_l3a(stream, hidden, gamma, seed, eta=0.7):
    """The paper's recursive least squares, transcribed: R = (Φ₀ᵀΩ₀Φ₀ + γI)⁻¹, β = RΦ₀ᵀΩ₀Y₀; then per
    session R ← R − RΦᵀ(Ω⁻¹ + ΦRΦᵀ)⁻¹ΦR and β ← [β, 0] + RΦᵀΩ(Ỹ − Φ[β, 0]), Ỹ with pseudo-labels σ > η."""
    d = stream.sessions[0].X.shape[1]
    rng = np.random.default_rng(seed)
    W = rng.uniform(-1 / np.sqrt(d), 1 / np.sqrt(d), size=(d, hidden))
    b = rng.uniform(-1 / np.sqrt(d), 1 / np.sqrt(d), size=hidden)
    R, beta, counts = None, np.zeros((hidden, 0)), np.zeros(0)
    for s in stream:
        Phi = np.maximum(s.X.astype(np.float64) @ W + b, 0)
        k_old = beta.shape[1]
        Yt = np.hstack([(1 / (1 + np.exp(-(Phi @ beta))) > eta).astype(float), s.Y.astype(float)])
        counts = np.concatenate([counts, np.zeros(s.Y.shape[1])]) + Yt.sum(0)
        f = 1 / np.sqrt(np.maximum(counts, 1)) * (counts > 0)
        f = len(f) * f / f.sum()
        omega = np.array([f[row > 0].mean() if row.any() else 1.0 for row in Yt])
        beta = np.hstack([beta, np.zeros((hidden, s.Y.shape[1]))])
        if R is None:
            R = np.linalg.inv(Phi.T @ (omega[:, None] * Phi) + gamma * np.eye(hidden))
            beta = R @ Phi.T @ (omega[:, None] * Yt)
        else:
            K = np.linalg.inv(np.diag(1 / omega) + Phi @ R @ Phi.T)
            R = R - R @ Phi.T @ K @ Phi @ R
            beta = beta + R @ Phi.T @ (omega[:, None] * (Yt - Phi @ beta))
        assert k_old + s.Y.shape[1] == beta.shape[1]
    return beta


def test_matches_the_papers_recursive_update(stream3):
    learner = L3A(hidden=40, gamma=1.0, seed=5)
    for s in stream3:
        learner.learn(s)
    ref = recursive_l3a(stream3, 40, 1.0, 5)
    assert len(stream3) == 3
    np.testing.assert_allclose(learner.beta_, ref, atol=1e-6, rtol=0)
    # the pseudo-labels matter on this stream: without them the weights differ
    off = L3A(hidden=40, gamma=1.0, seed=5, pseudo_threshold=None)
    for s in stream3:
        off.learn(s)
    assert np.abs(off.beta_ - ref).max() > 1e-3


def _load_head():
    spec = importlib.util.spec_from_file_location("l3a_head", ROOT / "benchmarks" / "l3a_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("standardize,gamma", [(False, 1.0), (True, 1000.0)])
def test_agrees_with_the_benchmark_head(stream3, standardize, gamma):
    head = _load_head()
    learner = L3A(hidden=48, gamma=gamma, standardize=standardize, seed=2)
    for s in stream3:
        learner.learn(s)
    ref = head.reference_head(stream3, 48, gamma, standardize, True, True, learner.W_, learner.b_)
    np.testing.assert_allclose(learner.beta_, ref, atol=1e-6, rtol=0)
    # and the script's own entry point runs the learner
    assert 0 < head.run_head(stream3, 48, gamma, standardize, True, True, 2) <= 1


def test_frequency_weights_direct():
    Y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]])
    counts = np.array([4.0, 1.0, 0.0])
    f = np.array([1 / 2, 1.0, 0.0]) * 3 / 1.5
    np.testing.assert_allclose(frequency_weights(Y, counts), [f[0], (f[0] + f[1]) / 2, 1.0, f[2]])


def test_sparse_input_equals_dense(stream3):
    a, b = L3A(hidden=32, gamma=1.0, standardize=True), L3A(hidden=32, gamma=1.0, standardize=True)
    for s in stream3:
        a.learn(s)
        b.learn(sp.csr_matrix(s.X), s.Y, s.classes)
    np.testing.assert_allclose(a.beta_, b.beta_, atol=1e-8)
    np.testing.assert_allclose(b.scores(sp.csr_matrix(stream3.X_test)), a.scores(stream3.X_test), atol=1e-8)


def test_threshold_registry_and_bad_params(stream3):
    assert REGISTRY["l3a"] is L3A and make_learner("l3a:hidden=16").hidden == 16
    learner = L3A(hidden=16, gamma=1.0).learn(stream3.sessions[0])
    P = learner.proba(stream3.X_test)
    np.testing.assert_array_equal(learner.predict(stream3.X_test), (P >= L3A_F1_THRESHOLD).astype(np.uint8))
    assert get_convention("l3a").threshold == L3A_F1_THRESHOLD == 0.525
    for bad in ({"hidden": 0}, {"gamma": -1.0}, {"pseudo_threshold": 2.0}):
        with pytest.raises(MlcilError, match=next(iter(bad))):
            L3A(**bad).learn(stream3.sessions[0])
