"""mlcil.learners.analytic.absence: the α search and pseudo-labels as pure functions."""

import numpy as np
import pytest

import mlcil.ridge.absence as ridge_absence
from mlcil.decide.calibration import sigmoid
from mlcil.learners.analytic import absence


def test_pseudo_labels_follow_each_rule():
    S = np.array([[-0.5, 0.8, 0.9], [1.4, 0.85, 0.2]])
    soft = absence.pseudo_labels(S, "soft", "ridge", None, None)
    np.testing.assert_array_equal(soft, np.clip(S, 0, 1))
    ridge_rule = absence.pseudo_labels(S, 0.7, "ridge", None, None)  # σ(s) > 0.7 ⟺ s > log(0.7/0.3) ≈ 0.847
    np.testing.assert_array_equal(ridge_rule, (S > np.log(0.7 / 0.3)).astype(np.uint8))
    np.testing.assert_array_equal(ridge_rule, (sigmoid(S) > 0.7).astype(np.uint8))

    def proba(scores):
        return np.clip(scores, 0, 1)

    np.testing.assert_array_equal(absence.pseudo_labels(S, 0.7, "platt", proba, None), (proba(S) > 0.7))
    thresholds = np.array([0.1, 0.9, 0.5])
    np.testing.assert_array_equal(absence.pseudo_labels(S, "calibrated", "ridge", proba, thresholds),
                                  (proba(S) > thresholds))


def features_of(X):
    return np.maximum(np.asarray(X, dtype=np.float64) @ np.linspace(-1, 1, 24).reshape(3, 8), 0.0)


def test_choose_alpha_has_nothing_to_simulate_with_one_class_or_few_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    assert absence.choose_alpha(features_of, X, (X[:, :1] > 0).astype(np.uint8), None, 1.0, 0, 100, False) == \
        (absence.DEFAULT_ALPHA, None)
    assert absence.choose_alpha(features_of, X[:9], (X[:9] > 0).astype(np.uint8), None, 1.0, 0, 100, False) == \
        (absence.DEFAULT_ALPHA, None)


@pytest.mark.parametrize("memory", [False, True])
def test_choose_alpha_is_the_best_scored_alpha_and_the_dual_scores_like_the_primal(memory, monkeypatch):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    Y = (X + 0.3 * rng.normal(size=X.shape) > 0.2).astype(np.uint8)
    w = rng.random(60) + 0.5
    alpha, scores = absence.choose_alpha(features_of, X, Y, w, 0.5, 3, 40, memory)  # 60 rows > 8 features: primal
    assert len(scores) == len(absence.ALPHA_GRID) and all(0.0 <= s <= 1.0 for s in scores)
    assert alpha == absence.ALPHA_GRID[int(np.argmax(scores))]
    monkeypatch.setattr(ridge_absence, "use_dual", lambda n, D: True)
    alpha_dual, scores_dual = absence.choose_alpha(features_of, X, Y, w, 0.5, 3, 40, memory)
    assert alpha_dual == alpha
    np.testing.assert_allclose(scores_dual, scores, rtol=1e-9)
