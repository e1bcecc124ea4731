"""The contract every registered learner passes (scikit-learn's check_estimator, for mlcil).

Shapes and class order over two sessions, save/load, bad input, forgetting, seeded runs,
``sklearn.base.clone``, frozen parameters, NotFittedError, atomic and versioned files.
"""

import inspect
import json
import signal

import numpy as np
import pytest
import torch
from sklearn.base import clone

import mlcil
from mlcil.errors import MlcilError, NotFittedError
from mlcil.learners import REGISTRY, Learner, make_learner
from mlcil.learners.base import FILE_FORMAT, FORMAT_VERSION
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


# ---- scikit-learn's estimator contract: get_params / set_params / clone ----------------------
def _other_value(value):
    """A value different from ``value`` of a plausible type (whether it is valid does not matter)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 0.5
    if isinstance(value, str):
        return value + "-other"
    return 0.25


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_clone_gives_an_unfitted_learner_with_equal_params(name, stream):
    learner = build(name)
    params = learner.get_params(deep=False)
    assert set(learner.get_params(deep=True)) >= set(params)
    assert list(params) == [p for p in inspect.signature(type(learner).__init__).parameters if p != "self"]
    fresh = clone(learner)
    assert type(fresh) is type(learner) and fresh.get_params(deep=False) == params
    feed(learner, stream, 0)
    feed(learner, stream, 1)
    again = clone(learner)  # from a fitted learner: parameters only, no learned state
    assert type(again) is type(learner) and again.get_params(deep=False) == params
    assert not again.is_fitted and again._state_names() == []
    with pytest.raises(NotFittedError):
        again.scores(stream.X_test)
    for t in range(2):
        feed(again, stream, t)
    np.testing.assert_array_equal(again.scores(stream.X_test), learner.scores(stream.X_test))


@pytest.mark.parametrize("name", NAMES)
def test_set_params_before_learning_and_unknown_names(name):
    learner = build(name)
    params = learner.get_params(deep=False)
    assert learner.set_params(**params) is learner and learner.get_params(deep=False) == params
    key = next(iter(params))
    learner.set_params(**{key: _other_value(params[key])})
    assert getattr(learner, key) == _other_value(params[key])
    with pytest.raises(MlcilError, match="unknown parameter 'no_such'"):
        learner.set_params(no_such=1)
    with pytest.raises(MlcilError, match="unknown parameter"):  # nothing set when one name is bad
        learner.set_params(**{key: params[key], "no_such": 1})
    assert getattr(learner, key) == _other_value(params[key])


@pytest.mark.parametrize("name", NAMES)
def test_frozen_parameters_after_learning(name, stream, tmp_path):
    cls = REGISTRY[name]
    assert "mutable_params" in vars(cls), f"{cls.__name__} must declare mutable_params (its own line)"
    params = build(name).get_params(deep=False)
    assert cls.mutable_params <= set(params), "mutable_params names a parameter the learner does not have"
    assert set(cls.frozen_params()) == set(params) - cls.mutable_params
    learner = build(name)
    feed(learner, stream, 0)
    before = snapshot(learner, stream.X_test)
    learner.set_params(**params)  # the learned values themselves: allowed
    for key in cls.frozen_params():
        value = params[key]
        with pytest.raises(MlcilError, match=f"parameter '{key}' cannot change after learning.*{key}={value!r}"):
            learner.set_params(**{key: _other_value(value)})
        assert getattr(learner, key) == value
        setattr(learner, key, _other_value(value))  # assigned directly: caught at learn and save time
        with pytest.raises(MlcilError, match=f"'{key}'.*new learner"):
            feed(learner, stream, 1)
        with pytest.raises(MlcilError, match=f"'{key}'"):
            learner.save(tmp_path / "model.npz")
        setattr(learner, key, value)
        after = snapshot(learner, stream.X_test)
        np.testing.assert_array_equal(after[0], before[0], err_msg=key)
        np.testing.assert_array_equal(after[1], before[1], err_msg=key)
    for key in sorted(cls.mutable_params - {"device"}):  # training-schedule knobs may change between sessions
        learner.set_params(**{key: params[key]})
    feed(learner, stream, 1)
    assert learner.classes_.tolist() == stream.seen_classes(1).tolist() or learner.needs_full_labels


@pytest.mark.parametrize("name", [n for n in NAMES if "device" in REGISTRY[n].mutable_params and REGISTRY[n].uses_torch])
def test_changing_device_after_learning_moves_the_state(name, stream):
    learner = build(name)
    feed(learner, stream, 0)
    S = learner.scores(stream.X_test)
    learner.set_params(device="cpu")  # unchanged: nothing moves
    np.testing.assert_array_equal(learner.scores(stream.X_test), S)
    tensors = [t for key in learner._state_names() for t in _tensors(getattr(learner, key))]
    assert tensors, "a learner with a device keeps torch tensors"
    learner.set_params(device="meta")  # a device without data: every state tensor must follow
    moved = [t for key in learner._state_names() for t in _tensors(getattr(learner, key))]
    assert len(moved) == len(tensors) and all(t.device.type == "meta" for t in moved)


@pytest.mark.parametrize("name", [n for n in NAMES if not REGISTRY[n].uses_torch])
def test_closed_form_learners_keep_numpy_state(name, stream):
    """The closed-form learners compute on NumPy: no torch tensor in their state (the core runs without
    torch, tests/test_no_torch.py), and a device change on the CPU changes nothing."""
    learner = build(name)
    feed(learner, stream, 0)
    assert not [t for key in learner._state_names() for t in _tensors(getattr(learner, key))]
    if "device" in type(learner).mutable_params:
        S = learner.scores(stream.X_test)
        learner.set_params(device="cpu")
        np.testing.assert_array_equal(learner.scores(stream.X_test), S)


def test_set_params_on_nested_learner():
    from mlcil.learners.calibrated import Calibrated

    wrapped = Calibrated(make_learner("prototype"))
    params = wrapped.get_params(deep=True)
    assert params["base__center"] is True and params["method"] == "platt"
    wrapped.set_params(base__center=False, holdout=0.3)
    assert wrapped.base.center is False and wrapped.holdout == 0.3
    copy = clone(wrapped)
    assert copy.base is not wrapped.base and copy.base.center is False


# ---- NotFittedError --------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_not_fitted_error_before_learning(name, stream, tmp_path):
    learner = build(name)
    for call in (lambda: learner.scores(stream.X_test), lambda: learner.proba(stream.X_test),
                 lambda: learner.forget([0]), lambda: learner.save(tmp_path / "m.npz")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert issubclass(NotFittedError, MlcilError) and issubclass(NotFittedError, ValueError)
    assert issubclass(NotFittedError, AttributeError)  # like sklearn.exceptions.NotFittedError
    assert not (tmp_path / "m.npz").exists()
    try:
        learner.scores(stream.X_test)
    except AttributeError:  # code written against scikit-learn's (ValueError, AttributeError) works
        pass


# ---- save / load: atomic and versioned -------------------------------------------------------
@pytest.fixture
def saved(stream, tmp_path):
    learner = build("analytic")
    feed(learner, stream, 0)
    feed(learner, stream, 1)
    return learner, learner.save(tmp_path / "model.npz")


def test_save_writes_a_versioned_header(saved):
    learner, path = saved
    with np.load(path) as z:
        header = json.loads(str(z["__header__"]))
    assert header["format"] == FILE_FORMAT and header["format_version"] == FORMAT_VERSION == 1
    assert header["mlcil_version"] == mlcil.__version__ and header["params"] == learner.get_params(deep=False)
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]  # no temporary file left


def test_failed_save_leaves_the_previous_file_intact(saved, stream, monkeypatch):
    learner, path = saved
    good = path.read_bytes()
    other = build("analytic")
    feed(other, stream, 0)

    def broken_savez(fh, **arrays):
        fh.write(good[: len(good) // 3])  # part of a file, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space left"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]  # the partial temporary file is gone
    np.testing.assert_array_equal(Learner.load(path).scores(stream.X_test), learner.scores(stream.X_test))


def test_killed_save_leaves_the_previous_file_intact(saved, stream, python_process):
    """A process killed (SIGKILL) in the middle of writing: the target keeps the old learner."""
    learner, path = saved
    good = path.read_bytes()
    child = f"""
