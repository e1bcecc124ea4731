"""Fixtures for the data-layer tests: an isolated cache, no network (``shared_data``: tests/conftest.py)."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Every test gets its own empty cache, no MLCIL_DATA and no network."""
    monkeypatch.setenv("MLCIL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLCIL_DATA", raising=False)

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)


def _quote(name: str) -> str:
    if any(c in name for c in " ,'\"{}%\t"):
        return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return name


def arff_text(relation: str, X, Y, feature_names, label_names, sparse: bool = False) -> str:
    """A Mulan-style ARFF (numeric features, then {0,1} labels) for a feature matrix and labels."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    head = [f"@relation {_quote(relation)}", ""]
    head += [f"@attribute {_quote(f)} numeric" for f in feature_names]
    head += [f"@attribute {_quote(s)} {{0,1}}" for s in label_names]
    head += ["", "@data"]
    M = np.hstack([X.astype(np.float64), np.asarray(Y, dtype=np.float64)])
    if sparse:
        rows = ["{" + ",".join(f"{j} {M[i, j]:.9g}" for j in np.flatnonzero(M[i])) + "}" for i in range(len(M))]
        return "\n".join(head + rows) + "\n"
    buf = io.StringIO()
    np.savetxt(buf, M, fmt="%.9g", delimiter=",")
    return "\n".join(head) + "\n" + buf.getvalue()


def label_xml(names) -> str:
    body = "\n".join(f'<label name="{s}"></label>' for s in names)
    head = '<?xml version="1.0" encoding="utf-8"?>\n<labels xmlns="http://mulan.sourceforge.net/labels">'
    return f"{head}\n{body}\n</labels>\n"


@pytest.fixture
def mulan_files():
    """Write a Mulan train/test pair + XML for a Dataset-like (X, Y, names, split) into a folder."""

    def write(folder: Path, name: str, X, Y, feature_names, label_names, split, sparse=False) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        split = np.asarray(split)
        for part in ("train", "test"):
            rows = np.flatnonzero(split == part)
            p = folder / f"{name}-{part}.arff"
            p.write_text(arff_text(f"{name}-{part}", X[rows], Y[rows], feature_names, label_names, sparse))
            paths.append(p)
        (folder / f"{name}.xml").write_text(label_xml(label_names))
        return paths

    return write


@pytest.fixture
def make_arff():
    """The ``arff_text`` helper: (relation, X, Y, feature_names, label_names, sparse) -> ARFF text."""
    return arff_text


@pytest.fixture
def make_xml():
    """The ``label_xml`` helper: label names -> Mulan XML header text."""
    return label_xml
