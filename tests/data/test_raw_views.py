"""Benchmark views of the raw-text sets without an official split (se_cooking, se_crypto, hoc)."""

import numpy as np

from mlcil.data import Dataset
from mlcil.data.raw import SEEDED_SPLIT, load_raw, text_view
from mlcil.data.split import stratified_split


def test_hoc_view_drops_unlabelled_rows_and_splits_like_the_protocol(shared_data):
    from mlcil.data import load_dataset

    full = load_dataset("hoc", data_dir=shared_data)
    view = load_raw("hoc", data_dir=shared_data)
    labelled = np.flatnonzero(full.Y.any(axis=1))
    assert full.n == 1852 and view.n == len(labelled) == 1580 and view.meta["dropped_unlabelled"] == 272
    assert view.X == [full.X[i] for i in labelled] and np.array_equal(view.Y, full.Y[labelled])
    test = stratified_split(full.Y[labelled], SEEDED_SPLIT["test_size"], SEEDED_SPLIT["seed"])
    assert np.array_equal(view.split == "test", test)  # the split bench makes at seed 0
    assert abs((view.split == "test").mean() - 0.3) < 0.01 and view.meta["modality"] == "text"


def test_stack_exchange_views_keep_every_row_and_label(shared_data):
    view = load_raw("se_crypto", data_dir=shared_data)
    assert view.n == 10432 and view.L == 392 and set(view.split) == {"train", "test"}
    again = load_raw("se_crypto", data_dir=shared_data)
    assert np.array_equal(view.split, again.split)  # seeded: the same every time
    # every label with >= 2 documents has a positive in the training part
    counts = view.Y.sum(axis=0)
    assert (view.Y[view.split == "train"].sum(axis=0)[counts >= 2] > 0).all()


def test_text_view_leaves_other_datasets_and_official_splits_alone():
    ds = Dataset(["a", "b"], np.array([[1], [0]]), ["x"], None, "mine")
    assert text_view(ds) is ds
    named = Dataset(["a", "b"], np.array([[1], [1]]), ["x"], ["train", "test"], "hoc")
    assert text_view(named) is named  # a copy that brings its own split keeps it

