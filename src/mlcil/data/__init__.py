"""Datasets: the ``Dataset`` container, readers (npz, Mulan/MEKA ARFF, JSON lines) and a registry
of named benchmark datasets with lookup (path, ``MLCIL_DATA``, cache) and download."""

from mlcil.data.arff import read_arff
from mlcil.data.dataset import Dataset, check_features, check_labels
from mlcil.data.jsonl import read_jsonl
from mlcil.data.npz import read_npz, write_npz
from mlcil.data.registry import DATASETS, DatasetInfo, list_datasets, load_dataset, resolve

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "check_features",
    "check_labels",
    "list_datasets",
    "load_dataset",
    "read_arff",
    "read_jsonl",
    "read_npz",
    "resolve",
    "write_npz",
]
