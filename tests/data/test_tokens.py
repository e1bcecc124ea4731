"""Datasets that carry token features: validation, row selection through a protocol, the .npz round trip."""

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil.data.dataset import Dataset, TokenFeatures, check_features, token_features
from mlcil.data.npz import read_npz, token_paths, write_npz
from mlcil.errors import MlcilError
from mlcil.protocols import Protocol


def tokened(n=60, t=5, d=3, L=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    T = rng.normal(size=(n, t, d)).astype(np.float16)
    mask = rng.random((n, t)) < 0.8
    Y = (rng.random((n, L)) < 0.4).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    split = np.where(np.arange(n) < 40, "train", "test")
    return Dataset(X, Y, [f"c{i}" for i in range(L)], split, "tok", T=T, mask=mask)


def test_rows_keep_their_tokens_through_a_protocol():
    ds = tokened()
    stream = Protocol("B2-C1", order="dataset").build(ds)
    for s in stream:
        T, mask = token_features(s)
        np.testing.assert_array_equal(T, ds.T[s.index])
        np.testing.assert_array_equal(mask, ds.mask[s.index])
    test = np.flatnonzero(ds.split == "test")
    np.testing.assert_array_equal(token_features(stream.X_test)[0], ds.T[test])
    rows = stream.test_rows(1)
    np.testing.assert_array_equal(token_features(stream.X_test[rows])[1], ds.mask[test[rows]])
    joint = stream.joint_session(2)
    np.testing.assert_array_equal(token_features(joint)[0], ds.T[joint.index])


def test_other_learners_see_a_plain_matrix():
    ds = tokened()
    X = check_features(ds.X)
    assert type(X) is np.ndarray and type(np.asarray(ds.X)) is np.ndarray
    np.testing.assert_array_equal(X, np.asarray(ds.X))
    assert token_features(ds.X[:, :3]) is None and type(ds.X[:, :3]) is np.ndarray  # columns: no tokens
    assert token_features(np.asarray(ds.X)) is None
    sub = ds.subset(np.array([3, 1]))
    np.testing.assert_array_equal(sub.T, ds.T[[3, 1]])


def test_bad_tokens_are_named():
    X, Y = np.zeros((4, 2), np.float32), np.eye(4, 2, dtype=np.uint8)
    with pytest.raises(MlcilError, match=r"T: expected 4 rows"):
        Dataset(X, Y, ["a", "b"], T=np.zeros((3, 2, 2), np.float16))
    with pytest.raises(MlcilError, match=r"shape \(n, t, d\)"):
        Dataset(X, Y, ["a", "b"], T=np.zeros((4, 2), np.float16))
    with pytest.raises(MlcilError, match=r"mask: expected a bool array of shape \(4, 2\)"):
        Dataset(X, Y, ["a", "b"], T=np.zeros((4, 2, 2), np.float16), mask=np.ones((4, 3), bool))
    with pytest.raises(MlcilError, match="sparse"):
        Dataset(sp.csr_matrix(X), Y, ["a", "b"], T=np.zeros((4, 2, 2), np.float16))
    ds = Dataset(X, Y, ["a", "b"], T=np.zeros((4, 2, 2), np.float32))  # cast, mask defaults to all True
    assert ds.T.dtype == np.float16 and ds.mask.all() and isinstance(ds.X, TokenFeatures)


def test_npz_round_trip_memory_maps_tokens(tmp_path):
    ds = tokened()
    path = write_npz(ds, tmp_path / "tok.npz")
    t_path, m_path = token_paths(path)
    assert t_path.is_file() and m_path.is_file()
    back = read_npz(path)
    assert isinstance(back.T, np.memmap)
    np.testing.assert_array_equal(back.T, ds.T)
    np.testing.assert_array_equal(back.mask, ds.mask)
    np.testing.assert_array_equal(token_features(back.X[[5, 2]])[0], ds.T[[5, 2]])
    # a dataset without tokens written over it leaves none behind; old files without tokens still load
    plain = Dataset(np.asarray(ds.X), ds.Y, ds.label_names, ds.split, "tok")
    write_npz(plain, path)
    assert not t_path.exists() and read_npz(path).T is None
    np.save(t_path, ds.T)
    with pytest.raises(MlcilError, match="mask"):
        read_npz(path)
