"""Joint (ridge on random features) against a direct numpy reference."""

import numpy as np
import pytest

from mlcil.decide.calibration import apply_platt, fit_platt
from mlcil.learners import Joint
from mlcil import ridge
from mlcil.metrics import mean_average_precision
from mlcil.protocols import Session


def numpy_features(X, learner):
    """φ written out in numpy for each input scaling (the reference for the ridge core's FeatureMap)."""
    X = np.asarray(X, np.float64)
    if learner.scaling_ == "standardize":
        Z = (X - X_fit.mean(0)) / X_fit.std(0)
    elif learner.scaling_ == "scale":
        Z = X / np.sqrt((X_fit.astype(np.float64) ** 2).mean(0))
    elif learner.scaling_ == "l2":
        Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    else:
        Z = X
    R = learner.R_.astype(np.float64)
    phi = np.maximum(Z @ R, 0)
    return np.hstack([phi, Z]) if learner.include_x_ else phi


X_fit = None


@pytest.mark.parametrize("scaling", ["none", "standardize", "scale", "l2", "auto"])
def test_weights_equal_direct_solve(synthetic, scaling):
    global X_fit
    X, Y = synthetic.X, synthetic.Y
    X_fit = X
    learner = Joint(M=48, scaling=scaling).learn(Session(X, Y, np.arange(Y.shape[1]), np.arange(len(X))))
    if scaling == "auto":
        assert set(learner.scaling_scores_) == {"none", "standardize", "l2"}
        assert learner.scaling_ == max(learner.scaling_scores_, key=learner.scaling_scores_.get)
    else:
        assert learner.scaling_ == scaling
    assert learner.include_x_  # d = 12: 'auto' includes x
    phi = numpy_features(X, learner)
    W = np.linalg.solve(phi.T @ phi + learner.lambda_ * np.eye(phi.shape[1]), phi.T @ Y)
    # φ is computed in float32 (the reference in float64): agreement to float32 rounding, amplified
    # by the conditioning of G + λI
    np.testing.assert_allclose(learner.W_, W, rtol=1e-4, atol=1e-5 * np.abs(W).max())
    np.testing.assert_allclose(learner.scores(X), phi @ W, rtol=1e-4, atol=1e-4)


def test_validation_picks_a_useful_lambda_and_calibrates(synthetic):
    X, Y = synthetic.X, synthetic.Y
    learner = Joint(M=256).learn(Session(X, Y, np.arange(Y.shape[1]), np.arange(len(X))))
    best = int(np.nanargmax(learner.lambda_map_))
    assert learner.lambda_ == learner.lambda_grid_[best]
    mAP, _ = mean_average_precision(Y, learner.scores(X))
    assert mAP > 0.9
    P = learner.proba(X)
    # calibrated: mean predicted probability close to the positive rate
    assert abs(P.mean() - Y.mean()) < 0.05


def test_balance_weights_normalised():
    Y = np.array([[1, 0], [1, 0], [1, 0], [0, 1]])
    w = ridge.imbalance_weights(Y)
    assert np.isclose(w.mean(), 1.0)
    assert w[3] > w[0]  # the rare class's example weighs more
    np.testing.assert_allclose(w[3] / w[0], np.sqrt(3))


def test_platt_recovers_sigmoid_parameters():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(20000, 2)) * 2
    a_true, b_true = np.array([1.5, 0.7]), np.array([-0.5, 1.0])
    Y = rng.random(s.shape) < 1 / (1 + np.exp(-(a_true * s + b_true)))
    a, b = fit_platt(s, Y)
    np.testing.assert_allclose(a, a_true, atol=0.08)
    np.testing.assert_allclose(b, b_true, atol=0.08)
    P = apply_platt(s, a, b)
    assert ((P > 0) & (P < 1)).all()


def test_leave_one_out_equals_refitting_without_the_row():
    rng = np.random.default_rng(2)
    phi = rng.normal(size=(30, 6))
    Y = (rng.random((30, 2)) < 0.4).astype(float)
    w = rng.random(30) + 0.5
    G = (phi * w[:, None]).T @ phi
    B = (phi * w[:, None]).T @ Y
    lambdas = [0.1, 3.0]
    path = ridge.loo_path_scores(G, B, phi[:8], Y[:8], lambdas, w[:8])
    for li, lam in enumerate(lambdas):
        A = G + lam * np.eye(6)
        fixed = ridge.loo_scores(np.linalg.cholesky(A), np.linalg.solve(A, B), phi[:8], Y[:8], w[:8])
        for i in range(8):
            keep = np.arange(30) != i
            Gi = (phi[keep] * w[keep, None]).T @ phi[keep]
            Bi = (phi[keep] * w[keep, None]).T @ Y[keep]
            refit = phi[i] @ np.linalg.solve(Gi + lam * np.eye(6), Bi)
            np.testing.assert_allclose(path[li, i], refit, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(fixed[i], refit, rtol=1e-9, atol=1e-12)


def test_joint_stores_only_its_own_parameters_and_clones():
    """scikit-learn's contract: get_params() is the signature, the constructor stores them and nothing else."""
    import inspect

    from sklearn.base import clone

    from mlcil.errors import MlcilError

    joint = Joint(M=32, clip=3.0, lambda_search="gcv", seed=4, balance=True)
    signature = [p for p in inspect.signature(Joint.__init__).parameters if p != "self"]
    assert list(joint.get_params()) == signature and set(vars(joint)) == set(signature)
    assert "strategy" not in signature and joint.strategy == "negative" and joint.memory is None
    twin = clone(joint)
    assert twin is not joint and twin.get_params() == joint.get_params()
    with pytest.raises(MlcilError, match="unknown parameter 'strategy'"):
        joint.set_params(strategy="known")
