"""The name prior (zero-shot cold start): label-name embeddings as weighted pseudo-examples."""

import numpy as np
import pytest

from mlcil.errors import MlcilError
from mlcil.learners import Analytic
from mlcil.learners.prototype import Prototype
from mlcil.protocols import Session
from ..conftest import assert_reproduced


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    Y = (X[:, :4] + 0.3 * rng.normal(size=(400, 4)) > 0.6).astype(np.uint8)
    E = rng.normal(size=(2, 6)).astype(np.float32)
    s0 = Session(X[:200], Y[:200, :2], np.array([0, 1]), np.arange(200))
    s1 = Session(X[200:], Y[200:, 2:], np.array([2, 3]), np.arange(200, 400), 1, E)
    return X, Y, E, s0, s1


def rows_session(X, Y, E, classes, weight=1):
    """The same session with the names appended as ``weight`` real examples each (the reference)."""
    k = len(classes)
    return Session(np.vstack([X] + [E] * weight), np.vstack([Y] + [np.eye(k, dtype=np.uint8)] * weight),
                   np.asarray(classes), np.arange(len(X) + weight * k), 1)


# λ fixed by the first session (the name prior's algebra is under test; 'gcv' re-chooses λ from each session's own
# rows, which the names' pseudo-examples are not)
@pytest.mark.parametrize("kw", [{"strategy": "negative", "lambda_search": "first"},
                                {"strategy": "weighted", "alpha": 0.3, "lambda_search": "first"}])
def test_prior_equals_the_names_as_weighted_examples(data, kw):
    X, Y, E, s0, s1 = data
    a = Analytic(M=32, prior=2.0, **kw).learn(s0).learn(s1)
    b = Analytic(M=32, prior=0.0, **kw).learn(s0).learn(rows_session(X[200:], Y[200:, 2:], E, [2, 3], weight=2))
    assert_reproduced(a.W_, b.W_, rtol=1e-6)
    off = Analytic(M=32, prior=0.0, **kw).learn(s0).learn(s1)  # prior=0: the names are ignored
    plain = Analytic(M=32, **kw).learn(s0).learn(Session(X[200:], Y[200:, 2:], np.array([2, 3]), np.arange(200), 1))
    np.testing.assert_allclose(off.W_, plain.W_, rtol=0, atol=1e-12)


def test_zero_shot_learn_names_solves_the_prior_alone(data):
    X, Y, E, s0, _ = data
    model = Analytic(M=32, strategy="negative", prior=1.5).learn(s0)
    G0 = model.G_[0].copy()
    model.learn_names([2, 3], E)
    assert model.classes_.tolist() == [0, 1, 2, 3] and model.scores(X).shape == (400, 4)
    phi = model.feature_map(E).astype(np.float64)
    A = G0 + 1.5 * phi.T @ phi + model.lambda_ * np.eye(phi.shape[1])
    want = np.linalg.solve(A, 1.5 * phi.T)  # W of the named classes: data as negatives, names as positives
    assert_reproduced(model.W_[:, 2:], want, rtol=1e-6)
    P = model.proba(E)
    assert np.all((P >= 0) & (P <= 1)) and P[0, 2] > P[0, 3] and P[1, 3] > P[1, 2]


def test_merge_counts_the_prior_once_and_forget_removes_it(data):
    X, Y, E, s0, s1 = data
    cut = lambda s, a, b: Session(s.X[a:b], s.Y[a:b], s.classes, s.index[a:b], s.t, s.label_embeddings)  # noqa: E731
    left = Analytic(M=32, strategy="negative").learn(cut(s0, 0, 100))  # fixes the frame
    right = left.spawn().learn(cut(s0, 100, 200))
    whole = left.spawn().learn(s0)
    left.learn(cut(s1, 0, 120))  # both shards see the names of session 1
    right.learn(cut(s1, 120, 200))
    whole.learn(s1)
    left.merge(right)
    assert_reproduced(left.W_, whole.W_, rtol=1e-6)
    # forgetting class 2 = never given class 2's label nor its name (its rows stay as data)
    # λ fixed after the first session (lambda_search="first"): "never" sees other rows in session 1
    whole = Analytic(M=32, strategy="negative", lambda_search="first").learn(s0).learn(s1).forget([2])
    never = Analytic(M=32, strategy="negative", lambda_search="first").learn(s0).learn(
        Session(np.vstack([X[200:], E[1:]]), np.vstack([Y[200:, 3:], [[1]]]), np.array([3]), np.arange(201), 1))
    assert_reproduced(whole.W_, never.W_, rtol=1e-6)


