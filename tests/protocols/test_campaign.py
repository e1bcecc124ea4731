"""The campaign protocol (``campaign='disjoint'``): each example annotated in exactly one session."""

import numpy as np
import pytest

from mlcil.data.dataset import Dataset
from mlcil.errors import MlcilError
from mlcil.protocols import Protocol, campaign_sessions


def random_dataset(n=400, L=8, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.35).astype(np.uint8)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    split = np.where(np.arange(n) < 300, "train", "test")
    return Dataset(X, Y, [f"c{i}" for i in range(L)], split=split, name="rand")


def test_each_example_in_exactly_one_session_among_its_own():
    ds = random_dataset()
    field = Protocol("B0-C2", order="dataset", seed=4).build(ds)
    disjoint = Protocol("B0-C2", order="dataset", seed=4, campaign="disjoint").build(ds)
    seen = np.concatenate([s.index for s in disjoint])
    assert len(seen) == len(np.unique(seen))                      # never twice
    field_rows = np.unique(np.concatenate([s.index for s in field]))
    np.testing.assert_array_equal(np.sort(seen), field_rows)       # every example with a class, once
    for s_field, s in zip(field, disjoint):
        assert set(s.index.tolist()) <= set(s_field.index.tolist())  # drawn among the sessions it carries
        np.testing.assert_array_equal(s.Y, ds.Y[s.index][:, s.classes])  # labelled with the session's classes only
        np.testing.assert_array_equal(s.X, ds.X[s.index])
        assert s.Y.any(axis=1).all()
    # test sets are those of the field protocol
    for t in range(len(field)):
        np.testing.assert_array_equal(field.test_rows(t), disjoint.test_rows(t))
    assert disjoint.info["campaign"] == "disjoint" and field.info["campaign"] == "field"


def test_draw_is_seeded_and_uniform():
    ds = random_dataset()
    a = Protocol("B0-C2", seed=1, campaign="disjoint").build(ds)
    b = Protocol("B0-C2", seed=1, campaign="disjoint").build(ds)
    c = Protocol("B0-C2", seed=2, campaign="disjoint").build(ds)
    assert [s.index.tolist() for s in a] == [s.index.tolist() for s in b]
    assert [s.index.tolist() for s in a] != [s.index.tolist() for s in c]
    # uniform among the sessions a row carries: 3 candidate sessions -> each about 1/3
    member = np.ones((30000, 5), dtype=bool)
    member[:, 1] = False
    member[:10000] = [True, False, False, False, False]
    owner = campaign_sessions(member, seed=0)
    assert (owner[:10000] == 0).all()
    counts = np.bincount(owner[10000:], minlength=5) / 20000
    np.testing.assert_allclose(counts, [0.25, 0, 0.25, 0.25, 0.25], atol=0.015)
    assert campaign_sessions(np.zeros((3, 2), dtype=bool), 0).tolist() == [-1, -1, -1]


def test_joint_session_is_the_union_of_the_sessions_rows():
    ds = random_dataset()
    stream = Protocol("B0-C2", order="dataset", seed=3, campaign="disjoint").build(ds)
    for t in range(len(stream)):
        joint = stream.joint_session(t)
        given = np.unique(np.concatenate([s.index for s in stream.sessions[:t + 1]]))
        np.testing.assert_array_equal(joint.index, given)
        np.testing.assert_array_equal(joint.Y, ds.Y[given][:, stream.seen_classes(t)])  # all seen labels known
    # an example with a class of session 0 that was annotated later is not in the first joint session
    late = np.setdiff1d(np.flatnonzero(ds.Y[:300, stream.sessions[0].classes].any(axis=1)), stream.sessions[0].index)
    assert late.size and not np.isin(late, stream.joint_session(0).index).any()


def test_few_shot_applies_after_the_draw():
    ds = random_dataset()
    stream = Protocol("B0-C2", order="dataset", seed=0, few_shot=3, campaign="disjoint").build(ds)
    seen = np.concatenate([s.index for s in stream])
    assert len(seen) == len(np.unique(seen))
    for s in stream:
        assert s.n <= 3 * len(s.classes)


def test_bad_campaign_is_refused():
    with pytest.raises(MlcilError, match="campaign: expected one of field, disjoint"):
        Protocol("B0-C2", campaign="once")
    assert "disjoint" in repr(Protocol("B0-C2", campaign="disjoint"))
