"""Mulan / MEKA multi-label ARFF reader (dense and sparse rows), written for mlcil.

Supported: ``@relation``, ``@attribute`` with numeric/real/integer or nominal ``{...}`` types
(names and values may be quoted), ``@data`` with dense rows (``v1,v2,...``) and sparse rows
(``{index value, ...}``; omitted values are 0, or the first declared value of a nominal
attribute, as in Weka), ``%`` comment lines, ``.gz`` / ``.bz2`` compressed files.
Not supported (clear error): string, date and relational attributes, missing values ``?``,
instance weights.

Which attributes are labels (Mulan keeps them in an XML header file, MEKA in the relation name):

- ``labels`` = path to a Mulan XML file (``<labels><label name="Beach"/>...``, hierarchical
  labels allowed: every ``<label name=...>`` counts);
- ``labels`` = int k: k > 0 the first k attributes, k < 0 the last |k| (MEKA's ``-C`` sign);
- ``labels`` = a list of attribute names;
- ``labels=None``: ``<stem>.xml`` next to the file (``-train`` / ``-test`` / ``-sparse`` suffixes
  stripped, the Mulan layout), else ``-C k`` in ``@relation``, else an error saying how to specify them.

Nominal feature values become numbers: numeric-looking values their number, yes/no and
true/false 1/0, other values their index in the declaration (Weka's internal code).
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import scipy.sparse as sp

from mlcil.data.dataset import Dataset
from mlcil.errors import MlcilError

PathLike = Union[str, os.PathLike]
LabelSpec = Union[None, int, PathLike, Sequence[str]]

_NUMERIC_TYPES = {"numeric", "real", "integer"}
_BOOLEAN_PAIRS = (("yes", "no"), ("true", "false"), ("y", "n"), ("t", "f"))
_MEKA_C = re.compile(r"(?:^|[\s:'\"])-C\s+(-?\d+)")
_SPLIT_SUFFIX = re.compile(r"[-_.](train|test|sparse)$", re.IGNORECASE)


@dataclass
class _Attribute:
    """One ``@attribute`` declaration."""

    name: str
    kind: str  # 'numeric' | 'nominal'
    line: int
    values: tuple[str, ...] = ()  # nominal values, as declared
    codes: dict[str, float] = field(default_factory=dict)  # nominal value -> number

    @property
    def numeric_codes(self) -> bool:
        """True for nominal attributes whose values are numbers, e.g. ``{0,1}``."""
        return self.kind == "nominal" and all(_is_number(v) for v in self.values)

    @property
    def default(self) -> float:
        """Value of an entry a sparse row omits: 0, or the first declared nominal value."""
        return self.codes[self.values[0]] if self.kind == "nominal" else 0.0


@dataclass
class _ArffFile:
    """A parsed ARFF file: all attributes as one n x A float32 matrix (dense or CSR)."""

    path: Path
    relation: str
    attributes: list[_Attribute]
    matrix: Any
    lines: np.ndarray  # (n,) line number of each data row


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _nominal_codes(values: Sequence[str]) -> dict[str, float]:
    """Map nominal values to numbers (see the module docstring)."""
    if all(_is_number(v) for v in values):
        return {v: float(v) for v in values}
    lower = {v.lower() for v in values}
    for yes, no in _BOOLEAN_PAIRS:
        if lower <= {yes, no}:
            return {v: 1.0 if v.lower() == yes else 0.0 for v in values}
    return {v: float(i) for i, v in enumerate(values)}


def _unquote(token: str) -> str:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _split_quoted(text: str, where: str) -> list[str]:
    """Split on commas outside single or double quotes; tokens keep their quotes, stripped."""
    tokens, start, quote, i = [], 0, "", 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == ",":
            tokens.append(text[start:i].strip())
            start = i + 1
        i += 1
    if quote:
        raise MlcilError(f"{where}: unterminated {quote} quote")
    tokens.append(text[start:].strip())
    return tokens


def _split_values(text: str, where: str) -> list[str]:
    if "'" in text or '"' in text:
        return _split_quoted(text, where)
    return [t.strip() for t in text.split(",")]


def _open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently decompressing ``.gz`` / ``.bz2``."""
    kwargs = dict(encoding="utf-8", errors="replace")
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rt", **kwargs)
        if path.name.endswith(".bz2"):
            return bz2.open(path, "rt", **kwargs)
        return open(path, **kwargs)
    except FileNotFoundError:
        raise MlcilError(f"{path}: no such file") from None
    except OSError as exc:
        raise MlcilError(f"{path}: cannot open ({exc})") from None


