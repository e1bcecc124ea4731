"""The database as a log: reading the state at the latest version, snapshots, pruning.

Tables (see :mod:`mlcil.serve.repository`, which holds every SQL statement): ``examples`` and ``known`` hold the stored examples and the
labels known for them *now*; ``labels`` the registry; ``events`` one row per write since
``model.base_version``; ``snapshots`` at most one checkpoint of the statistics, at the base.

The state at the latest version is built, inside one consistent read (or write) transaction, by
the cheapest of:

- **catch-up** from a state a process already holds (version ≥ base): replay the events after
  it. Label events change the registry; teach events add the rows they stored (seq ≥ the first
  new seq, with the labels known now) and apply their relabels (changes of known labels of older
  rows: B += φ(y_new − y_old)ᵀ, G unchanged);
- **snapshot** at the base, then catch-up;
- **rebuild** from the rows (no usable snapshot): G, B summed over every stored example.

A forget prunes the log up to its own version (and deletes any snapshot), so nothing forgotten
survives in the database and no replay ever needs a deleted row. Pure functions over a
transaction's named reads (no SQL here); no threads, no HTTP.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from typing import Any, Iterator

import numpy as np

from mlcil import ridge
from mlcil.serve.state import (Label, ModelState, relabel_delta, row_statistics, stats_from_bytes, stats_to_bytes,
                               targets)
from mlcil.serve.repository import Tx

#: rows read per query when streaming stored examples
CHUNK = 4096


def model_row(tx: Tx) -> dict[str, Any]:
    """The one-row ``model`` table as a dict."""
    return tx.model_row()


def config(tx: Tx) -> dict[str, Any]:
    """The ``config`` table (JSON values), without the table format."""
    return tx.config()


def labels(tx: Tx) -> tuple[Label, ...]:
    """The label registry now, in id order (= column order)."""
    return tuple(Label(lid, name, threshold, (c["a"], c["b"]) if c else None)
                 for lid, name, threshold, c in tx.label_rows())


def vectors(blobs: list[bytes], d: int) -> np.ndarray:
    """n×d float32 embeddings from their stored bytes."""
    if not blobs:
        return np.zeros((0, d), dtype=np.float32)
    return np.stack([np.frombuffer(b, dtype=np.float32) for b in blobs])


def rows_from(tx: Tx, d: int, first_seq: int = 0) -> Iterator[tuple[list[int], np.ndarray, list[dict[int, int]]]]:
    """Stored examples with seq ≥ ``first_seq`` in seq order, ``CHUNK`` at a time: (seqs, X n×d, known)."""
    for seqs, blobs, known in tx.examples_from(first_seq, CHUNK):
        yield seqs, vectors(blobs, d), known


def rows_by_seq(tx: Tx, seqs, d: int, with_ids: bool = False):
    """(seqs sorted, X, known, external ids or None) of the examples ``seqs`` (missing ones skipped)."""
    out_seqs, ids, blobs, known = tx.examples_by_seq(seqs)
    return out_seqs, vectors(blobs, d), known, (ids if with_ids else None)


def rebuild(tx: Tx, fmap: ridge.FeatureMap | None) -> ModelState:
    """The state at the transaction's version from the stored rows (no log, no snapshot)."""
    m = tx.model_row()
    labs = labels(tx)
    state = ModelState(int(m["version"]), None, labs, float(m["lam"]), bool(m["lam_fixed"]))
    if fmap is None:
        return state
    ids = state.label_ids
    parts = [ridge.Stats.zeros(fmap.D, len(ids))]
    for _, X, known in rows_from(tx, fmap.d):
        parts.append(row_statistics(fmap, X, targets(known, ids)))
    return state.with_stats(state.version, ridge.tree_sum(parts))


def load_snapshot(row: tuple) -> ModelState:
    """A :class:`ModelState` from a checkpoint (version, D, G bytes, B bytes, meta JSON, n_examples)."""
    version, D, G, B, meta, n_examples = row
    meta = json.loads(meta)
    labs = tuple(Label(i, name, th, tuple(p) if p else None) for i, name, th, p in meta["labels"])
    return ModelState(int(version), stats_from_bytes(G, B, D, len(labs), int(n_examples)), labs, float(meta["lam"]),
                      bool(meta["lam_fixed"]))


def write_snapshot(tx: Tx, state: ModelState, next_seq: int) -> None:
    """Checkpoint ``state`` (at the transaction's current version) and make it the base: every other
    snapshot and every event at or before it are deleted."""
    meta = json.dumps({"labels": [[lab.id, lab.name, lab.threshold, list(lab.platt) if lab.platt else None]
                                  for lab in state.labels], "lam": state.lam, "lam_fixed": state.lam_fixed})
    G, B = stats_to_bytes(state.stats)
    tx.replace_snapshot(state.version, state.stats.D, G, B, meta, state.n_examples)
    tx.prune(state.version, next_seq)


def prune(tx: Tx, version: int, next_seq: int) -> None:
    """Make ``version`` the base: delete the events at or before it (and snapshots older than it)."""
    tx.prune(version, next_seq)


def advance(tx: Tx, state: ModelState | None, fmap: ridge.FeatureMap | None) -> ModelState:
    """The state at the transaction's version, from ``state`` (None: nothing held yet). Pure."""
    m = tx.model_row()
    if state is not None and state.version == m["version"]:
        return state
    if state is None or state.version < m["base_version"] or state.version > m["version"]:
        snap = tx.snapshot()
        if snap is None or (fmap is not None and snap[1] != fmap.D):
            return rebuild(tx, fmap)
        state = load_snapshot(snap)
    first_new: int | None = None
    relabels: list[tuple[int, int, Any, Any]] = []
    for version, kind, info in tx.events_after(state.version):
        if kind == "create_label":
            state = state.with_label(version, Label(info["id"], info["name"], info["threshold"]))
        elif kind == "update_label":
            state = state.with_threshold(version, info["id"], info["threshold"])
        elif kind == "set_lambda":
            state = state.with_lambda(version, info["lam"], info["fixed"])
        elif kind == "calibrate":
            state = state.with_calibration(version, info["lam"], {int(k): v for k, v in info["platt"].items()})
        elif kind == "teach":
            first, n = info["seq"]
            if n and first_new is None:
                first_new = int(first)
            relabels += [tuple(r) for r in info.get("relabel", [])]
            state = replace(state, version=version)
        else:  # forgets are bases: a log that has one after the state's version is inconsistent
            raise RuntimeError(f"log: event {version} ({kind}) found after the base; the database is inconsistent")
    if fmap is None:
        return state
    state = state.ensure_stats(fmap.D)
    ids = state.label_ids
    stats = state.stats
    if first_new is not None:
        parts = [stats]
        for _, X, known in rows_from(tx, fmap.d, first_new):
            parts.append(row_statistics(fmap, X, targets(known, ids)))
        stats = ridge.tree_sum(parts) if len(parts) > 1 else stats
    old = [r for r in relabels if first_new is None or r[0] < first_new]
    if old:
        col = {lid: j for j, lid in enumerate(ids)}
        delta: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(len(ids)))
        for seq, lid, before, after in old:
            if lid in col:
                delta[int(seq)][col[lid]] += float(after == 1) - float(before == 1)
        seqs, X, _, _ = rows_by_seq(tx, list(delta), fmap.d)
        if seqs:
            dB = relabel_delta(fmap, X, np.stack([delta[s] for s in seqs]))
            stats = ridge.Stats(stats.G, stats.B + dB, stats.n)
    return state.with_stats(int(m["version"]), stats)
