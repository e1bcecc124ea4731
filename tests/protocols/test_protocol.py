"""The protocol on a hand-made dataset: session membership, label absence, test sets."""

import numpy as np
import pytest

from mlcil.data.dataset import Dataset
from mlcil.errors import MlcilError
from mlcil.protocols import Protocol, parse_spec, session_sizes

# 6 train + 4 test examples, 4 classes named so that alphabetical != column order.
NAMES = ["dog", "cat", "bird", "ant"]  # alphabetical: ant(3), bird(2), cat(1), dog(0)
Y_TRAIN = np.array([
    [1, 0, 0, 1],  # r0: dog, ant
    [0, 1, 0, 0],  # r1: cat
    [0, 0, 1, 0],  # r2: bird
    [1, 1, 1, 1],  # r3: all
    [0, 0, 0, 0],  # r4: no label at all
    [0, 1, 1, 0],  # r5: cat, bird
])
Y_TEST = np.array([
    [0, 0, 0, 1],  # t0: ant
    [1, 0, 0, 0],  # t1: dog
    [0, 1, 0, 0],  # t2: cat
    [0, 0, 0, 0],  # t3: none
])


@pytest.fixture
def dataset():
    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    split = ["train"] * 6 + ["test"] * 4
    return Dataset(X, np.vstack([Y_TRAIN, Y_TEST]), NAMES, split=split, name="toy")


def test_alphabetical_order_and_sessions(dataset):
    stream = Protocol("B0-C2").build(dataset)
    assert stream.class_order.tolist() == [3, 2, 1, 0]
    assert [s.classes.tolist() for s in stream] == [[3, 2], [1, 0]]
    # session 0: examples with ant or bird; session 1: examples with cat or dog
    assert stream.sessions[0].index.tolist() == [0, 2, 3, 5]
    assert stream.sessions[1].index.tolist() == [0, 1, 3, 5]


def test_label_absence(dataset):
    s0, s1 = Protocol("B0-C2").build(dataset).sessions
    # session Y holds only the session's classes, in session order (ant, bird) then (cat, dog)
    assert s0.Y.tolist() == [[1, 0], [0, 1], [1, 1], [0, 1]]
    assert s1.Y.tolist() == [[0, 1], [1, 0], [1, 1], [1, 0]]
    # X rows are the dataset's rows
    np.testing.assert_array_equal(s1.X, dataset.X[s1.index])


def test_example_without_labels_never_trains(dataset):
    stream = Protocol("B0-C1").build(dataset)
    assert all(4 not in s.index.tolist() for s in stream)


def test_test_sets_grow_with_seen_classes(dataset):
    stream = Protocol("B0-C2").build(dataset)
    # test rows are positions within the test split (rows 6..9 of the dataset)
    assert stream.test_rows(0).tolist() == [0]          # only t0 has ant/bird
    assert stream.test_rows(1).tolist() == [0, 1, 2]    # t3 has no class: never tested
    assert stream.test_index.tolist() == [6, 7, 8, 9]


def test_joint_session_has_all_seen_labels(dataset):
    stream = Protocol("B0-C2").build(dataset)
    joint = stream.joint_session(1)
    assert joint.classes.tolist() == [3, 2, 1, 0]
    assert joint.index.tolist() == [0, 1, 2, 3, 5]
    np.testing.assert_array_equal(joint.Y, Y_TRAIN[[0, 1, 2, 3, 5]][:, [3, 2, 1, 0]])


def test_base_session_and_dataset_order(dataset):
    stream = Protocol("B3-C1", order="dataset").build(dataset)
    assert [s.classes.tolist() for s in stream] == [[0, 1, 2], [3]]


def test_random_order_is_seeded(dataset):
    a = Protocol("B0-C1", order="random", seed=5).build(dataset).class_order
    b = Protocol("B0-C1", order="random", seed=5).build(dataset).class_order
    assert a.tolist() == b.tolist() and sorted(a.tolist()) == [0, 1, 2, 3]


def test_explicit_order_and_n_classes(dataset):
    stream = Protocol("B0-C1", order=["cat", 0], n_classes=2).build(dataset)
    assert [s.classes.tolist() for s in stream] == [[1], [0]]


def test_few_shot_caps_examples_per_class(dataset):
    stream = Protocol("B0-C1", order="dataset", few_shot=1, seed=0).build(dataset)
    for s in stream:
        assert s.n == 1 and s.Y.sum() == 1


def test_remainder_session():
    assert session_sizes(0, 3, 8) == [3, 3, 2]
    assert session_sizes(40, 10, 80) == [40, 10, 10, 10, 10]
    assert session_sizes(0, 10, 80) == [10] * 8


@pytest.mark.parametrize("spec", ["B0C10", "b0-c0", "C10", "B-1-C2", "", "B0-C10-x"])
def test_bad_spec(spec):
    with pytest.raises(MlcilError, match="protocol"):
        parse_spec(spec)


def test_more_classes_than_exist(dataset):
    with pytest.raises(MlcilError, match="needs 5 classes but only 4"):
        Protocol("B0-C5").build(dataset)
    with pytest.raises(MlcilError, match="n_classes"):
        Protocol("B0-C1", n_classes=9).build(dataset)


def test_unknown_class_in_order(dataset):
    with pytest.raises(MlcilError, match="unknown class 'zebra'"):
        Protocol("B0-C1", order=["zebra"]).build(dataset)


def test_stratified_split_when_no_official_split():
    rng = np.random.default_rng(0)
    Y = (rng.random((400, 5)) < 0.3).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    ds = Dataset(rng.normal(size=(400, 3)).astype(np.float32), Y, list("abcde"))
    p = Protocol("B0-C1", seed=3, test_size=0.25)
    train, test = p.split(ds)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 400
    assert abs(len(test) - 100) <= 2
    # stratified: each class's test share is close to 25 %
    share = Y[test].sum(0) / Y.sum(0)
    assert np.all(np.abs(share - 0.25) < 0.05)
    again, _ = Protocol("B0-C1", seed=3, test_size=0.25).split(ds)
    np.testing.assert_array_equal(train, again)


def test_raw_dataset_is_refused():
    ds = Dataset(["a text", "another"], np.array([[1], [0]]), ["x"], name="texts")
    with pytest.raises(MlcilError, match="raw inputs"):
        Protocol("B0-C1").build(ds)
