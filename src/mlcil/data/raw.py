"""Raw datasets for ``mlcil embed``: images (VOC 2007, COCO 2014, image folder) and texts.

:func:`load_raw` takes a name or a path:

- ``voc2007`` / ``coco2014``: read from ``root`` (see :mod:`mlcil.data.images`);
- ``reuters21578``: the ModApte R90 benchmark: rows with ``in_modapte_r90``, the 90 ``modapte_r90``
  labels of ``label_names.json``, ModApte train/test (7,770 / 3,019 rows);
- ``goemotions``: 28 labels, official train + dev as 'train' (48,836), test as 'test' (5,427);
- ``se_cooking``, ``se_crypto``, ``hoc`` (no official split): a seeded split made once in the view,
  iterative stratification with seed 0 and 30% test (:data:`SEEDED_SPLIT`), the split ``mlcil bench``
  makes for a dataset without one at seed 0; every encoder and every bench seed then sees the same
  rows, and fitted encoders (tfidf-svd) fit on the training part only. ``hoc``'s 272 abstracts without
  a hallmark are dropped: no session and no test set of a protocol contains a row without a class;
- a ``.csv`` / ``.tsv`` / ``.jsonl`` label file whose rows name an ``image``: an image folder;
- any other text JSON-lines dataset (path or registered name), as :func:`load_dataset` reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mlcil.data.dataset import Dataset
from mlcil.data.split import stratified_split
from mlcil.errors import MlcilError

IMAGE_DATASETS = ("voc2007", "coco2014")
TEXT_VIEWS = ("reuters21578", "goemotions", "se_cooking", "se_crypto", "hoc")
SEEDED_SPLIT = {"seed": 0, "test_size": 0.3}
"""The split of the text views without an official one (iterative stratification)."""


def reuters_r90(ds: Dataset) -> Dataset:
    """ModApte R90 view of the full reuters21578 JSON-lines dataset (see module docstring)."""

    path = Path(ds.meta.get("path", "")).parent / "label_names.json"
    if not path.is_file():
        raise MlcilError(f"{path}: missing (reuters21578 needs label_names.json with 'modapte_r90')")
    import json

    lists = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(lists, dict) or "modapte_r90" not in lists:
        raise MlcilError(f"{path}: expected a dict with the list 'modapte_r90'")
    r90 = sorted(str(s) for s in lists["modapte_r90"])
    flag = (ds.meta.get("extra") or {}).get("in_modapte_r90")
    if flag is None:
        raise MlcilError(f"{ds.meta.get('path')}: rows lack the field 'in_modapte_r90'")
    rows = np.flatnonzero(np.asarray([bool(f) for f in flag]) & np.isin(ds.split, ["train", "test"]))
    cols = [ds.label_names.index(c) for c in r90]
    ids = ds.meta.get("ids") or list(range(ds.n))
    meta = {k: v for k, v in ds.meta.items() if k != "extra"}
    meta.update(ids=[ids[i] for i in rows], view="ModApte R90")
    return Dataset([ds.X[i] for i in rows], ds.Y[np.ix_(rows, cols)], r90, ds.split[rows], ds.name, meta)


def goemotions_train_test(ds: Dataset) -> Dataset:
    """GoEmotions with the official dev split merged into train."""
    split = np.where(ds.split == "dev", "train", ds.split)
    meta = {k: v for k, v in ds.meta.items() if k != "extra"}
    meta.update(view="train+dev / test")
    return Dataset(ds.X, ds.Y, ds.label_names, split, ds.name, meta)


def seeded_split(ds: Dataset, drop_unlabelled: bool = False) -> Dataset:
    """``ds`` with the :data:`SEEDED_SPLIT` train/test split (optionally without rows that carry no label)."""
    rows = np.flatnonzero(ds.Y.any(axis=1)) if drop_unlabelled else np.arange(ds.n)
    Y = ds.Y[rows]
    test = stratified_split(Y, SEEDED_SPLIT["test_size"], SEEDED_SPLIT["seed"])
    ids = ds.meta.get("ids") or list(range(ds.n))
    meta = {k: v for k, v in ds.meta.items() if k != "extra"}
    meta.update(ids=[ids[i] for i in rows], dropped_unlabelled=int(ds.n - len(rows)),
                view=f"seeded split (iterative stratification, seed {SEEDED_SPLIT['seed']}, "
                     f"{SEEDED_SPLIT['test_size']:.0%} test)" + (", rows without a label dropped" if drop_unlabelled else ""))
    return Dataset([ds.X[i] for i in rows], Y, list(ds.label_names), np.where(test, "test", "train"), ds.name, meta)


def text_view(ds: Dataset) -> Dataset:
    """The benchmark view of a registered raw-text dataset (see the module docstring); others as they are."""
    if ds.name == "reuters21578":
        return reuters_r90(ds)
    if ds.name == "goemotions":
        return goemotions_train_test(ds)
    if ds.name in ("se_cooking", "se_crypto", "hoc") and (ds.split is None or not {"train", "test"} <= set(ds.split)):
        return seeded_split(ds, drop_unlabelled=ds.name == "hoc")
    return ds


def load_raw(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None) -> Dataset:
    """A raw dataset (X = image paths or texts) by name or path; see the module docstring.

    ``meta['modality']`` is 'image' or 'text' (which default encoder fits it).
    """
    from mlcil.data.images import read_coco2014, read_image_folder, read_voc2007
    from mlcil.data.registry import load_dataset

    text = os.fspath(name_or_path)
    key = text.lower()
    if key in IMAGE_DATASETS:
        if root is None:
            raise MlcilError(f"{text}: pass --root, the folder holding the {text.upper()} files")
        return _images(read_voc2007(root) if key == "voc2007" else read_coco2014(root))
    path = Path(text).expanduser()
    if path.is_file() and path.name.lower().endswith((".csv", ".tsv")):
        return _images(read_image_folder(path, images=root))
    if path.is_file() and path.name.lower().endswith((".jsonl", ".jsonl.gz")):
        from mlcil.data.jsonl import iter_jsonl

        first = next(iter_jsonl(path), (0, {}))[1]
        if "image" in first:
            return _images(read_image_folder(path, images=root))
    ds = load_dataset(root if root is not None and key in TEXT_VIEWS else text, data_dir=data_dir)
    if not ds.is_raw:
        raise MlcilError(f"{text}: holds feature vectors already (d={ds.d}); embed takes raw images or texts")
    ds = text_view(ds)
    ds.meta["modality"] = "text"
    return ds


def _images(ds: Dataset) -> Dataset:
    ds.meta["modality"] = "image"
    return ds
