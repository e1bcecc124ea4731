"""Raw-text datasets as JSON lines (optionally gzipped): one object per line.

Fields: ``text`` (str, required), ``labels`` (list of label names, required, may be empty),
``id`` (optional, default the 0-based row number), ``split`` (optional: all rows or none).
Other fields are kept per row in ``Dataset.meta['extra'][field]``.

Label names (the columns of Y, in order): the ``label_names`` argument; else
``label_names.json`` next to the file (a list, or a dict of named lists, of which the
smallest list covering every label seen is used); else the sorted union of the labels seen.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcil.data.dataset import Dataset
from mlcil.errors import MlcilError

LABEL_NAMES_FILE = "label_names.json"


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open(path: Path) -> io.TextIOBase:
    try:
        if _is_gzip(path):
            return gzip.open(path, "rt", encoding="utf-8")
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise MlcilError(f"{path}: no such file") from None
    except OSError as exc:
        raise MlcilError(f"{path}: cannot open ({exc})") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line; bad JSON raises MlcilError with the line number."""
    path = Path(path)
    lineno = 0
    with _open(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MlcilError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(obj, dict):
                    raise MlcilError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield lineno, obj
        except (OSError, EOFError, UnicodeDecodeError) as exc:  # truncated gzip, bad bytes
            raise MlcilError(f"{path}:{lineno + 1}: cannot read ({exc})") from None


def read_label_names_json(path: str | os.PathLike, seen: set[str] | None = None) -> list[str]:
    """Label names from a ``label_names.json``: a list, or a dict of lists (the smallest covering ``seen``)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MlcilError(f"{path}: cannot read label names ({exc})") from None
    lists = [obj] if isinstance(obj, list) else list(obj.values()) if isinstance(obj, dict) else []
    lists = [v for v in lists if isinstance(v, list) and all(isinstance(s, str) for s in v)]
    if not lists:
        raise MlcilError(f"{path}: expected a list of label names or a dict of such lists")
    covering = [v for v in lists if seen is None or seen <= set(v)]
    if not covering:
        missing = sorted(seen - set(max(lists, key=len)))
        raise MlcilError(f"{path}: no list of label names covers the labels in the data (e.g. {missing[0]!r})")
    return list(min(covering, key=len))


def read_jsonl(
    path: str | os.PathLike, label_names: Sequence[str] | None = None, name: str | None = None
) -> Dataset:
    """Read a raw-text dataset: X = list of n texts, Y = n x L uint8, ids in ``meta['ids']``.

    Unknown label names (when the names are given or read from ``label_names.json``), bad JSON,
    missing or mistyped fields raise :class:`MlcilError` with the file and line number.
    """
    path = Path(path)
    texts: list[str] = []
    ids: list[Any] = []
    splits: list[str | None] = []
    rows: list[list[str]] = []
    line_of: list[int] = []
    extra: dict[str, list[Any]] = {}
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        text, labels = obj.get("text"), obj.get("labels")
        if not isinstance(text, str):
            raise MlcilError(f"{where}: field 'text' must be a string, got {type(text).__name__}")
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise MlcilError(f"{where}: field 'labels' must be a list of label names")
        split = obj.get("split")
        if split is not None and not isinstance(split, str):
            raise MlcilError(f"{where}: field 'split' must be a string")
        if splits and (split is None) != (splits[0] is None):
            raise MlcilError(f"{where}: field 'split' must be given on every line or on none")
        row = len(texts)
        for key, value in obj.items():
            if key not in ("text", "labels", "id", "split"):
                if key not in extra:
                    extra[key] = [None] * row  # rows before the field first appeared
                extra[key].append(value)
        for values in extra.values():
            if len(values) == row:
                values.append(None)
        texts.append(text)
        ids.append(obj.get("id", row))
        splits.append(split)
        rows.append(labels)
        line_of.append(lineno)

    if not texts:
        raise MlcilError(f"{path}: no records (an empty file, or blank lines only); expected one JSON object per "
                         f"line with fields 'text' and 'labels'")
    seen = {s for labels in rows for s in labels}
    names_file = path.parent / LABEL_NAMES_FILE
    if label_names is not None:
        names, origin = [str(s) for s in label_names], "the given label_names"
    elif names_file.is_file():
        names, origin = read_label_names_json(names_file, seen), str(names_file)
    else:
        names, origin = sorted(seen), ""
    column = {s: j for j, s in enumerate(names)}
    if len(column) != len(names):
        raise MlcilError(f"{path}: label names contain duplicates ({origin})")
    Y = np.zeros((len(rows), len(names)), dtype=np.uint8)
    for i, labels in enumerate(rows):
        for s in labels:
            j = column.get(s)
            if j is None:
                raise MlcilError(f"{path}:{line_of[i]}: unknown label {s!r} (not in {origin})")
            Y[i, j] = 1
    split_array = None if not splits or splits[0] is None else np.asarray(splits, dtype=str)
    meta: dict[str, Any] = {"path": str(path), "ids": ids}
    if extra:
        meta["extra"] = extra
    stem = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    try:
        return Dataset(texts, Y, names, split_array, name or stem, meta)
    except MlcilError as exc:
        raise MlcilError(f"{path}: {exc}") from None


def jsonl_summary(path: str | os.PathLike) -> dict[str, Any]:
    """n, L, label cardinality and split counts of a JSON-lines dataset, without keeping the texts."""
    path = Path(path)
    n, positives, seen, counts = 0, 0, set(), {}
    for _, obj in iter_jsonl(path):
        labels = obj.get("labels") or []
        n += 1
        positives += len(labels)
        seen.update(labels)
        split = obj.get("split")
        if split is not None:
            counts[split] = counts.get(split, 0) + 1
    names_file = path.parent / LABEL_NAMES_FILE
    L = len(read_label_names_json(names_file, seen)) if names_file.is_file() else len(seen)
    return {"n": n, "d": None, "L": L, "cardinality": positives / n if n else 0.0, "split": counts or None}
