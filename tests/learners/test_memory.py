"""Analytic(memory='labels'): every exact claim against a from-scratch numpy fit on the union of the rows."""

import numpy as np
import pytest

from mlcil.data.dataset import Dataset
from mlcil.errors import MlcilError
from mlcil.learners import Analytic, Joint, Learner
from mlcil.learners import label_memory
from mlcil.protocols import Protocol, Session

from .conftest import make_dataset
from ..conftest import assert_reproduced

#: a frame that does not depend on the rows it is fitted on, and λ chosen once (exactness is at fixed λ)
FRAME = dict(M=40, scaling="none", include_x=True, lambda_search="first")


@pytest.fixture(scope="module")
def field():
    return Protocol("B0-C2", order="dataset").build(make_dataset(n=500, d=10, L=6, seed=3))


def phi(learner, X):
    return learner._features(X).astype(np.float64)


def union_reference(learner, stream, t=None):
    """Per-class-group ridge over the examples of sessions 0..t, each ONCE: an example weighs 1 for the
    classes of the sessions it was given in and α for the others (α = 1: every label it carries is known;
    the field's protocol gives an example every session whose classes it carries)."""
    t = len(stream) - 1 if t is None else t
    full = stream.joint_session(t)
    Phi = phi(learner, full.X)
    cols, start = [], 0
    for s in stream.sessions[: t + 1]:
        given = np.isin(full.index, s.index)
        d = np.where(given, 1.0, learner.alpha_)
        A = Phi.T @ (Phi * d[:, None]) + learner.lambda_ * np.eye(Phi.shape[1])
        Y = np.where(given[:, None], full.Y[:, start:start + len(s.classes)], 0)
        cols.append(np.linalg.solve(A, Phi.T @ (Y * d[:, None])))
        start += len(s.classes)
    return np.hstack(cols)


def learn_all(learner, sessions):
    for s in sessions:
        learner.learn(s)
    return learner


@pytest.mark.parametrize("strategy,alpha", [("negative", None), ("weighted", 0.3), ("known", None)])
def test_memory_equals_one_fit_on_the_union(strategy, alpha, field):
    learner = learn_all(Analytic(**FRAME, strategy=strategy, alpha=alpha, memory="labels", seed=1), field)
    for t in range(len(field)):  # after every session, not only the last
        partial = learn_all(Analytic(**FRAME, strategy=strategy, alpha=alpha, memory="labels", seed=1),
                            field.sessions[: t + 1])
        assert_reproduced(partial.W_, union_reference(partial, field, t), rtol=1e-6)
    assert learner.memory_["keys"].shape == (len(field.joint_session(len(field) - 1).index),)


def test_memory_negative_equals_joint_with_the_same_lambda(field):
    learner = learn_all(Analytic(**FRAME, strategy="negative", memory="labels", seed=2), field)
    joint = Joint(**{k: v for k, v in FRAME.items() if k != "lambda_search"}, seed=2)
    joint.learn(field.joint_session(len(field) - 1))
    assert joint.feature_map.same_as(learner.feature_map)
    joint.lambda_ = learner.lambda_  # λ fixed: Joint chooses its own on the union
    joint._solve()
    order = np.argsort(joint.classes_)
    assert_reproduced(learner.W_[:, np.argsort(learner.classes_)], joint.W_[:, order], rtol=1e-6)
    X = field.X_test
    np.testing.assert_allclose(learner.scores(X), joint.scores(X), rtol=1e-4, atol=1e-5)
    # without memory the reappearing examples count twice and read as negatives for each other's classes
    plain = learn_all(Analytic(**FRAME, strategy="negative", seed=2), field)
    assert np.abs(plain.W_ - learner.W_).max() > 1e-3


