"""Datasets: the ``Dataset`` container, readers (npz, Mulan/MEKA ARFF, JSON lines, VOC 2007, COCO 2014,
image folders), a registry of named benchmark datasets with lookup (path, ``MLCIL_DATA``, cache) and
download, :func:`load_raw` for the raw datasets ``mlcil embed`` encodes, and :func:`stratified_split`
for datasets without an official train/test split."""

from mlcil.data.arff import read_arff
from mlcil.data.dataset import Dataset, check_features, check_labels
from mlcil.data.images import read_coco2014, read_image_folder, read_voc2007
from mlcil.data.jsonl import read_jsonl
from mlcil.data.npz import read_npz, write_npz
from mlcil.data.raw import load_raw
from mlcil.data.registry import DATASETS, DatasetInfo, list_datasets, load_dataset, resolve
from mlcil.data.split import stratified_split

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "check_features",
    "check_labels",
    "list_datasets",
    "load_dataset",
    "load_raw",
    "read_arff",
    "read_coco2014",
    "read_image_folder",
    "read_jsonl",
    "read_npz",
    "read_voc2007",
    "resolve",
    "stratified_split",
    "write_npz",
]