def _parse_attribute(rest: str, where: str, lineno: int) -> _Attribute:
    """Parse what follows ``@attribute``: a (possibly quoted) name and a type."""
    rest = rest.strip()
    if not rest:
        raise MlcilError(f"{where}: @attribute without a name")
    if rest[0] in "'\"":
        q, i = rest[0], 1
        while i < len(rest) and rest[i] != q:
            i += 2 if rest[i] == "\\" else 1
        if i >= len(rest):
            raise MlcilError(f"{where}: unterminated quote in attribute name")
        name, type_text = _unquote(rest[: i + 1]), rest[i + 1:].strip()
    else:
        parts = rest.split(None, 1)
        name, type_text = parts[0], (parts[1].strip() if len(parts) > 1 else "")
    if not type_text:
        raise MlcilError(f"{where}: attribute '{name}' has no type")
    if type_text.startswith("{"):
        if not type_text.endswith("}"):
            raise MlcilError(f"{where}: nominal attribute '{name}' must end with '}}'")
        values = tuple(_unquote(v) for v in _split_values(type_text[1:-1], where))
        if not values or any(v == "" for v in values):
            raise MlcilError(f"{where}: nominal attribute '{name}' has an empty value list or an empty value")
        return _Attribute(name, "nominal", lineno, values, _nominal_codes(values))
    kind = type_text.split()[0].lower()
    if kind in _NUMERIC_TYPES:
        return _Attribute(name, "numeric", lineno)
    raise MlcilError(
        f"{where}: attribute '{name}' has type {kind}; only numeric/real/integer and nominal {{...}} are supported"
    )


class _RowParser:
    """Turns ``@data`` lines into numbers, with file:line errors."""

    def __init__(self, attributes: list[_Attribute]):
        self.attributes = attributes
        self.n_attr = len(attributes)
        # numpy can parse a whole row at once when every value is a number
        self.fast = all(a.kind == "numeric" or a.numeric_codes for a in attributes)

    def _value(self, token: str, attr: _Attribute, where: str) -> float:
        if token == "?":
            raise MlcilError(
                f"{where}: missing value '?' for attribute '{attr.name}' (missing values are not supported)"
            )
        if attr.kind == "numeric":
            try:
                return float(_unquote(token))
            except ValueError:
                raise MlcilError(f"{where}: non-numeric value {token!r} for numeric attribute '{attr.name}'") from None
        value = _unquote(token)
        try:
            return attr.codes[value]
        except KeyError:
            allowed = ",".join(attr.values[:10]) + (",..." if len(attr.values) > 10 else "")
            raise MlcilError(
                f"{where}: value {value!r} is not one of {{{allowed}}} for attribute '{attr.name}'"
            ) from None

    def dense(self, line: str, where: str) -> np.ndarray:
        tokens = _split_values(line, where)
        if len(tokens) != self.n_attr:
            raise MlcilError(f"{where}: expected {self.n_attr} values, got {len(tokens)}")
        if self.fast:
            try:
                return np.asarray(tokens, dtype=np.float32)
            except ValueError:
                pass  # find the culprit below
        return np.asarray([self._value(t, a, where) for t, a in zip(tokens, self.attributes)], dtype=np.float32)

    def sparse(self, line: str, where: str) -> tuple[np.ndarray, np.ndarray]:
        close = line.rfind("}")
        if close < 0:
            raise MlcilError(f"{where}: sparse row without closing '}}'")
        if line[close + 1:].strip():
            raise MlcilError(f"{where}: unexpected text after '}}' (instance weights are not supported)")
        inner = line[1:close].strip()
        if not inner:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        index_tokens, value_tokens = [], []
        for entry in _split_values(inner, where):
            parts = entry.split(None, 1)
            if len(parts) != 2:
                raise MlcilError(f"{where}: expected 'index value' in sparse row, got {entry!r}")
            index_tokens.append(parts[0])
            value_tokens.append(parts[1].strip())
        try:
            index = np.asarray([int(t) for t in index_tokens], dtype=np.int64)
        except ValueError:
            raise MlcilError(f"{where}: attribute index must be an integer in sparse row, got {index_tokens}") from None
        if index.min() < 0 or index.max() >= self.n_attr:
            bad = int(index[(index < 0) | (index >= self.n_attr)][0])
            raise MlcilError(f"{where}: attribute index {bad} out of range 0..{self.n_attr - 1}")
        if len(np.unique(index)) != len(index):
            raise MlcilError(f"{where}: an attribute index appears twice in a sparse row")
        values = None
        if self.fast:
            try:
                values = np.asarray(value_tokens, dtype=np.float32)
            except ValueError:
                pass
        if values is None:
            values = np.asarray(
                [self._value(t, self.attributes[i], where) for t, i in zip(value_tokens, index)], dtype=np.float32
            )
        return index, values


