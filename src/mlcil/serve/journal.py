"""The database as a log: reading the state at the latest version, snapshots, pruning.

Tables (see :mod:`mlcil.serve.store`): ``examples`` and ``known`` hold the stored examples and the
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
transaction; no threads, no HTTP.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from typing import Any, Iterator

import numpy as np
import torch

from mlcil import ridge
from mlcil.serve.state import Label, ModelState, ServiceFeatureMap, relabel_delta, row_statistics, targets
from mlcil.serve.store import Tx

#: rows read per query when streaming stored examples
CHUNK = 4096


def model_row(tx: Tx) -> dict[str, Any]:
    """The one-row ``model`` table as a dict."""
    keys = ("version", "base_version", "base_seq", "next_label_id", "next_seq", "lam", "lam_fixed", "lam_n",
            "calibrated_version")
    row = tx.one(f"SELECT {', '.join(keys)} FROM model WHERE id = 1")
    return dict(zip(keys, row))


def config(tx: Tx) -> dict[str, Any]:
    """The ``config`` table (JSON values), without the table format."""
    return {k: json.loads(v) for k, v in tx.all("SELECT key, value FROM config") if k != "format"}


def labels(tx: Tx) -> tuple[Label, ...]:
    """The label registry now, in id order (= column order)."""
    out = []
    for lid, name, threshold, calib in tx.all("SELECT id, name, threshold, calib FROM labels ORDER BY id"):
        c = json.loads(calib) if calib else None
        out.append(Label(int(lid), name, threshold, (c["a"], c["b"]) if c else None))
    return tuple(out)


def _known(tx: Tx, where: str, params) -> dict[int, dict[int, int]]:
    known: dict[int, dict[int, int]] = defaultdict(dict)
    for seq, lid, value in tx.all(f"SELECT seq, label_id, value FROM known WHERE {where}", params):
        known[int(seq)][int(lid)] = int(value)
    return known


def _vectors(rows: list[tuple], d: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, d), dtype=np.float32)
    return np.stack([np.frombuffer(bytes(r[-1]), dtype=np.float32) for r in rows])


def rows_from(tx: Tx, d: int, first_seq: int = 0) -> Iterator[tuple[list[int], np.ndarray, list[dict[int, int]]]]:
    """Stored examples with seq ≥ ``first_seq`` in seq order, ``CHUNK`` at a time: (seqs, X n×d, known)."""
    last = first_seq - 1
    while True:
        rows = tx.all("SELECT seq, vector FROM examples WHERE seq > ? ORDER BY seq LIMIT ?", (last, CHUNK))
        if not rows:
            return
        seqs = [int(r[0]) for r in rows]
        known = _known(tx, "seq >= ? AND seq <= ?", (seqs[0], seqs[-1]))
        yield seqs, _vectors(rows, d), [known.get(s, {}) for s in seqs]
        last = seqs[-1]


def rows_by_seq(tx: Tx, seqs, d: int, with_ids: bool = False):
    """(seqs sorted, X, known, external ids or None) of the examples ``seqs`` (missing ones skipped)."""
    seqs = sorted(set(int(s) for s in seqs))
    out_seqs, X, known, ids = [], [], [], []
    for start in range(0, len(seqs), 500):
        part = seqs[start:start + 500]
        marks = ",".join("?" * len(part))
        rows = tx.all(f"SELECT seq, ext_id, vector FROM examples WHERE seq IN ({marks}) ORDER BY seq", part)
        k = _known(tx, f"seq IN ({marks})", part)
        out_seqs += [int(r[0]) for r in rows]
        ids += [r[1] for r in rows]
        X.append(_vectors(rows, d))
        known += [k.get(int(r[0]), {}) for r in rows]
    X = np.vstack(X) if X else np.zeros((0, d), dtype=np.float32)
    return out_seqs, X, known, (ids if with_ids else None)


def rebuild(tx: Tx, fmap: ServiceFeatureMap | None) -> ModelState:
    """The state at the transaction's version from the stored rows (no log, no snapshot)."""
    m = model_row(tx)
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
    version, D, G, B, meta, n_examples = row
    meta = json.loads(meta)
    labs = tuple(Label(i, name, th, tuple(p) if p else None) for i, name, th, p in meta["labels"])
    Gt = torch.frombuffer(bytearray(bytes(G)), dtype=torch.float64).reshape(D, D)
    Bt = torch.frombuffer(bytearray(bytes(B)), dtype=torch.float64).reshape(D, len(labs))
    return ModelState(int(version), ridge.Stats(Gt, Bt, int(n_examples)), labs, float(meta["lam"]),
                      bool(meta["lam_fixed"]))


def write_snapshot(tx: Tx, state: ModelState, next_seq: int) -> None:
    """Checkpoint ``state`` (at the transaction's current version) and make it the base: every other
    snapshot and every event at or before it are deleted."""
    meta = json.dumps({"labels": [[lab.id, lab.name, lab.threshold, list(lab.platt) if lab.platt else None]
                                  for lab in state.labels], "lam": state.lam, "lam_fixed": state.lam_fixed})
    tx.run("DELETE FROM snapshots")
    tx.run("INSERT INTO snapshots (version, D, G, B, meta, n_examples) VALUES (?, ?, ?, ?, ?, ?)",
           (state.version, state.stats.D, state.stats.G.contiguous().numpy().tobytes(),
            state.stats.B.contiguous().numpy().tobytes(), meta, state.n_examples))
    prune(tx, state.version, next_seq)


def prune(tx: Tx, version: int, next_seq: int) -> None:
    """Make ``version`` the base: delete the events at or before it (and snapshots older than it)."""
    tx.run("DELETE FROM events WHERE version <= ?", (version,))
    tx.run("DELETE FROM snapshots WHERE version < ?", (version,))
    tx.run("UPDATE model SET base_version = ?, base_seq = ? WHERE id = 1", (version, next_seq))


def advance(tx: Tx, state: ModelState | None, fmap: ServiceFeatureMap | None) -> ModelState:
    """The state at the transaction's version, from ``state`` (None: nothing held yet). Pure."""
    m = model_row(tx)
    if state is not None and state.version == m["version"]:
        return state
    if state is None or state.version < m["base_version"] or state.version > m["version"]:
        snap = tx.one("SELECT version, D, G, B, meta, n_examples FROM snapshots ORDER BY version DESC LIMIT 1")
        if snap is None or (fmap is not None and int(snap[1]) != fmap.D):
            return rebuild(tx, fmap)
        state = load_snapshot(snap)
    first_new: int | None = None
    relabels: list[tuple[int, int, Any, Any]] = []
    for version, kind, detail in tx.all("SELECT version, kind, detail FROM events WHERE version > ? ORDER BY version",
                                        (state.version,)):
        info = json.loads(detail)
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