def test_memory_bits_and_bytes(field):
    learner = learn_all(Analytic(**FRAME, strategy="negative", memory="labels"), field)
    full = field.joint_session(len(field) - 1)
    N, T, L = len(full.index), len(field), full.Y.shape[1]
    assert learner.memory_bytes == N * (8 + -(-T // 8) + -(-L // 8))
    records = label_memory.match(learner.memory_["keys"], __import__("mlcil").ridge.row_digests(full.X))
    assert (records >= 0).all()
    given = np.stack([np.isin(full.index, s.index) for s in field], axis=1)
    np.testing.assert_array_equal(label_memory.session_bits(learner.memory_, records), given)
    np.testing.assert_array_equal(label_memory.label_bits(learner.memory_, records),
                                  full.Y.astype(bool) & np.repeat(given, [len(s.classes) for s in field], axis=1))
    assert Analytic(**FRAME).learn(field.sessions[0]).memory_bytes is None


def test_campaign_protocol_memory_changes_nothing():
    ds = make_dataset(n=500, d=10, L=6, seed=3)
    stream = Protocol("B0-C2", order="dataset", campaign="disjoint").build(ds)
    a = learn_all(Analytic(**FRAME, strategy="weighted", alpha=0.5, memory="labels"), stream)
    b = learn_all(Analytic(**FRAME, strategy="weighted", alpha=0.5), stream)
    assert_reproduced(a.W_, b.W_, rtol=1e-6)  # no example reappears


def test_pseudo_labels_only_where_labels_are_unknown():
    ds = make_dataset(n=400, d=10, L=4, seed=5)
    X, Y = ds.X[:280], ds.Y[:280]
    old, new = np.arange(0, 200), np.arange(200, 280)
    again = old[:90]
    s0 = Session(X[old], Y[old][:, :2], np.array([0, 1]), old, 0)
    rows1 = np.concatenate([again, new])
    s1 = Session(X[rows1], Y[rows1][:, 2:], np.array([2, 3]), rows1, 1)
    learner = Analytic(**FRAME, strategy="pseudo", alpha=0.4, memory="labels").learn(s0)
    pseudo = learner._pseudo_labels(X[new])  # the model before session 1 labels the unseen rows only
    learner.learn(s1)
    P0, Pn, P1 = phi(learner, X[old]), phi(learner, X[new]), phi(learner, X[rows1])
    assert_reproduced(learner.B_[0], P0.T @ Y[old][:, :2] + Pn.T @ pseudo, rtol=1e-6)
    assert_reproduced(learner.G_[0], P0.T @ P0 + Pn.T @ Pn, rtol=1e-6)  # K_0
    assert_reproduced(learner.G_[1], P1.T @ P1, rtol=1e-6)
    assert_reproduced(learner.G_seen_, P0.T @ P0 + Pn.T @ Pn, rtol=1e-6)
    bits = label_memory.unpack(learner.memory_pseudo_, 2)
    assert bits[:, 0].sum() == len(new) and not bits[:, 1].any()


def shard_by_digest(session, parts=2):
    from mlcil import ridge
    shard = (ridge.row_digests(session.X) % np.uint64(parts)).astype(int)
    return [Session(session.X[shard == p], session.Y[shard == p], session.classes, session.index[shard == p],
                    session.t) for p in range(parts)]


@pytest.mark.parametrize("strategy,alpha", [("negative", None), ("weighted", 0.3)])
def test_merge_of_example_shards_is_exact(strategy, alpha, field):
    reference = learn_all(Analytic(**FRAME, strategy=strategy, alpha=alpha, memory="labels"), field)
    shards0 = shard_by_digest(field.sessions[0])
    a = Analytic(**FRAME, strategy=strategy, alpha=alpha, memory="labels").learn(shards0[0])
    b = a.spawn().learn(shards0[1])
    for s in field.sessions[1:]:
        one, two = shard_by_digest(s)
        a.learn(one)
        b.learn(two)
    a.lambda_ = reference.lambda_ = a.lambda_
    reference._solve()
    a.merge(b)
    assert_reproduced(a.W_, reference.W_, rtol=1e-6)
    assert sorted(a.memory_["keys"].tolist()) == sorted(reference.memory_["keys"].tolist())


def test_merge_refuses_an_example_in_both(field):
    a = Analytic(**FRAME, strategy="negative", memory="labels").learn(field.sessions[0])
    b = a.spawn().learn(field.sessions[0])
    W, keys = a.W_.copy(), a.memory_["keys"].copy()
    with pytest.raises(MlcilError, match="in both learners"):
        a.merge(b)
    assert np.array_equal(a.W_, W) and np.array_equal(a.memory_["keys"], keys)
    with pytest.raises(MlcilError, match="same label memory"):
        a.merge(Analytic(**FRAME, strategy="negative").learn(field.sessions[0]))


@pytest.mark.parametrize("strategy,alpha", [("negative", None), ("weighted", 0.3)])
def test_forget_classes_with_memory(strategy, alpha, field):
    learner = learn_all(Analytic(**FRAME, strategy=strategy, alpha=alpha, memory="labels"), field)
    drop = int(field.sessions[1].classes[0])
    reference = Analytic(**FRAME, strategy=strategy, alpha=alpha, memory="labels")
    for s in field:
        keep = s.classes != drop
        reference.learn(Session(s.X, s.Y[:, keep], s.classes[keep], s.index, s.t))
    reference.lambda_ = learner.lambda_
    reference._solve()
    learner.forget([drop])
    assert_reproduced(learner.W_, reference.W_, rtol=1e-6)
    np.testing.assert_array_equal(label_memory.label_bits(learner.memory_), label_memory.label_bits(reference.memory_))


def take(session, rows):
    return Session(session.X[rows], session.Y[rows], session.classes, session.index[rows], session.t)


@pytest.mark.parametrize("strategy,alpha", [("negative", None), ("weighted", 0.3)])
def test_forget_examples_from_one_session_and_from_all(strategy, alpha, field):
    s0, s1, s2 = field.sessions
    both = np.intersect1d(s0.index, s1.index)[:15]      # examples given in sessions 0 and 1
    in0 = np.isin(s0.index, both)
    in1 = np.isin(s1.index, both)

    def fresh(sessions):
        learner = Analytic(**FRAME, strategy=strategy, alpha=alpha, memory="labels")
        learner.learn(sessions[0])
        learner.lambda_ = lam
        for s in sessions[1:]:
            learner.learn(s)
        learner._solve()
        return learner

    lam = Analytic(**FRAME, strategy=strategy, alpha=alpha).learn(s0).lambda_
    # (a) from session 1 only, with the labels session 1 gave
    learner = fresh([s0, s1, s2])
    learner.forget_examples(s1.X[in1], s1.Y[in1], s1.classes)
    reference = fresh([s0, take(s1, ~in1), s2])
    assert_reproduced(learner.W_, reference.W_, rtol=1e-6)
    assert learner.session_rows_ == reference.session_rows_
    # (b) from every session, by input alone (the memory holds the labels)
    learner = fresh([s0, s1, s2])
    learner.forget_examples(s0.X[in0])
    reference = fresh([take(s, ~np.isin(s.index, both)) for s in (s0, s1, s2)])
    assert_reproduced(learner.W_, reference.W_, rtol=1e-6)
    assert len(learner.memory_["keys"]) == len(reference.memory_["keys"])


def test_forget_examples_refuses_rows_it_did_not_learn(field):
    s0, s1, _ = field.sessions
    learner = learn_all(Analytic(**FRAME, strategy="negative", memory="labels"), field.sessions[:2])
    W, memory = learner.W_.copy(), {k: v.copy() for k, v in learner.memory_.items()}
    with pytest.raises(MlcilError, match="not learned in session 1 with these labels"):
        learner.forget_examples(s1.X[:3], 1 - s1.Y[:3], s1.classes)
    rng = np.random.default_rng(0)
    with pytest.raises(MlcilError, match="never learned"):
        learner.forget_examples(rng.normal(size=(2, s0.X.shape[1])).astype(np.float32))
    assert np.array_equal(learner.W_, W)
    assert all(np.array_equal(learner.memory_[k], memory[k]) for k in memory)
    with pytest.raises(MlcilError, match="needs Y and classes"):
        Analytic(**FRAME, strategy="negative").learn(s0).forget_examples(s0.X[:2])


def test_identical_inputs_content_vs_index_keys():
    """Two different examples with the same input, annotated in different sessions: the content digest
    takes them for one example (the second adds no φφᵀ); caller-given ids tell them apart."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    X[40] = X[10]                                    # same input, different examples
    Y = np.zeros((60, 2), dtype=np.uint8)
    Y[:30, 0] = 1
    Y[30:, 1] = 1
    Y[::7, 0] = 1                                    # some examples carry both classes
    Y[10] = [1, 0]
    Y[40] = [0, 1]
    ds = Dataset(np.vstack([X, X[:6]]), np.vstack([Y, Y[:6]]), ["a", "b"],
                 split=["train"] * 60 + ["test"] * 6)
    stream = Protocol("B0-C1", order="dataset").build(ds)
    by_index = learn_all(Analytic(**FRAME, strategy="negative", memory="labels", memory_key="index"), stream)
    assert_reproduced(by_index.W_, union_reference(by_index, stream), rtol=1e-6)
    by_content = learn_all(Analytic(**FRAME, strategy="negative", memory="labels"), stream)
    assert len(by_content.memory_["keys"]) == len(by_index.memory_["keys"]) - 1
    Phi = phi(by_content, X[[10]])
    G_index = by_index.G_[0]
    assert_reproduced(by_content.G_[0], G_index - Phi.T @ Phi, rtol=1e-6)
    # within one session identical inputs stay distinct examples
    twice = Session(np.vstack([X[:5], X[:5]]), np.ones((10, 1), np.uint8), np.array([0]), np.arange(10))
    assert len(Analytic(**FRAME, memory="labels").learn(twice).memory_["keys"]) == 10


def test_save_load_round_trip_with_memory(field, tmp_path):
    learner = learn_all(Analytic(**FRAME, strategy="pseudo", memory="labels"), field.sessions[:2])
    path = learner.save(tmp_path / "m.npz")
    loaded = Learner.load(path)
    for key in ("keys", "sessions", "labels", "shape"):
        np.testing.assert_array_equal(loaded.memory_[key], learner.memory_[key])
    np.testing.assert_array_equal(loaded.memory_pseudo_, learner.memory_pseudo_)
    learner.learn(field.sessions[2])
    loaded.learn(field.sessions[2])
    np.testing.assert_allclose(loaded.W_, learner.W_, rtol=1e-10, atol=1e-12)


def test_bad_memory_parameters(field):
    with pytest.raises(MlcilError, match="memory must be None or 'labels'"):
        Analytic(M=8, memory="rows").learn(field.sessions[0])
    with pytest.raises(MlcilError, match="memory_key must be"):
        Analytic(M=8, memory="labels", memory_key="hash").learn(field.sessions[0])
    with pytest.raises(MlcilError, match="balance"):
        Analytic(M=8, memory="labels", balance=True).learn(field.sessions[0])


def test_known_ignores_the_memory(field):
    """'known' (α = 0) solves each class over its own session's rows only: the memory changes nothing."""
    a = learn_all(Analytic(**FRAME, strategy="known", memory="labels"), field)
    b = learn_all(Analytic(**FRAME, strategy="known"), field)
    assert_reproduced(a.W_, b.W_, rtol=1e-6)  # the memory splits K_s into new + seen rows