def _assemble(parsed: _RowParser, kinds: list[bool], dense_rows: list[np.ndarray],
              sparse_rows: list[tuple[np.ndarray, np.ndarray]]) -> Any:
    """Stack parsed rows into an n x A float32 matrix: CSR when every row was sparse, else dense."""
    n, n_attr = len(kinds), parsed.n_attr
    defaults = np.asarray([a.default for a in parsed.attributes], dtype=np.float32)
    if n and not dense_rows and not defaults.any():
        lengths = np.fromiter((len(idx) for idx, _ in sparse_rows), dtype=np.int64, count=n)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.concatenate([idx for idx, _ in sparse_rows]) if lengths.sum() else np.zeros(0, np.int64)
        data = np.concatenate([val for _, val in sparse_rows]) if lengths.sum() else np.zeros(0, np.float32)
        M = sp.csr_matrix((data, indices.astype(np.int32), indptr.astype(np.int64)), shape=(n, n_attr))
        M.sort_indices()
        return M
    if not sparse_rows:
        return np.vstack(dense_rows) if dense_rows else np.zeros((0, n_attr), dtype=np.float32)
    M = np.empty((n, n_attr), dtype=np.float32)
    d_iter, s_iter = iter(dense_rows), iter(sparse_rows)
    for i, is_sparse in enumerate(kinds):
        if is_sparse:
            idx, val = next(s_iter)
            M[i] = defaults
            M[i, idx] = val
        else:
            M[i] = next(d_iter)
    return M


def _parse_file(path: Path) -> _ArffFile:
    """Read one ARFF file into an n x A matrix of all its attributes."""
    relation, attributes = "", []
    kinds: list[bool] = []
    dense_rows: list[np.ndarray] = []
    sparse_rows: list[tuple[np.ndarray, np.ndarray]] = []
    lines: list[int] = []
    parser: _RowParser | None = None
    lineno = 0
    with _open_text(path) as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                line = raw.strip()
                if not line or line.startswith("%"):
                    continue
                where = f"{path}:{lineno}"
                if parser is None:  # header
                    keyword, rest = (line.split(None, 1) + [""])[:2]
                    keyword = keyword.lower()
                    if keyword == "@relation":
                        relation = _unquote(rest)
                    elif keyword == "@attribute":
                        attributes.append(_parse_attribute(rest, where, lineno))
                    elif keyword == "@data":
                        if not attributes:
                            raise MlcilError(f"{where}: @data before any @attribute")
                        seen: set[str] = set()
                        for a in attributes:
                            if a.name in seen:
                                raise MlcilError(f"{path}:{a.line}: attribute '{a.name}' is declared twice")
                            seen.add(a.name)
                        parser = _RowParser(attributes)
                    else:
                        raise MlcilError(f"{where}: expected @relation, @attribute or @data, got {line[:40]!r}")
                    continue
                if line.startswith("{"):
                    sparse_rows.append(parser.sparse(line, where))
                    kinds.append(True)
                else:
                    dense_rows.append(parser.dense(line, where))
                    kinds.append(False)
                lines.append(lineno)
        except (OSError, EOFError) as exc:  # truncated or corrupt compressed stream
            raise MlcilError(f"{path}:{lineno}: cannot read ({exc})") from None
    if parser is None:
        raise MlcilError(f"{path}:{lineno}: end of file without an @data line")
    matrix = _assemble(parser, kinds, dense_rows, sparse_rows)
    return _ArffFile(path, relation, attributes, matrix, np.asarray(lines, dtype=np.int64))