def test_prior_survives_save_and_load(data, tmp_path):
    X, _, E, s0, s1 = data
    model = Analytic(M=32, strategy="negative").learn(s0).learn(s1)
    back = Analytic.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_allclose(back.scores(X), model.scores(X), rtol=1e-6, atol=1e-6)
    back.forget([3])
    model.forget([3])
    np.testing.assert_allclose(back.scores(X), model.scores(X), rtol=1e-6, atol=1e-6)


def test_bad_label_embeddings_leave_the_learner_unchanged(data):
    X, Y, E, s0, s1 = data
    model = Analytic(M=32, strategy="negative").learn(s0)
    W = model.W_.copy()
    bad = Session(s1.X, s1.Y, s1.classes, s1.index, 1, E[:, :4])
    with pytest.raises(MlcilError, match=r"label_embeddings: expected 2×6"):
        model.learn(bad)
    with pytest.raises(MlcilError, match=r"label_embeddings: expected 2×6"):
        model.learn_names([2, 3], E[:1])
    with pytest.raises(MlcilError, match="new, distinct classes"):
        model.learn_names([1, 2], E)
    nan = E.copy()
    nan[0, 0] = np.nan
    with pytest.raises(MlcilError, match="NaN"):
        model.learn_names([2, 3], nan)
    assert model.classes_.tolist() == [0, 1] and np.array_equal(model.W_, W)
    with pytest.raises(MlcilError, match="prior must be a weight"):
        Analytic(M=32, prior=-1).learn(s0)
    with pytest.raises(MlcilError, match="needs prior > 0"):
        Analytic(M=32, prior=0).learn(s0).learn_names([2, 3], E)


def test_prototype_prior_is_a_weighted_pseudo_positive(data):
    X, Y, E, s0, s1 = data
    a = Prototype(prior=3.0).learn(s0).learn(s1)
    ref = Prototype(prior=0.0).learn(s0).learn(rows_session(X[200:], Y[200:, 2:], E, [2, 3], weight=3))
    np.testing.assert_allclose(a.sums_, ref.sums_, rtol=1e-12)
    np.testing.assert_allclose(a.counts_, ref.counts_)
    zero = Prototype(prior=1.0, center=False).learn(s0).learn_names([2, 3], E)
    want = E / np.linalg.norm(E, axis=1, keepdims=True)
    got = zero.scores(X)[:, 2:]
    np.testing.assert_allclose(got, (X / np.linalg.norm(X, axis=1, keepdims=True)) @ want.T, rtol=1e-5, atol=1e-6)


def test_prior_with_a_label_memory_and_one_shared_system(data):
    """A label memory with one system for every class ('negative') keeps no Gram of a later session's rows; the
    names' pseudo-examples still join G as new rows: the same W as the names given as real, new examples."""
    X, Y, E, s0, s1 = data
    kw = dict(M=32, strategy="negative", memory="labels", memory_key="index")
    a = Analytic(prior=2.0, **kw).learn(s0).learn(s1)
    ref = rows_session(X[200:], Y[200:, 2:], E, [2, 3], weight=2)
    ref.index = np.arange(200, 200 + len(ref.Y))  # new ids: the names are examples never seen before
    b = Analytic(prior=0.0, **kw).learn(s0).learn(ref)
    assert_reproduced(a.W_, b.W_, rtol=1e-6)