import os, signal, sys
import numpy as np
from mlcil.learners import Learner
learner = Learner.load({str(path)!r})
def dying_savez(fh, **arrays):
    fh.write(b"PK" + bytes(4096))
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
np.savez = dying_savez
learner.save({str(path)!r})
sys.exit(3)  # not reached
"""
    proc = python_process(["-c", child])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert path.read_bytes() == good
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "model.npz"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.npz.") and leftovers[0].endswith(".tmp")
    np.testing.assert_array_equal(Learner.load(path).scores(stream.X_test), learner.scores(stream.X_test))


def _rewrite_header(path, edit):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["__header__"]))
    edit(header)
    arrays["__header__"] = np.array(json.dumps(header))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_load_refuses_a_newer_or_unknown_format_version(saved):
    _, path = saved
    _rewrite_header(path, lambda h: h.update(format_version=FORMAT_VERSION + 1, mlcil_version="9.0"))
    with pytest.raises(MlcilError, match=rf"format version {FORMAT_VERSION + 1} \(written by mlcil 9.0\).*"
                                         rf"reads format versions 0 to {FORMAT_VERSION}: upgrade mlcil"):
        Learner.load(path)
    _rewrite_header(path, lambda h: h.update(format_version="one"))
    with pytest.raises(MlcilError, match="format version 'one'"):
        Learner.load(path)


def test_load_reads_files_written_before_versioning(saved, stream):
    learner, path = saved
    _rewrite_header(path, lambda h: [h.pop(k) for k in ("format", "format_version", "mlcil_version")])
    np.testing.assert_array_equal(Learner.load(path).scores(stream.X_test), learner.scores(stream.X_test))


def test_load_refuses_foreign_and_corrupt_files(saved, tmp_path):
    _, path = saved
    good = path.read_bytes()
    cases = {
        "truncated.npz": (good[: len(good) // 2], "corrupt or truncated"),
        "empty.npz": (b"", "corrupt or truncated"),
        "text.npz": (b"hello, not a model\n" * 10, "not an mlcil learner file"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MlcilError, match=message):
            Learner.load(tmp_path / name)
    np.savez(tmp_path / "foreign.npz", X=np.zeros(3))
    with pytest.raises(MlcilError, match="without the learner header"):
        Learner.load(tmp_path / "foreign.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(MlcilError, match="single .npy array"):
        Learner.load(tmp_path / "array.npy")
    _rewrite_header(path, lambda h: h.update(format="something-else"))
    with pytest.raises(MlcilError, match="format 'something-else'"):
        Learner.load(path)
    path.write_bytes(good)
    _rewrite_header(path, lambda h: h["meta"].update({"R_": {"kind": "array"}, "G_": {"kind": "list", "len": 9}}))
    with pytest.raises(MlcilError, match="is corrupt"):
        Learner.load(path)
    path.write_bytes(good)
    _rewrite_header(path, lambda h: h["params"].update(no_such_param=1))
    with pytest.raises(MlcilError, match="parameters do not fit"):
        Learner.load(path)
