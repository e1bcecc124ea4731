"""mlcil's .npz format: dense and CSR round trips, summaries without loading X, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil.data import Dataset, read_npz, write_npz
from mlcil.data.npz import npz_summary
from mlcil.errors import MlcilError

RNG = np.random.default_rng(0)


def small(n=6, d=4, L=3):
    X = RNG.normal(size=(n, d)).astype(np.float32)
    Y = (RNG.random((n, L)) < 0.5).astype(np.uint8)
    return X, Y


def test_dense_round_trip(tmp_path):
    X, Y = small()
    ds = Dataset(X, Y, ["a", "b", "c"], np.array(["train"] * 4 + ["test"] * 2), "toy",
                 {"feature_names": ["f0", "f1", "f2", "f3"]})
    path = write_npz(ds, tmp_path / "toy.npz")
    back = read_npz(path)
    assert back.name == "toy" and back.label_names == ["a", "b", "c"]
    assert isinstance(back.X, np.ndarray) and back.X.dtype == np.float32
    np.testing.assert_array_equal(back.X, X)
    np.testing.assert_array_equal(back.Y, Y)
    assert back.split.tolist() == ds.split.tolist()
    assert back.meta["feature_names"] == ["f0", "f1", "f2", "f3"]
    assert not list(tmp_path.glob("*.part"))  # atomic write leaves no temp file


def test_csr_parts_stay_sparse(tmp_path):
    X = sp.random(50, 1000, density=0.01, format="csr", dtype=np.float32, random_state=1)
    Y = (RNG.random((50, 2)) < 0.5).astype(np.uint8)
    np.savez(tmp_path / "wide.npz", X_data=X.data, X_indices=X.indices, X_indptr=X.indptr,
             X_shape=np.array(X.shape), X_format="csr", Y=Y, label_names=np.array(["p", "q"]))
    ds = read_npz(tmp_path / "wide.npz", name="wide!")
    assert ds.name == "wide!" and ds.split is None
    assert sp.issparse(ds.X) and ds.X.format == "csr" and ds.X.shape == (50, 1000)
    assert (ds.X != X).nnz == 0
    # and through write_npz
    back = read_npz(write_npz(ds, tmp_path / "again.npz"))
    assert sp.issparse(back.X) and (back.X != X).nnz == 0
    assert npz_summary(tmp_path / "again.npz") == {
        "n": 50, "d": 1000, "L": 2, "cardinality": pytest.approx(Y.sum(1).mean()), "split": None}


def test_summary_reads_dense_shape_from_header(tmp_path):
    X, Y = small(8, 5, 2)
    ds = Dataset(X, Y, ["a", "b"], np.array(["train"] * 5 + ["test"] * 3), "s")
    s = npz_summary(write_npz(ds, tmp_path / "s.npz", compress=False))
    assert (s["n"], s["d"], s["L"]) == (8, 5, 2)
    assert s["split"] == {"train": 5, "test": 3}


def test_missing_key(tmp_path):
    X, Y = small()
    np.savez(tmp_path / "nolabels.npz", X=X, Y=Y)
    with pytest.raises(MlcilError, match=r"nolabels\.npz: missing key 'label_names'"):
        read_npz(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "noX.npz", Y=Y, label_names=np.array(["a", "b", "c"]))
    with pytest.raises(MlcilError, match=r"noX\.npz: missing key 'X'"):
        read_npz(tmp_path / "noX.npz")
    np.savez(tmp_path / "halfcsr.npz", X_data=np.ones(1), Y=Y, label_names=np.array(["a", "b", "c"]))
    with pytest.raises(MlcilError, match=r"halfcsr\.npz: missing key 'X_indices'"):
        read_npz(tmp_path / "halfcsr.npz")


def test_nan_in_dense_and_sparse_x(tmp_path):
    X, Y = small()
    X[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, Y=Y, label_names=np.array(["a", "b", "c"]))
    with pytest.raises(MlcilError, match=r"nan\.npz: X: contains NaN or inf \(first at row 2, column 1\)"):
        read_npz(tmp_path / "nan.npz")
    S = sp.csr_matrix(np.nan_to_num(X))
    S.data[S.indptr[4]] = np.inf  # first stored value of row 4
    col = S.indices[S.indptr[4]]
    np.savez(tmp_path / "inf.npz", X_data=S.data, X_indices=S.indices, X_indptr=S.indptr,
             X_shape=np.array(S.shape), Y=Y, label_names=np.array(["a", "b", "c"]))
    with pytest.raises(MlcilError, match=rf"inf\.npz: X: contains NaN or inf \(first at row 4, column {col}\)"):
        read_npz(tmp_path / "inf.npz")


def test_non_binary_y(tmp_path):
    X, Y = small()
    Y = Y.astype(np.int64)
    Y[3, 2] = 2
    np.savez(tmp_path / "y2.npz", X=X, Y=Y, label_names=np.array(["a", "b", "c"]))
    with pytest.raises(MlcilError, match=r"y2\.npz: Y: expected binary 0/1 labels, got 2 at row 3, column 2"):
        read_npz(tmp_path / "y2.npz")


def test_mismatched_lengths_and_objects(tmp_path):
    X, Y = small()
    np.savez(tmp_path / "names.npz", X=X, Y=Y, label_names=np.array(["a", "b"]))
    with pytest.raises(MlcilError, match=r"names\.npz: .*label_names has 2 entries, Y has 3 columns"):
        read_npz(tmp_path / "names.npz")
    np.savez(tmp_path / "obj.npz", X=X, Y=Y, label_names=np.array(["a", "b", None], dtype=object))
    with pytest.raises(MlcilError, match=r"obj\.npz: array 'label_names' cannot be read without pickle"):
        read_npz(tmp_path / "obj.npz")


def test_missing_and_corrupt_file(tmp_path):
    with pytest.raises(MlcilError, match=r"absent\.npz: no such file"):
        read_npz(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(MlcilError, match=r"junk\.npz: not a readable \.npz"):
        read_npz(tmp_path / "junk.npz")


def test_raw_dataset_cannot_be_written(tmp_path):
    ds = Dataset(["a text", "another"], np.array([[1], [0]]), ["x"], name="raw")
    with pytest.raises(MlcilError, match="raw inputs"):
        write_npz(ds, tmp_path / "raw.npz")
