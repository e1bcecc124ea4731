"""Raw image datasets: PASCAL VOC 2007, MS-COCO 2014, and a generic image folder with a label file.

Each reader returns a raw :class:`~mlcil.data.Dataset`: ``X`` = list of image file paths (str),
``Y`` = n x L uint8, ``label_names`` sorted alphabetically (so the dataset's column order is the
field's alphabetical class order), ``split`` = 'train' / 'test'. Image files are not opened here
(the encoder pipeline decodes them and reports unreadable ones); annotation problems raise
:class:`MlcilError` naming the file.
"""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from mlcil.data.dataset import Dataset
from mlcil.errors import MlcilError

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
"""The 20 PASCAL VOC classes (already in alphabetical order)."""

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
"""The 80 MS-COCO 2014 category names in category-id order (``read_coco2014`` sorts them alphabetically)."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _voc_folder(root: Path) -> Path:
    """The VOC2007 folder (holding Annotations/) under root, root/VOC2007 or root/VOCdevkit/VOC2007."""
    for candidate in (root, root / "VOC2007", root / "VOCdevkit" / "VOC2007"):
        if (candidate / "Annotations").is_dir():
            return candidate
    raise MlcilError(f"{root}: no VOC 2007 folder found (expected Annotations/ in it, in VOC2007/ or "
                     f"VOCdevkit/VOC2007/)")


def _voc_ids(folder: Path, split: str) -> list[str]:
    path = folder / "ImageSets" / "Main" / f"{split}.txt"
    try:
        lines = path.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        raise MlcilError(f"{path}: missing split file (the official VOC 2007 {split} list)") from None
    except OSError as exc:
        raise MlcilError(f"{path}: cannot read ({exc})") from None
    return lines


def read_voc_annotation(path: str | os.PathLike) -> tuple[set[str], set[str]]:
    """(classes with a non-difficult object, classes seen only as difficult) of one VOC XML file."""
    path = Path(path)
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise MlcilError(f"{path}: missing annotation file") from None
    except (ET.ParseError, OSError) as exc:
        raise MlcilError(f"{path}: malformed annotation XML ({exc})") from None
    positive, difficult = set(), set()
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise MlcilError(f"{path}: unknown VOC class {name!r} (expected one of the 20 VOC classes)")
        flag = (obj.findtext("difficult") or "0").strip()
        if flag not in ("0", "1"):
            raise MlcilError(f"{path}: <difficult> must be 0 or 1, got {flag!r}")
        (difficult if flag == "1" else positive).add(name)
    return positive, difficult - positive


def read_voc2007(root: str | os.PathLike, name: str = "voc2007") -> Dataset:
    """PASCAL VOC 2007 classification: official trainval (as 'train') / test split, 20 classes.

    A class is positive for an image when the image has a non-"difficult" object of it;
    difficult objects are dropped (as in the field's code), so an image with only difficult
    objects of a class is a negative for it. ``meta['n_difficult_only']`` counts such (image, class)
    pairs. Images are ``JPEGImages/<id>.jpg``.
    """
    folder = _voc_folder(Path(root).expanduser())
    column = {c: j for j, c in enumerate(VOC_CLASSES)}
    paths, splits, rows, ids = [], [], [], []
    difficult_only = 0
    for split, official in (("train", "trainval"), ("test", "test")):
        for image_id in _voc_ids(folder, official):
            positive, hard = read_voc_annotation(folder / "Annotations" / f"{image_id}.xml")
            difficult_only += len(hard)
            paths.append(str(folder / "JPEGImages" / f"{image_id}.jpg"))
            splits.append(split)
            rows.append([column[c] for c in positive])
            ids.append(image_id)
    Y = np.zeros((len(rows), len(VOC_CLASSES)), dtype=np.uint8)
    for i, cols in enumerate(rows):
        Y[i, cols] = 1
    return Dataset(paths, Y, list(VOC_CLASSES), np.asarray(splits), name,
                   {"path": str(folder), "ids": ids, "n_difficult_only": difficult_only})


def _coco_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except FileNotFoundError:
        raise MlcilError(f"{path}: missing annotation file") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MlcilError(f"{path}: malformed annotation JSON ({exc})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(obj, dict) or not isinstance(obj.get(key), list):
            raise MlcilError(f"{path}: expected a COCO instances file with a list '{key}'")
    return obj


def read_coco2014(root: str | os.PathLike, name: str = "coco2014", keep_unlabeled: bool = False) -> Dataset:
    """MS-COCO 2014 multi-label: train2014 as 'train', val2014 as 'test', 80 classes by category name.

    Reads ``annotations/instances_{train,val}2014.json``; images are ``{train,val}2014/<file_name>``.
    Images without any annotation are left out unless ``keep_unlabeled`` (the field's 82,081 / 40,137).
    ``label_names`` are the category names sorted alphabetically.
    """
    root = Path(root).expanduser()
    parts = []
    categories: dict[int, str] | None = None
    for split, official in (("train", "train2014"), ("test", "val2014")):
        path = root / "annotations" / f"instances_{official}.json"
        obj = _coco_json(path)
        try:
            cats = {int(c["id"]): str(c["name"]) for c in obj["categories"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise MlcilError(f"{path}: malformed category entry ({exc})") from None
        if categories is None:
            categories = cats
        elif cats != categories:
            raise MlcilError(f"{path}: categories differ from instances_train2014.json")
        parts.append((split, official, path, obj))
    assert categories is not None
    names = sorted(set(categories.values()))
    if len(names) != len(categories):
        raise MlcilError(f"{root}: duplicate category names in the COCO annotations")
    column = {cid: names.index(n) for cid, n in categories.items()}
    paths, splits, ids, blocks = [], [], [], []
    for split, official, path, obj in parts:
        try:
            images = [(int(im["id"]), str(im["file_name"])) for im in obj["images"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise MlcilError(f"{path}: malformed image entry ({exc})") from None
        row = {image_id: i for i, (image_id, _) in enumerate(images)}
        Y = np.zeros((len(images), len(names)), dtype=np.uint8)
        for k, ann in enumerate(obj["annotations"]):
            try:
                i, j = row[int(ann["image_id"])], column[int(ann["category_id"])]
            except (KeyError, TypeError, ValueError):
                raise MlcilError(f"{path}: annotation #{k} refers to an unknown image or category "
                                 f"({ {key: ann.get(key) for key in ('image_id', 'category_id')} if isinstance(ann, dict) else ann})") from None
            Y[i, j] = 1
        keep = np.arange(len(images)) if keep_unlabeled else np.flatnonzero(Y.any(axis=1))
        paths += [str(root / official / images[i][1]) for i in keep]
        ids += [images[i][0] for i in keep]
        splits += [split] * len(keep)
        blocks.append(Y[keep])
    return Dataset(paths, np.vstack(blocks), names, np.asarray(splits), name, {"path": str(root), "ids": ids})


def _split_labels(text: str) -> list[str]:
    for sep in (";", "|"):
        if sep in text:
            return [s.strip() for s in text.split(sep) if s.strip()]
    return [text.strip()] if text.strip() else []


def read_image_folder(labels_file: str | os.PathLike, images: str | os.PathLike | None = None,
                      name: str | None = None) -> Dataset:
    """Images in a folder + a label file: CSV (columns ``image``, ``labels`` separated by ';' or '|',
    optional ``split``) or JSON lines (``{"image", "labels": [...], "split"}``).

    ``image`` paths are relative to ``images`` (default: the label file's folder). Label names are
    the sorted union of labels seen. ``split`` must be on every row or none.
    """
    labels_file = Path(labels_file).expanduser()
    base = Path(images).expanduser() if images is not None else labels_file.parent
    records: list[tuple[int, Any, Any, Any]] = []
    if labels_file.name.lower().endswith((".jsonl", ".jsonl.gz", ".json")):
        from mlcil.data.jsonl import iter_jsonl

        for lineno, obj in iter_jsonl(labels_file):
            records.append((lineno, obj.get("image"), obj.get("labels"), obj.get("split")))
    elif labels_file.suffix.lower() in (".csv", ".tsv"):
        try:
            with open(labels_file, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if labels_file.suffix.lower() == ".tsv" else ",")
                if not reader.fieldnames or not {"image", "labels"} <= set(reader.fieldnames):
                    raise MlcilError(f"{labels_file}: expected a header with columns 'image' and 'labels' "
                                     f"(and optionally 'split'), got {reader.fieldnames}")
                for lineno, rec in enumerate(reader, start=2):
                    records.append((lineno, rec.get("image"), _split_labels(rec.get("labels") or ""),
                                    rec.get("split") or None))
        except FileNotFoundError:
            raise MlcilError(f"{labels_file}: no such label file") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise MlcilError(f"{labels_file}: cannot read ({exc})") from None
    else:
        raise MlcilError(f"{labels_file}: label file must be .csv, .tsv or .jsonl")
    paths, rows, splits = [], [], []
    for lineno, image, labels, split in records:
        where = f"{labels_file}:{lineno}"
        if not isinstance(image, str) or not image:
            raise MlcilError(f"{where}: field 'image' must be a non-empty path")
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise MlcilError(f"{where}: field 'labels' must be a list of label names")
        if splits and (split is None) != (splits[0] is None):
            raise MlcilError(f"{where}: field 'split' must be given on every row or on none")
        paths.append(str(base / image))
        rows.append(labels)
        splits.append(split)
    names = sorted({s for labels in rows for s in labels})
    column = {s: j for j, s in enumerate(names)}
    Y = np.zeros((len(rows), len(names)), dtype=np.uint8)
    for i, labels in enumerate(rows):
        Y[i, [column[s] for s in labels]] = 1
    split_array = None if not splits or splits[0] is None else np.asarray(splits, dtype=str)
    return Dataset(paths, Y, names, split_array, name or labels_file.parent.name,
                   {"path": str(labels_file), "ids": [Path(p).name for p in paths]})
