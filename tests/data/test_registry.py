"""Registry: every shared dataset registered with SOURCE.md's counts; lookup order; loading by name."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil.data import DATASETS, list_datasets, load_dataset, resolve
from mlcil.errors import MlcilError


def source_counts(text: str):
    """(n, d, L, cardinality) from a SOURCE.md 'rows: ... | features: ... | labels: ... | label cardinality' line."""
    m = re.search(r"rows: ([\d,]+)\s*\|\s*features: (\d+)\s*\|\s*labels: (\d+)\s*\|\s*label cardinality: ([\d.]+)",
                  text)
    return None if m is None else (int(m[1].replace(",", "")), int(m[2]), int(m[3]), float(m[4]))


def index_rows(shared_data):
    """name -> (d, L, cardinality) as INDEX.md's table gives them."""
    rows = {}
    for line in (shared_data / "INDEX.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[3].isdigit():
            rows[cells[0]] = (int(cells[3]), int(cells[4]), float(cells[5]))
    return rows


def test_every_shared_dataset_is_registered(shared_data):
    folders = sorted(p.name for p in shared_data.iterdir() if p.is_dir())
    assert len(folders) >= 32
    assert set(folders) <= set(DATASETS), set(folders) - set(DATASETS)


def test_registry_matches_source_md(shared_data):
    for name, info in DATASETS.items():
        text = (shared_data / name / "SOURCE.md").read_text()
        counts = source_counts(text)
        if counts is not None:
            assert (info.n, info.d, info.L) == counts[:3], name
            assert info.cardinality == pytest.approx(counts[3], abs=1e-3), name
        for url in info.urls:  # commit and path of every URL come from SOURCE.md
            commit, path = re.search(r"/([0-9a-f]{40})/(.+)$", url).groups()
            assert commit in text and commit in info.source, (name, url)
            assert path.rsplit("/", 1)[-1] in text or "reut2-" in path, (name, url)
        assert info.sha256 is None  # none is published; none is invented
        assert info.citation and info.domain and info.description


def test_load_scene_by_name(shared_data, monkeypatch):
    monkeypatch.setenv("MLCIL_DATA", str(shared_data))
    ds = load_dataset("scene")
    assert (ds.n, ds.d, ds.L) == (2407, 294, 6)
    assert ds.name == "scene" and isinstance(ds.X, np.ndarray)
    assert (ds.split == "train").sum() == 1211 and (ds.split == "test").sum() == 1196
    assert ds.meta["where"] == "MLCIL_DATA" and ds.meta["path"].endswith("scene/scene.npz")
    assert "Boutell" in ds.meta["citation"]


def test_load_csr_and_raw(shared_data):
    rcv = load_dataset("rcv1sub1", data_dir=shared_data)
    assert sp.issparse(rcv.X) and rcv.X.format == "csr" and rcv.X.shape == (6000, 47236) and rcv.L == 101
    go = load_dataset("goemotions", data_dir=shared_data)
    assert go.is_raw and go.L == 28 and go.n == 54263 and isinstance(go.X[0], str)
    assert go.label_names[0] == "admiration" and go.label_names[-1] == "neutral"
    assert dict(zip(*np.unique(go.split, return_counts=True))) == {"train": 43410, "dev": 5426, "test": 5427}


def test_list_datasets_matches_index(shared_data):
    rows = {r["name"]: r for r in list_datasets(data_dir=shared_data)}
    assert set(rows) == set(DATASETS)
    index = index_rows(shared_data)
    for name in ("scene", "cal500", "delicious", "imdb", "rcv1sub4", "stackex_coffee"):
        d, L, card = index[name]
        assert (rows[name]["d"], rows[name]["L"]) == (d, L), name
        assert rows[name]["cardinality"] == pytest.approx(card, abs=1e-3), name
        assert rows[name]["where"].startswith(str(shared_data / name))
    assert rows["scene"]["n"] == 2407 and rows["scene"]["split"] == "test=1196 train=1211"
    assert rows["goemotions"]["d"] == "raw" and rows["goemotions"]["L"] == 28
    assert rows["reuters21578"]["n"] == 21578


def test_list_datasets_without_local_copies():
    rows = {r["name"]: r for r in list_datasets()}
    assert rows["scene"]["where"] == "not found locally (downloadable)"
    assert rows["rcv1sub1"]["where"] == "not found"  # .rda source: not downloadable
    assert rows["scene"]["n"] == 2407  # registry counts when no copy is found


def test_unknown_name_suggests_close_match():
    with pytest.raises(MlcilError, match=r"unknown dataset 'scen'.*did you mean 'scene'.*mlcil datasets"):
        resolve("scen")
    with pytest.raises(MlcilError, match=r"no/such/file\.npz: no such file"):
        load_dataset("no/such/file.npz")


def test_explicit_paths(shared_data, tmp_path):
    ds = load_dataset(shared_data / "emotions" / "emotions.npz")
    assert ds.name == "emotions" and ds.meta["where"] == "explicit" and "Trohidis" in ds.meta["citation"]
    copy = tmp_path / "mine.npz"
    shutil.copy(shared_data / "yeast" / "yeast.npz", copy)
    mine = load_dataset(str(copy))
    assert mine.name == "mine" and mine.meta["citation"] is None and mine.L == 14
    folder = load_dataset(shared_data / "goemotions")
    assert folder.name == "goemotions" and folder.meta["where"] == "explicit"


def test_cache_lookup_and_order(shared_data, tmp_path, monkeypatch):
    cached = tmp_path / "cache" / "data" / "medical"
    cached.mkdir(parents=True)
    shutil.copy(shared_data / "medical" / "medical.npz", cached)
    path, info, where = resolve("medical")
    assert (path, info.name, where) == (cached, "medical", "cache")
    monkeypatch.setenv("MLCIL_DATA", str(shared_data))  # MLCIL_DATA comes before the cache
    assert resolve("medical")[2] == "MLCIL_DATA"
    assert load_dataset("Medical").name == "medical"  # names are case-insensitive


def test_mulan_arff_folder_in_data_dir(shared_data, tmp_path, mulan_files):
    """A folder holding Mulan's original files (train/test ARFF + XML) loads like the .npz copy."""
    ref = load_dataset("emotions", data_dir=shared_data)
    mulan_files(tmp_path / "emotions", "emotions", ref.X, ref.Y, ref.meta["feature_names"], ref.label_names,
                ref.split)
    ds = load_dataset("emotions", data_dir=tmp_path)
    assert ds.meta["where"] == "MLCIL_DATA" and isinstance(ds.meta["path"], list)
    assert (ds.n, ds.d, ds.L) == (593, 72, 6) and ds.label_names == ref.label_names
    assert (ds.split == "train").sum() == 391
    row = next(r for r in list_datasets(data_dir=tmp_path) if r["name"] == "emotions")
    assert row["n"] == 593 and row["split"] == "test=202 train=391"


def test_unconvertible_source_explains_where_to_get_it():
    with pytest.raises(MlcilError) as err:
        load_dataset("rcv1sub1")
    msg = str(err.value)
    assert "rcv1sub1.rda" in msg and "MLCIL_DATA" in msg and "cannot be downloaded automatically" in msg
