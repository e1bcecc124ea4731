"""Mulan / MEKA ARFF reader: dense and sparse rows, label specs, train/test pairs, errors."""

from __future__ import annotations

import bz2
import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil.data import read_arff, read_npz
from mlcil.errors import MlcilError

DENSE = """% a comment
@relation toy

@attribute f1 numeric
@attribute 'feat two' REAL
@attribute colour {red,green,blue}
@attribute f4 integer
@attribute Beach {0,1}
@attribute "Sunset glow" {0,1}
@attribute Urban numeric

% another comment
@data
0.5,1e-1,green,3,1,0,1
-2,0,red,0,0,1,0

1.25,7,blue,-1,1,1,0
"""

NESTED_XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
  <label name="Beach"><label name="Sunset glow"></label></label>
  <label name="Urban"></label>
</labels>
"""

SPARSE_MEKA = """@relation 'Toy: -C 2'
@attribute A {0,1}
@attribute B {0,1}
@attribute x1 numeric
@attribute x2 numeric
@attribute x3 numeric
@data
{0 1,2 0.5}
{1 1,4 -3}
{}
{0 1,1 1,2 1,3 2,4 3}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_dense_with_nested_xml(tmp_path):
    arff = write(tmp_path / "toy.arff", DENSE)
    xml = write(tmp_path / "labels.xml", NESTED_XML)
    ds = read_arff(arff, labels=xml)
    assert ds.name == "toy" and ds.split is None
    assert ds.label_names == ["Beach", "Sunset glow", "Urban"]
    assert ds.meta["feature_names"] == ["f1", "feat two", "colour", "f4"]
    assert isinstance(ds.X, np.ndarray) and ds.X.dtype == np.float32
    # nominal values without numbers become their declaration index: red=0, green=1, blue=2
    np.testing.assert_allclose(ds.X, [[0.5, 0.1, 1, 3], [-2, 0, 0, 0], [1.25, 7, 2, -1]], rtol=1e-6)
    np.testing.assert_array_equal(ds.Y, [[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    assert ds.Y.dtype == np.uint8


def test_xml_found_next_to_file(tmp_path):
    write(tmp_path / "toy.xml", NESTED_XML)
    ds = read_arff(write(tmp_path / "toy.arff", DENSE))
    assert ds.label_names == ["Beach", "Sunset glow", "Urban"]
    assert ds.meta["labels_from"].endswith("toy.xml")


def test_explicit_int_labels_positive_and_negative(tmp_path):
    arff = write(tmp_path / "toy.arff", DENSE)
    last = read_arff(arff, labels=-3)
    assert last.label_names == ["Beach", "Sunset glow", "Urban"] and last.d == 4
    first = read_arff(write(tmp_path / "meka.arff", SPARSE_MEKA), labels=2)
    assert first.label_names == ["A", "B"] and first.d == 3
    with pytest.raises(MlcilError, match="meka.arff"):
        read_arff(tmp_path / "meka.arff", labels=5)


def test_sparse_rows_and_meka_relation(tmp_path):
    ds = read_arff(write(tmp_path / "meka.arff", SPARSE_MEKA))  # labels from '-C 2' in @relation
    assert ds.label_names == ["A", "B"]
    assert sp.issparse(ds.X) and ds.X.format == "csr" and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X.toarray(), [[0.5, 0, 0], [0, 0, -3], [0, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1], [0, 0], [1, 1]])
    assert not np.any(ds.X.data == 0)  # explicit zeros removed
    dense = read_arff(tmp_path / "meka.arff", sparse=False)
    np.testing.assert_array_equal(dense.X, ds.X.toarray())


def test_negative_c_in_relation(tmp_path):
    text = "@relation 'toy: -C -2'\n@attribute x numeric\n@attribute a {0,1}\n@attribute b {0,1}\n@data\n1,0,1\n2,1,1\n"
    ds = read_arff(write(tmp_path / "neg.arff", text))
    assert ds.label_names == ["a", "b"]
    np.testing.assert_array_equal(ds.X, [[1], [2]])


def test_mixed_dense_and_sparse_rows(tmp_path):
    text = "@relation m\n@attribute x numeric\n@attribute y numeric\n@attribute a {0,1}\n@data\n1,2,1\n{1 5}\n"
    ds = read_arff(write(tmp_path / "mixed.arff", text), labels=-1)
    assert isinstance(ds.X, np.ndarray)
    np.testing.assert_array_equal(ds.X, [[1, 2], [0, 5]])
    np.testing.assert_array_equal(ds.Y, [[1], [0]])


def test_yes_no_nominal_drop_and_label_list(tmp_path):
    text = ("@relation p\n@attribute id {P1,P2}\n@attribute m1 {YES,NO}\n@attribute m2 {YES,NO}\n"
            "@attribute c1 {0,1}\n@data\nP1,YES,NO,1\nP2,NO,NO,0\n")
    ds = read_arff(write(tmp_path / "p.arff", text), labels=["c1"], drop=["id"])
    assert ds.meta["feature_names"] == ["m1", "m2"]
    np.testing.assert_array_equal(ds.X, [[1, 0], [0, 0]])
    with pytest.raises(MlcilError, match="unknown attribute"):
        read_arff(tmp_path / "p.arff", labels=["c1"], drop=["nope"])


def test_train_test_pair_sets_split(tmp_path):
    head = "@relation pair\n@attribute x numeric\n@attribute L1 {0,1}\n@attribute L2 {0,1}\n@data\n"
    train = write(tmp_path / "pair-train.arff", head + "1,1,0\n2,0,1\n3,1,1\n")
    test = write(tmp_path / "pair-test.arff", head + "{0 4,2 1}\n")
    write(tmp_path / "pair.xml", '<labels><label name="L1"/><label name="L2"/></labels>')
    ds = read_arff([train, test])
    assert ds.name == "pair"
    assert ds.split.tolist() == ["train", "train", "train", "test"]
    np.testing.assert_array_equal(ds.X[:, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1], [1, 1], [0, 1]])
    odd = write(tmp_path / "pair-other.arff", head + "1,1,0\n")
    with pytest.raises(MlcilError, match="train or the test"):
        read_arff([train, odd], labels=-2)


def test_pair_with_different_attributes(tmp_path):
    train = write(tmp_path / "q-train.arff", "@relation q\n@attribute x numeric\n@attribute a {0,1}\n@data\n1,1\n")
    test = write(tmp_path / "q-test.arff", "@relation q\n@attribute z numeric\n@attribute a {0,1}\n@data\n1,1\n")
    with pytest.raises(MlcilError, match="q-test.arff.*differ"):
        read_arff([train, test], labels=-1)


def test_compressed(tmp_path):
    with gzip.open(tmp_path / "toy.arff.gz", "wt") as fh:
        fh.write(DENSE)
    with bz2.open(tmp_path / "meka.arff.bz2", "wt") as fh:
        fh.write(SPARSE_MEKA)
    assert read_arff(tmp_path / "toy.arff.gz", labels=-3).n == 3
    ds = read_arff(tmp_path / "meka.arff.bz2")
    assert ds.name == "meka" and ds.L == 2 and ds.n == 4


HEAD = "@relation bad\n@attribute x numeric\n@attribute y numeric\n@attribute lab {0,1}\n@data\n"  # @data on line 5


@pytest.mark.parametrize(
    "body, line, needle",
    [
        ("1,2,0\n1,2\n", 7, "expected 3 values, got 2"),
        ("1,2,0\n1,abc,1\n", 7, "non-numeric value 'abc'"),
        ("1,?,0\n", 6, "missing value"),
        ("1,2,0\n\n1,2,2\n", 8, "label 'lab' has value 2; labels must be 0 or 1"),
        ("{0 1,2 7}\n", 6, "label 'lab' has value 7"),
        ("{0 1,9 1}\n", 6, "index 9 out of range"),
        ("{0 1,2 1\n", 6, "closing"),
        ("1,nan,0\n", 6, "NaN or infinite"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, body, line, needle):
    path = write(tmp_path / "bad.arff", HEAD + body)
    with pytest.raises(MlcilError) as err:
        read_arff(path, labels=-1)
    msg = str(err.value)
    assert f"bad.arff:{line}:" in msg and needle in msg, msg
    assert "\n" not in msg


def test_nominal_feature_value_not_declared(tmp_path):
    text = "@relation r\n@attribute f {0,1}\n@attribute g {lo,hi}\n@attribute lab {0,1}\n@data\n1,lo,0\n3,hi,1\n"
    with pytest.raises(MlcilError, match=r"nf\.arff:7: value '?3'? is not one of \{0,1\} for attribute 'f'"):
        read_arff(write(tmp_path / "nf.arff", text), labels=-1)
    fast = "@relation r\n@attribute f {0,1}\n@attribute x numeric\n@attribute lab {0,1}\n@data\n1,5,0\n3,5,1\n"
    with pytest.raises(MlcilError, match=r"nf\.arff:7: value 3 is not one of \{0,1\} for attribute 'f'"):
        read_arff(write(tmp_path / "nf.arff", fast), labels=-1)
    text = text.replace("3,hi", "1,mid")
    with pytest.raises(MlcilError, match=r"nf\.arff:7: value 'mid' is not one of \{lo,hi\}"):
        read_arff(write(tmp_path / "nf.arff", text), labels=-1)


def test_numeric_label_must_be_binary(tmp_path):
    text = "@relation r\n@attribute x numeric\n@attribute lab numeric\n@data\n1,0\n2,0.5\n"
    with pytest.raises(MlcilError, match=r"nb\.arff:6: label 'lab' has value 0.5"):
        read_arff(write(tmp_path / "nb.arff", text), labels=-1)


def test_nominal_label_with_other_values(tmp_path):
    text = "@relation r\n@attribute x numeric\n@attribute lab {a,b,c}\n@data\n1,a\n"
    with pytest.raises(MlcilError, match=r"nl\.arff:3: label attribute 'lab' must be binary"):
        read_arff(write(tmp_path / "nl.arff", text), labels=-1)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("@relation r\n@attribute x numeric\n@attribute a {0,1}\n", r"nodata\.arff:3: end of file without an @data"),
        ("@relation r\n@attribute s string\n@data\n", r"nodata\.arff:2: attribute 's' has type string"),
        ("@relation r\n@attribute x numeric\nhello\n", r"nodata\.arff:3: expected @relation"),
        ("@relation r\n@data\n", r"nodata\.arff:2: @data before any @attribute"),
    ],
)
def test_malformed_header(tmp_path, text, needle):
    with pytest.raises(MlcilError, match=needle):
        read_arff(write(tmp_path / "nodata.arff", text), labels=-1)


def test_labels_unspecified_says_how(tmp_path):
    path = write(tmp_path / "plain.arff", "@relation r\n@attribute x numeric\n@attribute a {0,1}\n@data\n1,0\n")
    with pytest.raises(MlcilError, match="plain.arff: cannot tell which attributes are labels.*-C k"):
        read_arff(path)


def test_xml_label_missing_from_arff(tmp_path):
    arff = write(tmp_path / "toy.arff", DENSE)
    xml = write(tmp_path / "other.xml", '<labels><label name="Nope"/></labels>')
    with pytest.raises(MlcilError, match="other.xml: label 'Nope' is not an attribute"):
        read_arff(arff, labels=xml)


def test_missing_file(tmp_path):
    with pytest.raises(MlcilError, match="no such file"):
        read_arff(tmp_path / "absent.arff", labels=1)


def test_round_trip_of_shared_scene(tmp_path, shared_data, mulan_files):
    """Real data: scene written as a Mulan train/test pair (dense and sparse) reads back identically."""
    ref = read_npz(shared_data / "scene" / "scene.npz")
    for sparse in (False, True):
        folder = tmp_path / ("sparse" if sparse else "dense")
        paths = mulan_files(folder, "scene", ref.X, ref.Y, ref.meta["feature_names"], ref.label_names,
                            ref.split, sparse=sparse)
        ds = read_arff(paths, sparse=False)
        assert ds.name == "scene" and (ds.n, ds.d, ds.L) == (2407, 294, 6)
        order = np.concatenate([np.flatnonzero(ref.split == "train"), np.flatnonzero(ref.split == "test")])
        np.testing.assert_array_equal(ds.X, ref.X[order])
        np.testing.assert_array_equal(ds.Y, ref.Y[order])
        assert ds.label_names == ref.label_names
        assert (ds.split == "train").sum() == 1211 and (ds.split == "test").sum() == 1196
        assert re.search(r"scene\.xml$", ds.meta["labels_from"])
