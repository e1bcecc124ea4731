"""Calibrated (mlcil.learners.calibrated): held-out calibration for any learner, including full-label
learners, and the bench's choice between it and leave-one-out calibration."""

import numpy as np
import pytest

from mlcil.errors import MlcilError
from mlcil.learners import make_learner
from mlcil.learners.calibrated import Calibrated
from mlcil.metrics import expected_calibration_error
from mlcil.protocols import Protocol

from ..learners.conftest import make_dataset


@pytest.fixture(scope="module")
def stream():
    return Protocol("B0-C2", order="dataset").build(make_dataset(n=900, d=10, L=6, seed=5))


@pytest.mark.parametrize("spec", ["prototype", "finetune:epochs=3", "joint-sgd:epochs=3,hidden=16"])
def test_every_session_calibrated_and_aligned(stream, spec):
    model = Calibrated(make_learner(spec), method="platt")
    for t, session in enumerate(stream):
        data = stream.joint_session(t) if model.needs_full_labels else session
        model.learn(data)
        assert model.proba(stream.X_test).shape == (len(stream.X_test), len(model.classes_))
        assert model.thresholds_.shape == (len(model.classes_),)
        P = model.proba(stream.X_test)
        assert ((P >= 0) & (P <= 1)).all()
        if t == 0:  # right after the class's own session, on test rows drawn like its training rows
            rows = stream.test_rows(0)
            assert expected_calibration_error(stream.Y_test[rows][:, model.classes_], P[rows]) < 0.12


def test_calibration_beats_raw_sigmoid_of_prototype_cosines(stream):
    raw = make_learner("prototype")
    cal = Calibrated(make_learner("prototype"))
    for session in stream:
        raw.learn(session)
        cal.learn(session)
    Y = stream.Y_test[:, cal.classes_]
    from mlcil.decide.calibration import sigmoid

    assert expected_calibration_error(Y, cal.proba(stream.X_test)) < expected_calibration_error(
        Y, sigmoid(raw.scores(stream.X_test)))


def test_forget_drops_calibration_columns(stream):
    model = Calibrated(make_learner("prototype"))
    for session in stream:
        model.learn(session)
    P = model.proba(stream.X_test)
    model.forget(stream.sessions[0].classes)
    np.testing.assert_allclose(model.proba(stream.X_test), P[:, 2:], atol=1e-6)


def test_bad_holdout(stream):
    with pytest.raises(MlcilError, match="holdout"):
        Calibrated(make_learner("prototype"), holdout=1.5).learn(stream.sessions[0])


def test_bench_calibrates_the_analytic_family_without_holding_rows_out():
    from mlcil.bench.runner import BenchConfig, make_bench_learner

    for spec in ("analytic", "joint"):
        learner = make_bench_learner(spec, 0, BenchConfig(calibration="isotonic"))
        assert not isinstance(learner, Calibrated) and learner.calibration == "isotonic"
    assert isinstance(make_bench_learner("lda", 0, BenchConfig(calibration="platt")), Calibrated)
