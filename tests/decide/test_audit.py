"""The label-error audit's pure functions: it finds planted errors from out-of-sample probabilities; k-fold
probabilities are out of sample. (Leave-one-out of a learner and the audit of a stream: tests/bench/test_audit.py.)"""

import numpy as np
import pytest

from mlcil.decide.audit import (audit_quality, audit_scores, find_label_errors, inject_label_noise, kfold_proba,
                                label_lists)
from mlcil.errors import MlcilError

from ..conftest import assert_audit_finds_planted_errors


def test_inject_label_noise_rates(clean):
    _, Y = clean
    noisy = inject_label_noise(Y, drop=0.1, flip=0.02, seed=3)
    pos = Y.astype(bool)
    assert abs((noisy[pos] == 0).mean() - 0.1) < 0.03
    assert abs((noisy[~pos] == 1).mean() - 0.02) < 0.01
    np.testing.assert_array_equal(noisy, inject_label_noise(Y, drop=0.1, flip=0.02, seed=3))


def test_label_lists():
    assert label_lists(np.array([[1, 0, 1], [0, 0, 0]])) == [[0, 2], []]


def test_audit_recovers_planted_errors(clean):
    X, Y = clean
    noisy = inject_label_noise(Y, drop=0.05, flip=0.02, seed=0)
    P = kfold_proba(X, noisy, folds=5)
    result = find_label_errors(noisy, P)
    assert_audit_finds_planted_errors(noisy, Y, result)


def test_kfold_predictions_are_out_of_sample(clean):
    """A model that memorises its training rows returns, out of sample, the fold's other rows' values."""
    X, Y = clean

    class Memorise:
        def fit(self, X, Y):
            self.X, self.Y = np.asarray(X), np.asarray(Y)
            return self

        def predict_proba(self, X):
            d = ((np.asarray(X)[:, None, :] - self.X[None]) ** 2).sum(-1)
            return self.Y[d.argmin(1)].astype(float)

    P = kfold_proba(X[:100], Y[:100], make_model=Memorise, folds=4)
    in_sample = Memorise().fit(X[:100], Y[:100]).predict_proba(X[:100])
    np.testing.assert_array_equal(in_sample, Y[:100])
    assert not np.array_equal(P, Y[:100].astype(float))  # a row never predicts itself


def test_single_class_and_bad_shapes(clean):
    X, Y = clean
    r = find_label_errors(Y[:, :1], np.clip(Y[:, :1] * 0.9 + 0.05, 0, 1))
    assert r.quality.shape == (len(Y),) and not r.flagged.any()
    with pytest.raises(MlcilError, match="proba"):
        find_label_errors(Y, np.zeros((3, 3)))
    with pytest.raises(MlcilError, match="folds"):
        kfold_proba(X[:3], Y[:3], folds=5)


def test_audit_scores_calibrates_raw_scores(clean):
    X, Y = clean
    noisy = inject_label_noise(Y[:, :1], drop=0.1, flip=0.05, seed=1)[:, 0]
    raw = 3.0 * X[:, 0] - 0.9  # an uncalibrated score that orders rows like the true label
    result = audit_scores(noisy, raw)
    quality = audit_quality(noisy != Y[:, 0], result)
    assert quality["precision_at_k"] > 0.7
    with pytest.raises(MlcilError, match="scores"):
        audit_scores(Y, raw)


def test_audit_forks_no_worker_pool_by_default(monkeypatch):
    """cleanlab forks a multiprocessing pool unless told n_jobs=1; a fork of a process that runs
    threads (a Ray driver, a web server) can hang, so the audit must not fork by default."""
    import multiprocessing
    import multiprocessing.pool

    def no_pool(*args, **kwargs):
        raise AssertionError("the audit forked a worker pool")

    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    monkeypatch.setattr(multiprocessing.pool, "Pool", no_pool)
    rng = np.random.default_rng(0)
    Y = (rng.random((400, 5)) < 0.3).astype(np.uint8)
    P = np.clip(Y * 0.8 + rng.random(Y.shape) * 0.2, 0, 1)
    result = find_label_errors(Y, P)
    assert result.quality.shape == (400,) and result.suspect.shape == (400, 5)


def test_one_class_with_one_given_value_ranks_by_self_confidence():
    """Every row given the same value (all positive, or all negative): nothing for cleanlab to contrast, so
    quality is the probability of the given value and a row is flagged below 0.5 (what the service's audit
    of a label with only positives uses)."""
    from mlcil.decide.audit import find_label_errors

    proba = np.array([0.9, 0.2, 0.6, 0.45])
    for value in (1, 0):
        Y = np.full((4, 1), value, dtype=np.uint8)
        result = find_label_errors(Y, proba[:, None])
        expected = proba if value else 1 - proba
        np.testing.assert_allclose(result.quality, expected)
        np.testing.assert_array_equal(result.flagged, expected < 0.5)
        np.testing.assert_array_equal(result.suspect[:, 0], expected < 0.5)
        np.testing.assert_array_equal(result.ranking, np.argsort(expected, kind="stable"))
