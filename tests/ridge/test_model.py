"""RidgeModel, the one solved model, against direct numpy references (np.linalg.solve, an explicit sigmoid)."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil import ridge
from mlcil.decide.calibration import fit_calibration
from mlcil.errors import MlcilError


def problem(n=150, d=7, C=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = ((X[:, :C] + rng.normal(scale=0.7, size=(n, C))) > 0.4).astype(np.uint8)
    fmap = ridge.FeatureMap.fit(X, M=24, seed=2, scaling="standardize", include_x=True)
    return X, Y, fmap, ridge.partial_statistics(fmap, X, Y)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_solve_scores_and_default_probabilities_equal_numpy():
    X, Y, fmap, st = problem()
    model = ridge.RidgeModel.solve(fmap, st, 0.3)
    Phi = np.asarray(fmap(X), dtype=np.float64)
    W = np.linalg.solve(Phi.T @ Phi + 0.3 * np.eye(fmap.D), Phi.T @ Y)
    np.testing.assert_allclose(model.W, W, rtol=1e-7, atol=1e-9)
    assert model.W.dtype == np.float64 and model.n_classes == 3 and model.lam == 0.3
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.lam = 1.0
    S = model.scores(X)
    assert S.dtype == np.float32 and S.shape == (150, 3)
    np.testing.assert_allclose(S, Phi @ W, rtol=1e-5, atol=1e-5)
    a, b = ridge.DEFAULT_PLATT
    P = model.proba(X)
    assert P.dtype == np.float64 and P.min() >= 0 and P.max() <= 1
    np.testing.assert_allclose(P, sigmoid(a * (Phi @ W) + b), rtol=1e-5, atol=1e-6)
    assert model.proba_from_scores(np.array([[0.5, 1.0, 0.0]])) == pytest.approx(
        np.array([[0.5, sigmoid(2.0), sigmoid(-2.0)]]))
    np.testing.assert_array_equal(model.predict(X), (P >= ridge.DEFAULT_THRESHOLD).astype(np.uint8))
    np.testing.assert_array_equal(model.predict(X, threshold=0.8), (P >= 0.8).astype(np.uint8))
    assert model.predict(X).dtype == np.uint8
    with pytest.raises(MlcilError, match="standardize"):  # centring would densify CSR rows
        model.scores(sp.csr_matrix(X))
    sparse_map = ridge.FeatureMap.fit(X, M=24, seed=2, scaling="scale", include_x=True)
    sparse_model = ridge.RidgeModel.solve(sparse_map, ridge.partial_statistics(sparse_map, X, Y), 0.3)
    np.testing.assert_allclose(sparse_model.scores(sp.csr_matrix(X)), sparse_model.scores(X), rtol=1e-5, atol=1e-5)


def test_calibration_and_per_class_thresholds():
    X, Y, fmap, st = problem()
    plain = ridge.RidgeModel.solve(fmap, st, 1.0)
    S = plain.scores(X)
    platt = fit_calibration("platt", S, Y)
    t = np.array([0.2, 0.5, 0.9])
    model = ridge.RidgeModel.solve(fmap, st, 1.0, calibration=platt, thresholds=t)
    P = model.proba(X)
    np.testing.assert_allclose(P, sigmoid(platt["a"] * S.astype(np.float64) + platt["b"]), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(model.decide(P), P >= t[None, :])
    np.testing.assert_array_equal(model.decide(P, threshold=0.6), P >= 0.6)
    iso = fit_calibration("isotonic", S, Y)
    model = ridge.RidgeModel(fmap, plain.W, 1.0, calibration=iso)
    P = model.proba(X)
    assert P.min() >= 0 and P.max() <= 1
    for c in range(3):  # isotonic is non-decreasing in the score, per class
        order = np.argsort(S[:, c], kind="stable")
        assert np.all(np.diff(P[order, c]) >= -1e-12)


def test_no_class_gives_an_empty_model():
    X, _, fmap, _ = problem()
    st = ridge.Stats(np.eye(fmap.D), np.zeros((fmap.D, 0)), 0)
    model = ridge.RidgeModel.solve(fmap, st, 1.0)
    assert model.W.shape == (fmap.D, 0) and model.n_classes == 0
    assert model.scores(X).shape == (150, 0) and model.proba(X).shape == (150, 0)
    assert model.predict(X).shape == (150, 0)


def test_singular_system_falls_back_to_least_squares():
    X, Y, fmap, st = problem(n=10)  # D = 31 > 10 rows: G is singular, λ = 0
    model = ridge.RidgeModel.solve(fmap, st, 0.0)
    W = np.linalg.lstsq(st.G, st.B, rcond=None)[0]
    np.testing.assert_allclose(st.G @ model.W, st.G @ W, rtol=1e-6, atol=1e-6)


def test_bad_input_names_the_field():
    X, Y, fmap, st = problem()
    model = ridge.RidgeModel.solve(fmap, st, 1.0)
    with pytest.raises(MlcilError, match="X: expected an n×7"):
        model.scores(X[:, :3])
    with pytest.raises(MlcilError, match="W: expected shape"):
        ridge.RidgeModel(fmap, np.zeros((5, 3)), 1.0)
    with pytest.raises(MlcilError, match=r"thresholds: expected shape \(3,\)"):
        ridge.RidgeModel(fmap, model.W, 1.0, thresholds=[0.5])
    with pytest.raises(MlcilError, match=r"calibration\['a'\]"):
        ridge.RidgeModel(fmap, model.W, 1.0, calibration={"a": np.ones(2), "b": np.ones(2)})
    with pytest.raises(MlcilError, match="calibration: expected keys"):
        ridge.RidgeModel(fmap, model.W, 1.0, calibration={"slope": np.ones(3)})
    with pytest.raises(MlcilError, match="stats: G is"):
        ridge.RidgeModel.solve(fmap, ridge.Stats.zeros(4, 3), 1.0)
    for bad in (-1.0, float("nan"), "1"):
        with pytest.raises(MlcilError, match="lam"):
            ridge.RidgeModel.solve(fmap, st, bad)
    with pytest.raises(MlcilError, match="X: expected real numbers"):
        model.scores(np.full((2, 7), "a"))
    with pytest.raises(MlcilError, match="P: expected"):
        model.decide(np.zeros((2, 5)))
