"""JSON-lines raw-text reader: plain and gzipped, label names, errors with line numbers."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mlcil.data import read_jsonl
from mlcil.data.jsonl import jsonl_summary
from mlcil.errors import MlcilError

ROWS = [
    {"id": "a1", "text": "sunny beach", "labels": ["beach", "sun"], "split": "train", "source": "x"},
    {"id": "a2", "text": "city at night", "labels": ["urban"], "split": "train"},
    {"id": "a3", "text": "nothing to see", "labels": [], "split": "unused"},
    {"id": "a4", "text": "beach town", "labels": ["beach", "urban"], "split": "test"},
]


def lines(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_plain_file_with_union_of_labels(tmp_path):
    path = tmp_path / "toy.jsonl"
    path.write_text(lines(ROWS))
    ds = read_jsonl(path)
    assert ds.name == "toy" and ds.is_raw and ds.d is None
    assert ds.X == ["sunny beach", "city at night", "nothing to see", "beach town"]
    assert ds.label_names == ["beach", "sun", "urban"]  # sorted union
    np.testing.assert_array_equal(ds.Y, [[1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 1]])
    assert ds.split.tolist() == ["train", "train", "unused", "test"]  # 'unused' rows kept
    assert ds.meta["ids"] == ["a1", "a2", "a3", "a4"]
    assert ds.meta["extra"]["source"] == ["x", None, None, None]


def test_gzip_with_label_names_json(tmp_path):
    path = tmp_path / "toy.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(lines(ROWS))
    (tmp_path / "label_names.json").write_text(json.dumps(["urban", "sun", "beach", "snow"]))
    ds = read_jsonl(path)
    assert ds.name == "toy" and ds.label_names == ["urban", "sun", "beach", "snow"]
    np.testing.assert_array_equal(ds.Y[0], [0, 1, 1, 0])
    assert jsonl_summary(path) == {"n": 4, "d": None, "L": 4, "cardinality": 1.25,
                                   "split": {"train": 2, "unused": 1, "test": 1}}


def test_label_names_json_dict_uses_smallest_covering_list(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(lines(ROWS))
    (tmp_path / "label_names.json").write_text(json.dumps(
        {"all": ["beach", "snow", "sun", "urban"], "used": ["beach", "sun", "urban"], "r1": ["beach"]}))
    assert read_jsonl(path).label_names == ["beach", "sun", "urban"]


def test_explicit_label_names_and_unknown_label(tmp_path):
    path = tmp_path / "toy.jsonl"
    path.write_text(lines(ROWS))
    ds = read_jsonl(path, label_names=["urban", "beach", "sun"], name="named")
    assert ds.name == "named" and ds.Y[:, 0].tolist() == [0, 1, 0, 1]
    with pytest.raises(MlcilError, match=r"toy\.jsonl:1: unknown label 'sun'"):
        read_jsonl(path, label_names=["beach", "urban"])


def test_bad_json_names_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(lines(ROWS[:2]) + "\n" + '{"text": "x", "labels": [}\n')
    with pytest.raises(MlcilError, match=r"bad\.jsonl:4: invalid JSON"):
        read_jsonl(path)
    gz = tmp_path / "bad.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(lines(ROWS[:1]) + "not json\n")
    with pytest.raises(MlcilError, match=r"bad\.jsonl\.gz:2: invalid JSON"):
        read_jsonl(gz)


@pytest.mark.parametrize(
    "row, needle",
    [
        ({"text": 3, "labels": []}, "field 'text' must be a string"),
        ({"text": "t", "labels": "beach"}, "field 'labels' must be a list"),
        ({"text": "t", "labels": []}, "field 'split' must be given on every line or on none"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_fields(tmp_path, row, needle):
    path = tmp_path / "f.jsonl"
    path.write_text(lines(ROWS[:1]) + json.dumps(row) + "\n")
    with pytest.raises(MlcilError, match=rf"f\.jsonl:2: {needle}"):
        read_jsonl(path)


def test_default_ids_and_no_split(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text(lines([{"text": "a", "labels": ["x"]}, {"text": "b", "labels": []}]))
    ds = read_jsonl(path)
    assert ds.split is None and ds.meta["ids"] == [0, 1]


def test_truncated_gzip(tmp_path):
    data = gzip.compress(lines(ROWS * 50).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MlcilError, match=r"cut\.jsonl\.gz:\d+: cannot read"):
        read_jsonl(path)
