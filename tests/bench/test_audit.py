"""The audit harness (mlcil.bench.audit): a learner's exact leave-one-out finds planted errors, a stream is
audited session by session; and the bench's tuned thresholds never read test rows."""

import numpy as np
import pytest

from mlcil.bench.audit import audit_stream, loo_proba
from mlcil.data.dataset import Dataset
from mlcil.decide.audit import find_label_errors, inject_label_noise, kfold_proba
from mlcil.errors import MlcilError
from mlcil.learners import Analytic, make_learner
from mlcil.protocols import Protocol, Session

from ..conftest import assert_audit_finds_planted_errors


def test_loo_audit_recovers_planted_errors(clean):
    X, Y = clean
    noisy = inject_label_noise(Y, drop=0.05, flip=0.02, seed=0)
    model = Analytic(M=128).learn(Session(X, noisy, np.arange(4), np.arange(len(X))))
    P = loo_proba(model, X, noisy, np.arange(4))
    result = find_label_errors(noisy, P)
    assert_audit_finds_planted_errors(noisy, Y, result)


def test_loo_needs_a_closed_form_learner(clean):
    X, Y = clean
    with pytest.raises(MlcilError, match="leave-one-out"):
        loo_proba(make_learner("prototype"), X, Y, np.arange(4))


@pytest.fixture(scope="module")
def stream(clean):
    X, Y = clean
    split = np.where(np.arange(len(X)) < 600, "train", "test")
    return Protocol("B0-C2", order="dataset").build(Dataset(X, Y, list("abcd"), split=split, name="clean"))


def test_audit_stream_loo_matches_its_parts(stream):
    """Each session's record: the learner after that session, its leave-one-out probabilities of the
    session's (noisy) rows, and the pure audit of them; the planted rows are the rows whose labels changed."""
    records = audit_stream(stream, learner="analytic:M=64", method="loo", noise=(0.1, 0.02), seed=3)
    assert [r["t"] for r in records] == [0, 1]
    model = make_learner("analytic:M=64", seed=3)
    for t, (rec, session) in enumerate(zip(records, stream)):
        np.testing.assert_array_equal(rec["Y"], inject_label_noise(session.Y, 0.1, 0.02, 3 * 1000 + t))
        np.testing.assert_array_equal(rec["planted"], (rec["Y"] != session.Y).any(axis=1))
        np.testing.assert_array_equal(rec["index"], session.index)
        model.learn(Session(session.X, rec["Y"], session.classes, session.index, t))
        P = model.leave_one_out(session.X, rec["Y"], session.classes)
        np.testing.assert_allclose(rec["proba"], P, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(rec["result"].ranking, find_label_errors(rec["Y"], rec["proba"]).ranking)
        assert rec["quality"]["n_errors"] == int(rec["planted"].sum()) and rec["quality"]["precision_at_k"] > 0.5


def test_audit_stream_kfold_and_clean_labels(stream):
    records = audit_stream(stream, learner="logistic", method="kfold", folds=3, seed=1)
    for rec, session in zip(records, stream):
        np.testing.assert_array_equal(rec["Y"], session.Y)
        assert rec["planted"] is None and rec["quality"] is None
        np.testing.assert_allclose(rec["proba"], kfold_proba(session.X, session.Y, folds=3, seed=1), atol=1e-12)
    # any mlcil learner through k-fold, behind the fit/predict_proba interface
    records = audit_stream(stream, learner="prototype", method="kfold", folds=3, seed=1)
    assert all(((r["proba"] >= 0) & (r["proba"] <= 1)).all() and r["proba"].shape == r["Y"].shape for r in records)


def test_audit_stream_errors(stream):
    with pytest.raises(MlcilError, match="method: expected 'loo' or 'kfold'"):
        audit_stream(stream, method="bootstrap")
    with pytest.raises(MlcilError, match="no closed-form leave-one-out"):
        audit_stream(stream, learner="prototype", method="loo")


def test_bench_thresholds_never_read_test_rows():
    """Tuned thresholds and calibration are the same whatever the test labels say."""
    from mlcil.bench.runner import BenchConfig, make_bench_learner, run_learner

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    Y = (X[:, :4] > 0.2).astype(np.uint8)
    split = np.where(np.arange(400) < 280, "train", "test")
    config = BenchConfig(protocol="B0-C2", calibration="platt")
    thresholds, tuned_f1 = [], []
    for scramble in (False, True):
        Yd = Y.copy()
        if scramble:
            Yd[split == "test"] = 1 - Yd[split == "test"]
        stream = Protocol("B0-C2", order="dataset").build(Dataset(X, Yd, list("abcd"), split=split, name="t"))
        row = []
        for spec in ("analytic:M=32", "prototype"):
            learner = make_bench_learner(spec, 0, config)
            for session in stream:
                learner.learn(session)
            row.append(learner.thresholds_)
        thresholds.append(row)
        tuned_f1.append(run_learner("prototype", stream, 0, config)["sessions"][-1]["CF1_tuned"])
    for a, b in zip(*thresholds):
        np.testing.assert_array_equal(a, b)
    assert tuned_f1[0] > 0.5 > tuned_f1[1]  # the test labels do change the *measured* F1
