"""Joint (ridge on random features) against a direct numpy reference."""

import numpy as np

from mlcil.decide.calibration import apply_platt, fit_platt
from mlcil.learners import Joint
from mlcil.learners import ridge
from mlcil.metrics import mean_average_precision
from mlcil.protocols import Session


def numpy_features(X, learner):
    Z = (X - learner.mean_) / learner.scale_
    R = learner.R_.cpu().numpy().astype(np.float64)
    phi = np.maximum(Z.astype(np.float64) @ R, 0)
    return np.hstack([phi, Z]) if learner.include_x else phi


def test_weights_equal_direct_solve(synthetic):
    X, Y = synthetic.X, synthetic.Y
    learner = Joint(M=48, val_fraction=0.0).learn(Session(X, Y, np.arange(Y.shape[1]), np.arange(len(X))))
    phi = numpy_features(X, learner)
    W = np.linalg.solve(phi.T @ phi + learner.lambda_ * np.eye(phi.shape[1]), phi.T @ Y)
    np.testing.assert_allclose(learner.W_.cpu().numpy(), W, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(learner.scores(X), phi @ W, rtol=1e-4, atol=1e-4)


def test_lambda_path_matches_individual_solves():
    rng = np.random.default_rng(1)
    import torch

    phi = torch.as_tensor(rng.normal(size=(80, 10)))
    Y = torch.as_tensor((rng.random((80, 3)) < 0.4).astype(float))
    G, B = ridge.statistics(phi, Y)
    lambdas = [0.01, 1.0, 100.0]
    path = ridge.ridge_path_scores(G, B, phi[:20], lambdas).numpy()
    for lam, scores in zip(lambdas, path):
        W = np.linalg.solve(G.numpy() + lam * np.eye(10), B.numpy())
        np.testing.assert_allclose(scores, phi[:20].numpy() @ W, rtol=1e-8, atol=1e-10)


def test_validation_picks_a_useful_lambda_and_calibrates(synthetic):
    X, Y = synthetic.X, synthetic.Y
    learner = Joint(M=256).learn(Session(X, Y, np.arange(Y.shape[1]), np.arange(len(X))))
    assert np.nanmax(learner.val_map_) == learner.val_map_[np.nanargmax(learner.val_map_)]
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
