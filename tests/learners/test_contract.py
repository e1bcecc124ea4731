"""The contract every registered learner passes (scikit-learn's check_estimator, for mlcil)."""

import numpy as np
import pytest

from mlcil.errors import MlcilError
from mlcil.learners import REGISTRY, Learner, make_learner
from mlcil.protocols import Session

from .conftest import FAST_PARAMS


def build(name):
    spec = name + (":" + ",".join(f"{k}={v}" for k, v in FAST_PARAMS.get(name, {}).items()) if FAST_PARAMS.get(name) else "")
    return make_learner(spec, seed=0)


def feed(learner, stream, t):
    return learner.learn(stream.joint_session(t) if learner.needs_full_labels else stream.sessions[t])


def snapshot(learner, X):
    return learner.classes_.copy(), learner.scores(X).copy()


NAMES = sorted(REGISTRY)


@pytest.mark.parametrize("name", NAMES)
def test_two_sessions_shapes_and_classes(name, stream):
    learner = build(name)
    feed(learner, stream, 0)
    assert learner.classes_.tolist() == stream.seen_classes(0).tolist()
    feed(learner, stream, 1)
    seen = stream.seen_classes(1)
    assert sorted(learner.classes_.tolist()) == sorted(seen.tolist())
    S, P = learner.scores(stream.X_test), learner.proba(stream.X_test)
    assert S.shape == P.shape == (len(stream.Y_test), len(seen))
    assert np.isfinite(S).all() and (P >= 0).all() and (P <= 1).all()
    assert learner.state_bytes > 0


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, stream, tmp_path):
    learner = build(name)
    feed(learner, stream, 0)
    feed(learner, stream, 1)
    path = learner.save(tmp_path / "model.npz")
    again = Learner.load(path)
    assert type(again) is type(learner)
    assert again.get_params() == learner.get_params()
    np.testing.assert_array_equal(again.classes_, learner.classes_)
    np.testing.assert_array_equal(again.scores(stream.X_test), learner.scores(stream.X_test))
    np.testing.assert_array_equal(again.proba(stream.X_test), learner.proba(stream.X_test))
    # a loaded learner keeps learning like the original
    if not learner.needs_full_labels and len(stream) > 2:
        feed(learner, stream, 2)
        feed(again, stream, 2)
        np.testing.assert_allclose(again.scores(stream.X_test), learner.scores(stream.X_test), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_leaves_state_unchanged(name, stream):
    learner = build(name)
    feed(learner, stream, 0)
    before = snapshot(learner, stream.X_test)
    s1 = stream.sessions[1]
    bad = {
        "wrong dimension": Session(s1.X[:, :-1], s1.Y, s1.classes, s1.index, 1),
        "nan": Session(np.where(np.arange(s1.X.shape[1]) == 0, np.nan, s1.X).astype(np.float32), s1.Y, s1.classes, s1.index, 1),
        "empty": Session(s1.X[:0], s1.Y[:0], s1.classes, s1.index[:0], 1),
        "labels not binary": Session(s1.X, s1.Y * 2, s1.classes, s1.index, 1),
        "label columns": Session(s1.X, s1.Y[:, :1], s1.classes, s1.index, 1),
    }
    if not learner.needs_full_labels:
        s0 = stream.sessions[0]
        bad["classes seen before"] = Session(s0.X, s0.Y, s0.classes, s0.index, 1)
    for what, session in bad.items():
        with pytest.raises(MlcilError):
            learner.learn(session)
        after = snapshot(learner, stream.X_test)
        np.testing.assert_array_equal(after[0], before[0], err_msg=what)
        np.testing.assert_array_equal(after[1], before[1], err_msg=what)
    with pytest.raises(MlcilError, match="features"):
        learner.scores(stream.X_test[:, :-1])
    with pytest.raises(MlcilError, match="NaN"):
        learner.scores(np.full_like(stream.X_test, np.nan))


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_and_forget(name, stream):
    learner = build(name)
    with pytest.raises(MlcilError, match="not fitted"):
        learner.scores(stream.X_test)
    feed(learner, stream, 0)
    feed(learner, stream, 1)
    with pytest.raises(MlcilError, match="never learned"):
        learner.forget([999])
    drop = stream.sessions[0].classes[:1]
    try:
        learner.forget(drop)
    except MlcilError as exc:
        assert "not supported" in str(exc)
        return
    keep = ~np.isin(stream.seen_classes(1), drop)
    assert learner.classes_.tolist() == [c for c in stream.seen_classes(1).tolist() if c not in drop.tolist()]
    assert learner.scores(stream.X_test).shape == (len(stream.Y_test), keep.sum())


@pytest.mark.parametrize("name", NAMES)
def test_seeded_runs_are_identical(name, stream):
    a, b = build(name), build(name)
    for t in range(2):
        feed(a, stream, t)
        feed(b, stream, t)
    np.testing.assert_array_equal(a.scores(stream.X_test), b.scores(stream.X_test))
