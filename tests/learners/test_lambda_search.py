"""lambda_search='sessions': λ re-chosen after every session, checked against brute-force leave-one-out."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mlcil.learners import Analytic
from mlcil.protocols import Protocol

from .conftest import make_dataset


def brute_force_curve(Phi_all, Phi, Y, grid):
    """Leave-one-out mAP of rows Phi (labels Y, already among Phi_all's rows) for each λ, by refitting
    without each row: W₋ᵢ = (G − φᵢφᵢᵀ + λI)⁻¹ (B − φᵢyᵢᵀ), G = Φ_allᵀΦ_all, B = ΦᵀY."""
    G = Phi_all.T @ Phi_all
    B = Phi.T @ Y
    curve = []
    for lam in grid:
        S = np.empty(Y.shape)
        for i in range(len(Phi)):
            f = Phi[i:i + 1]
            W = np.linalg.solve(G - f.T @ f + lam * np.eye(len(G)), B - f.T @ Y[i:i + 1])
            S[i] = f @ W
        curve.append(np.mean([average_precision_score(Y[:, j], S[:, j]) for j in range(Y.shape[1]) if Y[:, j].any()]))
    return np.array(curve)


def test_lambda_is_the_argmax_of_the_class_weighted_evidence():
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=260, d=6, L=5, seed=4))
    learner = Analytic(M=12, scaling="none", include_x=True, strategy="negative", n_lambdas=7, lambda_search="sessions")
    learner.learn(stream.sessions[0])
    grid = learner.lambda_grid_
    phi = lambda X: learner._features(X).double().numpy()  # noqa: E731
    P0 = phi(stream.sessions[0].X)
    curve0 = brute_force_curve(P0, P0, stream.sessions[0].Y.astype(float), grid)
    np.testing.assert_allclose(learner.lambda_evidence_, 2 * curve0, rtol=1e-6, atol=1e-9)
    for t in (1, 2):
        learner.learn(stream.sessions[t])
        Pt = phi(stream.sessions[t].X)
        P_all = np.vstack([phi(s.X) for s in stream.sessions[: t + 1]])
        curve = brute_force_curve(P_all, Pt, stream.sessions[t].Y.astype(float), grid)
        if t == 1:
            expected = 2 * curve0 + len(stream.sessions[t].classes) * curve
        else:
            expected = expected + len(stream.sessions[t].classes) * curve
        np.testing.assert_allclose(learner.lambda_evidence_, expected, rtol=1e-6, atol=1e-9)
        assert learner.lambda_ == grid[int(np.argmax(expected))]
        Y = np.hstack([np.vstack([s.Y if u == v else np.zeros((s.n, len(stream.sessions[u].classes)))
                                  for v, s in enumerate(stream.sessions[: t + 1])]) for u in range(t + 1)])
        W = np.linalg.solve(P_all.T @ P_all + learner.lambda_ * np.eye(P_all.shape[1]), P_all.T @ Y)
        np.testing.assert_allclose(learner.W_.numpy(), W, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("search", ["first", "sessions"])
def test_first_keeps_the_first_lambda(search):
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=300, d=8, L=6, seed=1))
    learner = Analytic(M=24, strategy="negative", lambda_search=search).learn(stream.sessions[0])
    first = learner.lambda_
    for s in stream.sessions[1:]:
        learner.learn(s)
    if search == "first":
        assert learner.lambda_ == first and not hasattr(learner, "lambda_evidence_")
    else:
        assert learner.lambda_ in learner.lambda_grid_
        assert learner.lambda_evidence_.shape == learner.lambda_grid_.shape
