"""The front door: ``from mlcil import ...``, learning from plain arrays with label names, predicting,
scikit-learn's verbs, and label names kept end to end (save/load, forget by name)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

import mlcil
from mlcil import LDA, Analytic, Joint, Prototype, Session
from mlcil.errors import MlcilError, NotFittedError
from mlcil.learners import Learner

LEARNERS = {
    "analytic": lambda: Analytic(M=64),
    "prototype": lambda: Prototype(),
    "lda": lambda: LDA(),
}


def data(n=240, d=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    A = rng.normal(size=(d, 5))
    Y = (X @ A / np.sqrt(d) + 0.3 * rng.normal(size=(n, 5)) > 0.4).astype(np.uint8)
    return X, Y


def test_the_package_exports_the_front_door():
    for name in ("Analytic", "Joint", "Prototype", "LDA", "Learner", "load_dataset", "Dataset", "Protocol", "Session",
                 "run_benchmark", "BenchConfig", "make_learner", "MlcilError", "NotFittedError"):
        assert getattr(mlcil, name) is not None, name
        assert name in dir(mlcil)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        mlcil.Nope  # noqa: B018


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_two_sessions_on_plain_arrays_with_names(name, tmp_path):
    X, Y = data()
    model = LEARNERS[name]()
    assert model.learn(X[:160], Y[:160, :3], classes=["cat", "dog", "bird"]) is model
    model.learn(X[80:], Y[80:, 3:], classes=["fish", "frog"])
    assert model.classes_.tolist() == ["cat", "dog", "bird", "fish", "frog"]
    P = model.predict_proba(X)
    np.testing.assert_array_equal(P, model.proba(X))
    np.testing.assert_array_equal(model.decision_function(X), model.scores(X))
    labels = model.predict(X)
    assert labels.shape == (len(X), 5) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, (P >= model.decision_thresholds_[None, :]).astype(np.uint8))
    np.testing.assert_array_equal(model.predict(X, threshold=0.3), (P >= 0.3).astype(np.uint8))
    # names survive save/load, and the loaded learner predicts the same
    again = Learner.load(model.save(tmp_path / "m.npz"))
    assert again.classes_.tolist() == model.classes_.tolist()
    np.testing.assert_array_equal(again.predict(X), labels)
    # forget by name
    model.forget(["dog"])
    assert model.classes_.tolist() == ["cat", "bird", "fish", "frog"]
    assert model.predict(X).shape == (len(X), 4)
    with pytest.raises(MlcilError, match="never learned"):
        model.forget("dog")
    with pytest.raises(MlcilError, match="kind"):
        model.forget([0])


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_arrays_equal_the_session_path(name):
    """learn(X, Y, classes) is learn(Session(X, Y, classes, ...)): the same scores."""
    X, Y = data()
    a = LEARNERS[name]().learn(X, Y[:, :2], classes=[0, 1]).learn(X[::2], Y[::2, 2:], classes=[2, 3, 4])
    b = LEARNERS[name]()
    b.learn(Session(X, Y[:, :2], np.array([0, 1]), np.arange(len(X)), 0))
    b.learn(Session(X[::2], Y[::2, 2:], np.array([2, 3, 4]), np.arange(0, len(X), 2), 1))
    np.testing.assert_array_equal(a.classes_, b.classes_)
    np.testing.assert_allclose(a.scores(X), b.scores(X), rtol=1e-6, atol=1e-7)


def test_default_classes_are_the_next_integers_and_kinds_do_not_mix():
    X, Y = data()
    model = Prototype().learn(X, Y[:, :2])
    assert model.classes_.tolist() == [0, 1]
    model.learn(X, Y[:, 2:3])
    assert model.classes_.tolist() == [0, 1, 2]
    with pytest.raises(MlcilError, match="same kind"):
        model.learn(X, Y[:, 3:], classes=["a", "b"])
    named = Prototype().learn(X, Y[:, :2], classes=["a", "b"])
    with pytest.raises(MlcilError, match="name the new ones"):
        named.learn(X, Y[:, 2:3])
    with pytest.raises(MlcilError, match="re-introduces"):
        named.learn(X, Y[:, 2:3], classes=["a"])


@pytest.mark.parametrize("bad, match", [
    (dict(Y=None), "expects X and Y"),
    (dict(Y="1d"), "1-d array"),
    (dict(classes=["a", ""]), "non-empty"),
    (dict(classes=["a", "b", "c"]), "Y"),
    (dict(classes=[1.5, 2.5]), "names \\(str\\) or integer ids"),
    (dict(classes=[["a", "b"]]), "1-d"),
])
def test_bad_arguments_name_the_field_and_change_nothing(bad, match):
    X, Y = data()
    model = Prototype().learn(X, Y[:, :2], classes=["x", "y"])
    before = model.scores(X)
    args = dict(Y=Y[:, 2:4], classes=["a", "b"])
    args.update(bad)
    if isinstance(args["Y"], str):
        args["Y"] = Y[:, 2]
    with pytest.raises(MlcilError, match=match):
        model.learn(X, args["Y"], classes=args["classes"])
    assert model.classes_.tolist() == ["x", "y"]
    np.testing.assert_array_equal(model.scores(X), before)
    with pytest.raises(MlcilError, match="takes the session alone"):
        model.learn(Session(X, Y[:, 2:4], np.array([5, 6]), np.arange(len(X))), Y)
    with pytest.raises(MlcilError, match="threshold"):
        model.predict(X, threshold=1.5)


def test_sparse_input_learns_through_the_front_door():
    X, Y = data()
    Xs = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0))
    model = Analytic(M=32).learn(Xs, Y[:, :2], classes=["a", "b"])
    assert model.predict(Xs).shape == (len(X), 2)


def test_scikit_learn_verbs_and_tooling():
    X, Y = data()
    model = Prototype()
    assert model.fit(X, Y[:, :2], classes=["a", "b"]) is model
    model.partial_fit(X, Y[:, 2:], classes=["c", "d", "e"])
    assert model.classes_.tolist() == ["a", "b", "c", "d", "e"]
    model.fit(X, Y[:, :1])  # fit starts over
    assert model.classes_.tolist() == [0]
    fresh = clone(model)
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    # drops into scikit-learn's model selection: clone, fit on folds, predict label sets
    pred = cross_val_predict(Prototype(), X, Y, cv=3)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    assert (pred == Y).mean() > 0.6


def test_joint_learns_from_arrays_with_names():
    X, Y = data()
    model = Joint(M=64).learn(X, Y, classes=list("abcde"))
    assert model.classes_.tolist() == list("abcde")
    assert model.predict(X).shape == Y.shape