def _row_of_entry(M: sp.csr_matrix, k: int) -> int:
    return int(np.searchsorted(M.indptr, k, side="right")) - 1


def _check_values(f: _ArffFile, label_cols: list[int]) -> None:
    """Labels must be 0/1, numeric-coded nominal values must be declared ones, all values finite."""
    M, attrs = f.matrix, f.attributes
    Y = M[:, label_cols].toarray() if sp.issparse(M) else M[:, label_cols]
    bad = ~np.isin(Y, (0.0, 1.0))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise MlcilError(
            f"{f.path}:{f.lines[r]}: label '{attrs[label_cols[c]].name}' has value {Y[r, c]:g}; labels must be 0 or 1"
        )
    groups: dict[tuple[float, ...], list[int]] = {}
    for j, a in enumerate(attrs):
        if a.numeric_codes:
            groups.setdefault(tuple(sorted(set(a.codes.values()))), []).append(j)
    for allowed, cols in groups.items():
        if sp.issparse(M):
            in_group = np.zeros(len(attrs), dtype=bool)
            in_group[cols] = True
            bad_k = np.flatnonzero(in_group[M.indices] & ~np.isin(M.data, allowed))
            if len(bad_k):
                k = bad_k[0]
                r, j, v = _row_of_entry(M, k), int(M.indices[k]), float(M.data[k])
            else:
                continue
        else:
            sub = M[:, cols]
            bad = ~np.isin(sub, allowed)
            if not bad.any():
                continue
            r, c = np.argwhere(bad)[0]
            j, v = cols[c], float(sub[r, c])
        a = attrs[j]
        raise MlcilError(
            f"{f.path}:{f.lines[r]}: value {v:g} is not one of {{{','.join(a.values)}}} for attribute '{a.name}'"
        )
    values = M.data if sp.issparse(M) else M
    if not np.isfinite(values).all():
        if sp.issparse(M):
            k = int(np.flatnonzero(~np.isfinite(M.data))[0])
            r, j = _row_of_entry(M, k), int(M.indices[k])
        else:
            r, j = np.argwhere(~np.isfinite(M))[0]
        raise MlcilError(f"{f.path}:{f.lines[r]}: attribute '{attrs[j].name}' is NaN or infinite")


def _strip_ext(path: Path) -> str:
    """File name without ``.arff`` and compression suffixes: 'Imdb.arff.bz2' -> 'Imdb'."""
    stem = path.name
    for suffix in (".gz", ".bz2", ".arff"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def _base_stem(path: Path) -> str:
    """'scene-train.arff' -> 'scene'; 'Corel5k-train-sparse.arff' -> 'Corel5k'."""
    stem = _strip_ext(path)
    while True:
        shorter = _SPLIT_SUFFIX.sub("", stem)
        if shorter == stem or not shorter:
            return stem
        stem = shorter


def _find_xml(path: Path) -> Path | None:
    """The Mulan XML header next to an ARFF file, if there is one."""
    stem = _base_stem(path)
    if (path.parent / f"{stem}.xml").is_file():
        return path.parent / f"{stem}.xml"
    try:
        for other in sorted(path.parent.iterdir()):  # Mulan's capitalisation is not always consistent
            if other.suffix.lower() == ".xml" and other.stem.lower() == stem.lower():
                return other
    except OSError:
        pass
    return None


def read_label_xml(path: PathLike) -> list[str]:
    """Label names from a Mulan XML header, in document order (nested labels included)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise MlcilError(f"{path}: no such file") from None
    except ET.ParseError as exc:
        raise MlcilError(f"{path}:{exc.position[0]}: not valid XML ({exc})") from None
    names: list[str] = []
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "label" and "name" in el.attrib and el.attrib["name"] not in names:
            names.append(el.attrib["name"])
    if not names:
        raise MlcilError(f"{path}: no <label name=...> elements found")
    return names


def _match_names(f: _ArffFile, names: Sequence[str], origin: str) -> list[int]:
    """Attribute indices of the given label names (exact match, else ignoring backslash escapes)."""
    exact = {a.name: j for j, a in enumerate(f.attributes)}
    loose = {a.name.replace("\\", ""): j for j, a in enumerate(f.attributes)}
    cols = []
    for name in names:
        j = exact.get(name, loose.get(name.replace("\\", "")))
        if j is None:
            raise MlcilError(f"{origin}: label '{name}' is not an attribute of {f.path}")
        cols.append(j)
    return cols


def _label_columns(f: _ArffFile, labels: LabelSpec) -> tuple[list[int], list[str], str]:
    """Resolve the label spec to (attribute indices, label names, how they were found)."""
    A = len(f.attributes)
    if labels is None:
        xml = _find_xml(f.path)
        if xml is not None:
            labels = xml
        else:
            m = _MEKA_C.search(f.relation)
            if m is None:
                raise MlcilError(
                    f"{f.path}: cannot tell which attributes are labels: pass labels= (a Mulan .xml file, "
                    f"an int k for the first k attributes or -k for the last k, or a list of names), "
                    f"put {_base_stem(f.path)}.xml next to the file, or add '-C k' to @relation"
                )
            k = int(m.group(1))
            cols, source = _k_columns(f, k, f"-C {k} in @relation"), f"-C {k} in @relation"
            return cols, [f.attributes[j].name for j in cols], source
    if isinstance(labels, bool):
        raise MlcilError(f"{f.path}: labels must be an XML path, an int or a list of names, got {labels!r}")
    if isinstance(labels, (int, np.integer)):
        k = int(labels)
        cols = _k_columns(f, k, f"labels={k}")
        return cols, [f.attributes[j].name for j in cols], f"labels={k}"
    if isinstance(labels, (str, os.PathLike)):
        xml = Path(labels)
        names = read_label_xml(xml)
        return _match_names(f, names, str(xml)), names, str(xml)
    names = [str(s) for s in labels]
    if not names:
        raise MlcilError(f"{f.path}: the list of label names is empty")
    if A <= len(names):
        raise MlcilError(f"{f.path}: {len(names)} labels leave no feature attribute")
    return _match_names(f, names, f"{f.path}: labels="), names, "labels=[...]"


def _k_columns(f: _ArffFile, k: int, origin: str) -> list[int]:
    A = len(f.attributes)
    if k == 0 or abs(k) >= A:
        raise MlcilError(f"{f.path}: {origin}: need 0 < |k| < {A} (the number of attributes)")
    return list(range(k)) if k > 0 else list(range(A + k, A))


def _check_label_types(f: _ArffFile, cols: list[int]) -> None:
    for j in cols:
        a = f.attributes[j]
        if a.kind == "nominal" and not set(a.codes.values()) <= {0.0, 1.0}:
            raise MlcilError(
                f"{f.path}:{a.line}: label attribute '{a.name}' must be binary (nominal {{0,1}} or numeric 0/1), "
                f"got {{{','.join(a.values)}}}"
            )


def _split_of(path: Path) -> str:
    low = path.name.lower()
    if ("train" in low) == ("test" in low):
        raise MlcilError(
            f"{path}: cannot tell whether it is the train or the test part "
            "(its name should contain exactly one of 'train' and 'test')"
        )
    return "train" if "train" in low else "test"


def read_arff(
    path: PathLike | Sequence[PathLike],
    labels: LabelSpec = None,
    name: str | None = None,
    *,
    drop: Sequence[str] = (),
    sparse: bool | None = None,
) -> Dataset:
    """Read a multi-label ARFF file, or a train + test pair, into a Dataset.

    Args:
        path: one ARFF file (``.arff``, ``.arff.gz``, ``.arff.bz2``), or a list of files that are
            concatenated in order, with ``split`` set to 'train' / 'test' from their names.
        labels: which attributes are labels (see the module docstring).
        name: dataset name; default the file stem (``-train`` / ``-test`` stripped for a list).
        drop: names of feature attributes to leave out (e.g. an ID column).
        sparse: True: X as CSR; False: dense; None: CSR when every data row is a sparse ``{...}`` row.

    Returns:
        Dataset with X float32 (n x d, dense or CSR), Y uint8 (n x L), label names, split (lists
        only), ``meta`` = {path, relation, feature_names, labels_from}.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, (str, os.PathLike)) else path)]
    if not paths:
        raise MlcilError("read_arff: no file given")
    files = [_parse_file(p) for p in paths]
    first = files[0]
    label_cols, label_names, labels_from = _label_columns(first, labels)
    _check_label_types(first, label_cols)
    names = [a.name for a in first.attributes]
    for f in files[1:]:
        other = [a.name for a in f.attributes]
        if other != names:
            i = next((i for i, (a, b) in enumerate(zip(names, other)) if a != b), min(len(names), len(other)))
            raise MlcilError(
                f"{f.path}: attributes differ from {first.path} ({len(other)} vs {len(names)} attributes; "
                f"first difference at attribute {i + 1})"
            )
    missing = [d for d in drop if d not in names]
    if missing:
        raise MlcilError(f"{first.path}: cannot drop unknown attribute(s) {', '.join(missing)}")
    dropped = {names.index(d) for d in drop}
    if dropped & set(label_cols):
        raise MlcilError(f"{first.path}: cannot drop label attribute(s)")
    feature_cols = [j for j in range(len(names)) if j not in dropped and j not in set(label_cols)]
    for f in files[1:]:
        _check_label_types(f, label_cols)
        for j in feature_cols:  # index-coded nominal values must mean the same in every file
            a, b = first.attributes[j], f.attributes[j]
            if a.kind != b.kind or (a.kind == "nominal" and not a.numeric_codes and a.codes != b.codes):
                raise MlcilError(f"{f.path}:{b.line}: attribute '{b.name}' is declared differently in {first.path}")
    for f in files:
        _check_values(f, label_cols)

    all_sparse = all(sp.issparse(f.matrix) for f in files)
    if all_sparse:
        M = sp.vstack([f.matrix for f in files], format="csr") if len(files) > 1 else files[0].matrix
    else:
        M = np.vstack([f.matrix.toarray() if sp.issparse(f.matrix) else f.matrix for f in files])
    Y = (M[:, label_cols].toarray() if sp.issparse(M) else M[:, label_cols]).astype(np.uint8)
    X = M[:, feature_cols]
    if sp.issparse(X):
        X = X.tocsr()
        X.eliminate_zeros()
        if sparse is False:
            X = X.toarray()
    else:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if sparse:
            X = sp.csr_matrix(X)
    split = None
    if not isinstance(path, (str, os.PathLike)):  # a list of files: train / test parts
        split = np.concatenate([np.full(f.matrix.shape[0], _split_of(f.path)) for f in files])
    meta = {
        "path": str(paths[0]) if len(paths) == 1 else [str(p) for p in paths],
        "relation": first.relation,
        "feature_names": [names[j] for j in feature_cols],
        "labels_from": labels_from,
    }
    default_name = _base_stem(paths[0]) if split is not None else _strip_ext(paths[0])
    try:
        return Dataset(X, Y, label_names, split, name or default_name, meta)
    except MlcilError as exc:
        raise MlcilError(f"{paths[0]}: {exc}") from None
