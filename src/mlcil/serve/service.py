"""The tagging service's engine (no HTTP here): writes to the log, catches up, predicts.

Durability is a log in the database. Every write request is one transaction that appends
one event and bumps the model version: ``create_label``, ``set_threshold``, ``set_lambda``, ``teach`` (its examples and their
known labels, plus the label counts), ``forget_label``, ``forget_examples``. The statistics of
version v are the latest snapshot at v0 ≤ v plus the replay of events v0+1..v in order, with
the same batch grouping as when they were taught, so any process (and any restart) rebuilds
every version bit for bit. Every forget writes a snapshot at its own version, deletes the
forgotten rows and every older snapshot (they hold the forgotten contribution), so nothing
forgotten stays in the database and replay never needs a deleted row.

Readers catch up to the database's latest version before answering (one cheap query) and
publish only fully built versions; a reader holds one immutable :class:`ModelState`.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from mlcil import ridge
from mlcil.metrics import average_precision
from mlcil.serve import model as mdl
from mlcil.serve.store import Store, Tx

#: a snapshot every this many versions (bounds replay work at start-up), besides every forget
SNAPSHOT_EVERY = 500


class ServiceError(Exception):
    """A client error: HTTP ``status``, the ``field`` it concerns, a message."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Options:
    """Hyper-parameters fixed when the database is created (stored in its ``config`` table).

    d: embedding dimension (None = set by the first teach); M: random features; seed: of R;
    lam: ridge λ (inputs are L2-normalised, so 1.0 is a sensible scale); include_x: also x̂.
    """

    d: int | None = None
    M: int = 1024
    seed: int = 0
    lam: float = 1.0
    include_x: bool = True


class TaggingService:
    """Create labels, teach, forget, predict over a :class:`Store` (any number of processes)."""

    def __init__(self, store: Store, options: Options | None = None, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        self.options = self._load_options(options or Options())
        self._fmap: mdl.FeatureMap | None = None
        self._state = mdl.ModelState.empty(0)
        self._catchup = threading.Lock()
        self._last_snapshot = 0
        self.refresh()

    # ---- configuration -------------------------------------------------------------------
    def _load_options(self, requested: Options) -> Options:
        """The database's options; a new database takes ``requested``."""
        with self.store.write() as tx:
            rows = dict(tx.all("SELECT key, value FROM config"))
            if not rows:
                for key, value in asdict(requested).items():
                    tx.run("INSERT INTO config (key, value) VALUES (?, ?)", (key, json.dumps(value)))
                return requested
        return Options(**{k: json.loads(v) for k, v in rows.items()})

    def _feature_map(self, tx: Tx | None = None) -> mdl.FeatureMap | None:
        """φ once d is known (read from the config table the first time it is set)."""
        if self._fmap is None:
            d = self.options.d
            if d is None and tx is not None:
                row = tx.one("SELECT value FROM config WHERE key = 'd'")
                d = json.loads(row[0]) if row else None
                if d is not None:
                    self.options = Options(**{**asdict(self.options), "d": d})
            if d is not None:
                o = self.options
                self._fmap = mdl.FeatureMap(mdl.FeatureConfig(d=d, M=o.M, seed=o.seed, lam=o.lam,
                                                              include_x=o.include_x))
        return self._fmap

    @property
    def dim(self) -> int | None:
        """Embedding dimension d, or None before the first teach (when not set at creation)."""
        return self.options.d

    # ---- reading: catch up to the database ----------------------------------------------
    def refresh(self) -> mdl.ModelState:
        """Catch up to the database's latest version; returns the (immutable) current state."""
        state = self._state
        with self.store.read() as tx:
            target = tx.one("SELECT version FROM model WHERE id = 1")[0]
        if target <= state.version:
            return state
        with self._catchup:
            if self._state.version >= target:
                return self._state
            with self.store.read() as tx:
                target = tx.one("SELECT version FROM model WHERE id = 1")[0]
                new = self._advance(tx, self._state, target)
            self._publish(new)
            return self._state

    def _publish(self, state: mdl.ModelState) -> None:
        if state.version > self._state.version:
            self._state = state

    @property
    def state(self) -> mdl.ModelState:
        """The last published state (no database round trip)."""
        return self._state

    def _advance(self, tx: Tx, state: mdl.ModelState, target: int) -> mdl.ModelState:
        """``state`` brought to version ``target`` from the snapshot and event tables of ``tx``."""
        self._feature_map(tx)
        row = tx.one("SELECT version, D, G, B, labels, n_examples FROM snapshots WHERE version > ? AND version <= ? "
                     "ORDER BY version DESC LIMIT 1", (state.version, target))
        if row is not None:
            state = self._load_snapshot(row)
        for version, kind, detail in tx.all("SELECT version, kind, detail FROM events WHERE version > ? "
                                            "AND version <= ? ORDER BY version", (state.version, target)):
            info = json.loads(detail)
            if kind == "create_label":
                state = mdl.apply_create_label(state, version, info["id"], info["name"], info["threshold"])
            elif kind == "set_lambda":
                state = mdl.apply_set_lambda(state, version, info["lam"])
            elif kind == "set_threshold":
                state = mdl.apply_set_threshold(state, version, info["id"], info["threshold"])
            elif kind == "teach":
                fmap = self._feature_map(tx)
                X, known, _ = self._examples(tx, "e.version = ?", (version,))
                state = mdl.apply_teach(state, version, fmap, X, known)
            else:  # forgets always carry a snapshot at their version, loaded above
                raise RuntimeError(f"log: event {version} ({kind}) has no snapshot; the database is inconsistent")
        return state

    def _examples(self, tx: Tx, where: str, params: Sequence[Any]) -> tuple[np.ndarray, list[dict[int, int]], list[int]]:
        """(X n×d float32, known labels per row, seqs) of the examples matching ``where``, in seq order."""
        rows = tx.all(f"SELECT e.seq, e.vector FROM examples e WHERE {where} ORDER BY e.seq", params)
        seqs = [r[0] for r in rows]
        index = {s: i for i, s in enumerate(seqs)}
        known: list[dict[int, int]] = [{} for _ in rows]
        for seq, label_id, value in tx.all(f"SELECT k.seq, k.label_id, k.value FROM known k JOIN examples e "
                                           f"ON e.seq = k.seq WHERE {where}", params):
            known[index[seq]][int(label_id)] = int(value)
        d = self.options.d or 0
        X = np.stack([np.frombuffer(bytes(r[1]), dtype=np.float32) for r in rows]) if rows \
            else np.zeros((0, d), dtype=np.float32)
        return X, known, seqs

    def _examples_by_seq(self, tx: Tx, seqs: Sequence[int], with_ids: bool = False,
                         chunk: int = 500) -> tuple[np.ndarray, list[dict[int, int]], list[str]]:
        """(X, known labels, external ids if ``with_ids``) of the examples ``seqs``, in seq order,
        read ``chunk`` at a time (bounded SQL parameter lists)."""
        seqs = sorted(seqs)
        X, known, ext = [], [], []
        for start in range(0, len(seqs), chunk):
            part = seqs[start:start + chunk]
            marks = ",".join("?" * len(part))
            Xc, kc, sc = self._examples(tx, f"e.seq IN ({marks})", part)
            X.append(Xc)
            known.extend(kc)
            if with_ids:
                ids = dict(tx.all(f"SELECT seq, ext_id FROM examples WHERE seq IN ({marks})", part))
                ext.extend(ids[q] for q in sc)
        return np.vstack(X), known, ext

    def _state_at(self, tx: Tx) -> tuple[int, mdl.ModelState]:
        """(the database's latest version, the state at that version) inside ``tx``, without publishing it."""
        target = tx.one("SELECT version FROM model WHERE id = 1")[0]
        return target, (self._state if self._state.version == target else self._advance(tx, self._state, target))

    @staticmethod
    def _load_snapshot(row: tuple) -> mdl.ModelState:
        version, D, G, B, labels, n_examples = row
        labels = json.loads(labels)
        C = len(labels["ids"])
        Gt = torch.frombuffer(bytearray(bytes(G)), dtype=torch.float64).reshape(D, D)
        Bt = torch.frombuffer(bytearray(bytes(B)), dtype=torch.float64).reshape(D, C)
        return mdl.ModelState(int(version), Gt, Bt, tuple(labels["ids"]), int(n_examples), tuple(labels["names"]),
                              tuple(labels["thresholds"]), labels.get("lam"))

    @staticmethod
    def _write_snapshot(tx: Tx, state: mdl.ModelState) -> None:
        labels = json.dumps({"ids": list(state.label_ids), "names": list(state.label_names),
                             "thresholds": list(state.thresholds), "lam": state.lam})
        tx.run("INSERT INTO snapshots (version, D, G, B, labels, n_examples) VALUES (?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (version) DO NOTHING",
               (state.version, state.G.shape[0], state.G.contiguous().numpy().tobytes(),
                state.B.contiguous().numpy().tobytes(), labels, state.n_examples))

    def _locked_state(self, tx: Tx, version: int) -> mdl.ModelState:
        """The state at ``version`` inside a write transaction (the writer lock is held)."""
        with self._catchup:
            state = self._state
        if state.version > version:  # cannot happen while we hold the writer lock; rebuild to be safe
            state = mdl.ModelState.empty(0)
        return self._advance(tx, state, version) if state.version < version else state

    def maybe_snapshot(self) -> None:
        """Checkpoint the current state once ``snapshot_every`` versions passed since the last one
        (bounds the replay at start-up)."""
        state = self.refresh()
        if state.version - self._last_snapshot < self.snapshot_every:
            return
        with self.store.write() as tx:
            last = tx.one("SELECT MAX(version) FROM snapshots")[0] or 0
            self._last_snapshot = max(self._last_snapshot, int(last))
            if state.version - self._last_snapshot < self.snapshot_every:
                return
            # a forget after this version deleted what the state still holds: never resurrect it
            if tx.one("SELECT 1 FROM events WHERE version > ? AND kind IN ('forget_label', 'forget_examples')",
                      (state.version,)):
                return
            self._write_snapshot(tx, state)
        self._last_snapshot = state.version

    # ---- writing: one transaction per request -------------------------------------------
    @staticmethod
    def _label_id(tx: Tx, name: str) -> int:
        """The id of label ``name``; 404 naming the field when there is none."""
        row = tx.one("SELECT id FROM labels WHERE name = ?", (name,))
        if row is None:
            raise ServiceError(404, "name", f"unknown label {name!r}")
        return int(row[0])

    @staticmethod
    def _bump(tx: Tx) -> tuple[int, int, int]:
        version, next_label, next_seq = tx.one("SELECT version, next_label_id, next_seq FROM model WHERE id = 1")
        return int(version), int(next_label), int(next_seq)

    def create_label(self, name: str, description: str | None = None, threshold: float | None = None) -> int:
        """Register a label (no example yet); returns the new model version."""
        with self.store.write() as tx:
            version, next_label, next_seq = self._bump(tx)
            if tx.one("SELECT 1 FROM labels WHERE name = ?", (name,)):
                raise ServiceError(409, "name", f"label {name!r} already exists")
            v = version + 1
            tx.run("INSERT INTO labels (id, name, description, threshold, positives, negatives, created_version) "
                   "VALUES (?, ?, ?, ?, 0, 0, ?)", (next_label, name, description, threshold, v))
            tx.run("INSERT INTO events (version, kind, detail) VALUES (?, 'create_label', ?)",
                   (v, json.dumps({"id": next_label, "name": name, "threshold": threshold})))
            tx.run("UPDATE model SET version = ?, next_label_id = ? WHERE id = 1", (v, next_label + 1))
        return v

    def update_label(self, name: str, threshold: float | None, description: str | None,
                     fields: set[str]) -> int:
        """Set a label's decision threshold and/or description (those named in ``fields``); returns the version."""
        with self.store.write() as tx:
            version, _, _ = self._bump(tx)
            lid = self._label_id(tx, name)
            v = version + 1
            if "description" in fields:
                tx.run("UPDATE labels SET description = ? WHERE id = ?", (description, lid))
            if "threshold" in fields:
                tx.run("UPDATE labels SET threshold = ? WHERE id = ?", (threshold, lid))
            tx.run("INSERT INTO events (version, kind, detail) VALUES (?, 'set_threshold', ?)",
                   (v, json.dumps({"id": lid, "threshold": threshold if "threshold" in fields else
                                   tx.one("SELECT threshold FROM labels WHERE id = ?", (lid,))[0]})))
            tx.run("UPDATE model SET version = ? WHERE id = 1", (v,))
        return v

    def teach(self, X: np.ndarray, labels: list[dict[str, int]], ids: list[str | None]) -> tuple[list[str], int]:
        """Append one batch: X n×d float32 (finite), per-row known labels {name: 0/1}, optional ids.

        Returns (ids, new version). Unknown label names, a wrong dimension or a taken id raise
        :class:`ServiceError` and roll back (nothing is written).
        """
        n = X.shape[0]
        ext = [i if i is not None else uuid.uuid4().hex for i in ids]
        seen: set[str] = set()
        for i, e in enumerate(ext):
            if e in seen:
                raise ServiceError(409, f"examples[{i}].id", f"id {e!r} appears twice in the batch")
            seen.add(e)
        with self.store.write() as tx:
            version, next_label, next_seq = self._bump(tx)
            d = self._check_dim(tx, X.shape[1])
            by_name = {name: int(lid) for lid, name in tx.all("SELECT id, name FROM labels")}
            known_rows: list[tuple[int, int, int]] = []
            pos: dict[int, int] = {}
            neg: dict[int, int] = {}
            for i, row in enumerate(labels):
                for name, value in row.items():
                    lid = by_name.get(name)
                    if lid is None:
                        raise ServiceError(422, f"examples[{i}].labels.{name}", f"unknown label {name!r}; create it first")
                    known_rows.append((next_seq + i, lid, int(value)))
                    (pos if value else neg)[lid] = (pos if value else neg).get(lid, 0) + 1
            taken = self._taken(tx, ext)
            if taken:
                i = ext.index(taken[0])
                raise ServiceError(409, f"examples[{i}].id", f"an example with id {taken[0]!r} already exists")
            v = version + 1
            X32 = np.ascontiguousarray(X, dtype=np.float32)
            tx.many("INSERT INTO examples (seq, ext_id, version, vector) VALUES (?, ?, ?, ?)",
                    [(next_seq + i, ext[i], v, X32[i].tobytes()) for i in range(n)])
            tx.many("INSERT INTO known (seq, label_id, value) VALUES (?, ?, ?)", known_rows)
            for lid in sorted(set(pos) | set(neg)):
                tx.run("UPDATE labels SET positives = positives + ?, negatives = negatives + ? WHERE id = ?",
                       (pos.get(lid, 0), neg.get(lid, 0), lid))
            tx.run("INSERT INTO events (version, kind, detail) VALUES (?, 'teach', ?)", (v, json.dumps({"n": n, "d": d})))
            tx.run("UPDATE model SET version = ?, next_seq = ? WHERE id = 1", (v, next_seq + n))
        return ext, v

    def _taken(self, tx: Tx, ext: list[str]) -> list[str]:
        taken: list[str] = []
        for start in range(0, len(ext), 500):
            chunk = ext[start:start + 500]
            marks = ",".join("?" * len(chunk))
            taken += [r[0] for r in tx.all(f"SELECT ext_id FROM examples WHERE ext_id IN ({marks})", chunk)]
        return sorted(taken, key=ext.index)

    def _check_dim(self, tx: Tx, d: int) -> int:
        """The embedding dimension, set by this batch when still unknown (inside the write)."""
        row = tx.one("SELECT value FROM config WHERE key = 'd'")
        stored = json.loads(row[0]) if row else None
        if stored is None:
            tx.run("UPDATE config SET value = ? WHERE key = 'd'", (json.dumps(int(d)),))
            return d
        if stored != d:
            raise ServiceError(422, "examples[0].vector", f"expected embedding dimension {stored}, got {d}")
        return stored

    def forget_label(self, name: str) -> int:
        """Drop a label exactly: its B column, its known entries, its registry row. Returns the version."""
        with self.store.write() as tx:
            version, _, _ = self._bump(tx)
            lid = self._label_id(tx, name)
            v = version + 1
            new = mdl.apply_forget_label(self._locked_state(tx, version), v, lid)
            self._write_snapshot(tx, new)
            tx.run("DELETE FROM snapshots WHERE version < ?", (v,))
            tx.run("DELETE FROM known WHERE label_id = ?", (lid,))
            tx.run("DELETE FROM labels WHERE id = ?", (lid,))
            tx.run("INSERT INTO events (version, kind, detail) VALUES (?, 'forget_label', ?)",
                   (v, json.dumps({"id": lid})))
            tx.run("UPDATE model SET version = ? WHERE id = 1", (v,))
        with self._catchup:
            self._publish(new)
        return v

    def forget_examples(self, ids: list[str]) -> int:
        """Remove examples exactly: subtract their φφᵀ and φyᵀ, delete their rows. Returns the version."""
        with self.store.write() as tx:
            version, _, _ = self._bump(tx)
            found = self._taken(tx, ids)
            missing = [i for i in ids if i not in set(found)]
            if missing:
                raise ServiceError(404, f"ids[{ids.index(missing[0])}]", f"unknown example id {missing[0]!r}")
            v = version + 1
            state = self._locked_state(tx, version)
            uniq = sorted(set(ids))
            fmap = self._feature_map(tx)
            for start in range(0, len(uniq), 500):
                chunk = uniq[start:start + 500]
                marks = ",".join("?" * len(chunk))
                X, known, seqs = self._examples(tx, f"e.ext_id IN ({marks})", chunk)
                state = mdl.apply_forget_examples(state, v, fmap, X, known)
                pos: dict[int, int] = {}
                neg: dict[int, int] = {}
                for row in known:
                    for lid, value in row.items():
                        (pos if value else neg)[lid] = (pos if value else neg).get(lid, 0) + 1
                for lid in sorted(set(pos) | set(neg)):
                    tx.run("UPDATE labels SET positives = positives - ?, negatives = negatives - ? WHERE id = ?",
                           (pos.get(lid, 0), neg.get(lid, 0), lid))
                seq_marks = ",".join("?" * len(seqs))
                tx.run(f"DELETE FROM known WHERE seq IN ({seq_marks})", seqs)
                tx.run(f"DELETE FROM examples WHERE seq IN ({seq_marks})", seqs)
            state = state.with_stats(v, state.G, state.B, state.n_examples)
            self._write_snapshot(tx, state)
            tx.run("DELETE FROM snapshots WHERE version < ?", (v,))
            tx.run("INSERT INTO events (version, kind, detail) VALUES (?, 'forget_examples', ?)",
                   (v, json.dumps({"n": len(uniq)})))
            tx.run("UPDATE model SET version = ? WHERE id = 1", (v,))
        with self._catchup:
            self._publish(state)
        return v

    def lam(self, state: mdl.ModelState | None = None) -> float:
        """The ridge λ of ``state`` (default: the current one)."""
        state = state or self._state
        return state.lam if state.lam is not None else float(self.options.lam)

    def set_lambda(self, lam: float, detail: dict[str, Any] | None = None) -> int:
        """Solve with ridge λ = ``lam`` from the next version on; returns that version."""
        with self.store.write() as tx:
            version, _, _ = self._bump(tx)
            v = version + 1
            tx.run("INSERT INTO events (version, kind, detail) VALUES (?, 'set_lambda', ?)",
                   (v, json.dumps({"lam": float(lam), **(detail or {})})))
            tx.run("UPDATE model SET version = ? WHERE id = 1", (v,))
        return v

    def choose_lambda(self, lambdas: Sequence[float] | None = None, sample: int = 2000) -> dict[str, Any]:
        """Pick λ by closed-form leave-one-out mAP and set it (one eigendecomposition for the grid).

        The leave-one-out scores of up to ``sample`` stored examples (evenly spaced in teach
        order) are computed for every λ (default grid: 13 values, 10⁻⁴..10² × mean eigenvalue
        of G); the λ with the best mean AP over labels with a positive is set. Returns
        {lam, version, lambdas, loo_map, rows}.
        """
        with self.store.read() as tx:
            target, state = self._state_at(tx)
            seqs = [r[0] for r in tx.all("SELECT seq FROM examples WHERE version <= ? ORDER BY seq", (target,))]
            if len(seqs) < 3 or not state.label_ids or self._fmap is None:
                raise ServiceError(409, "examples", "need at least 3 taught examples and a label to choose λ")
            pick = sorted({seqs[int(i)] for i in np.linspace(0, len(seqs) - 1, min(sample, len(seqs)))})
            X, known, _ = self._examples_by_seq(tx, pick)
        Y = mdl.label_matrix(known, state.label_ids)
        if not bool((Y.sum(dim=0) > 0).any()):
            raise ServiceError(409, "examples", "no label has a positive example among the stored examples")
        grid = np.asarray(lambdas if lambdas is not None else ridge.lambda_grid(state.G, 13), dtype=np.float64)
        path = ridge.loo_path_scores(state.G, state.B, self._fmap(X), Y, grid).numpy()
        Y_np = Y.numpy()
        has_pos = Y_np.sum(axis=0) > 0
        maps = [float(np.mean(average_precision(Y_np[:, has_pos], S[:, has_pos]))) for S in path]
        best = float(grid[int(np.argmax(maps))])
        version = self.set_lambda(best, {"chosen_at": int(target), "rows": len(pick)})
        return {"lam": best, "version": version, "lambdas": grid.tolist(), "loo_map": maps, "rows": len(pick)}

    def suspicious(self, name: str, limit: int = 20, include_absent: bool = False,
                   sample: int = 20000) -> dict[str, Any]:
        """The stored examples whose label ``name`` most likely is wrong (or missing).

        Each example is scored by the model fitted without it — closed-form ridge leave-one-out,
        (ŷ − h·y)/(1 − h) with h = φᵀ(G + λI)⁻¹φ, no refit — and cleanlab ranks the examples by
        label quality (:func:`mlcil.decide.audit.audit_scores`). Examples where the label is known
        (positive or explicit negative) are audited; with ``include_absent`` also those where it is
        absent (which the model reads as negatives: a high score there suggests a missing tag).
        At most ``sample`` examples (the latest) are read. Returns {version, label, audited, examples}.
        """
        from mlcil.decide.audit import audit_scores

        with self.store.read() as tx:
            target, state = self._state_at(tx)
            lid = self._label_id(tx, name)
            where = "e.version <= ?" if include_absent else \
                "e.version <= ? AND e.seq IN (SELECT seq FROM known WHERE label_id = ?)"
            params: tuple = (target,) if include_absent else (target, lid)
            seqs = [r[0] for r in tx.all(f"SELECT e.seq FROM examples e WHERE {where} ORDER BY e.seq DESC LIMIT ?",
                                         params + (int(sample),))]
            if not seqs or self._fmap is None:
                return {"version": int(state.version), "label": name, "audited": 0, "examples": []}
            X, known, ext = self._examples_by_seq(tx, seqs, with_ids=True)
        col = state.label_ids.index(lid)
        y = np.array([k.get(lid, 0) == 1 for k in known], dtype=np.uint8)
        try:
            factor = ridge.Factor(state.G, self.lam(state))
        except ridge.NotPositiveDefinite:
            raise ServiceError(409, "lam", "G + λI is not positive definite; set a larger λ (POST /v1/lambda)") from None
        W = factor.solve(state.B[:, col:col + 1])  # one column from the one factor
        loo = factor.loo_scores(W, self._fmap(X), torch.as_tensor(y[:, None], dtype=torch.float64)).numpy()[:, 0]
        result = audit_scores(y, loo)
        given = ["positive" if k.get(lid) == 1 else "negative" if k.get(lid) == 0 else "absent" for k in known]
        top = result.ranking[:int(limit)]
        return {"version": int(state.version), "label": name, "audited": int(len(y)),
                "examples": [{"id": ext[i], "given": given[i], "loo_score": float(loo[i]),
                              "quality": float(result.quality[i]), "flagged": bool(result.flagged[i])} for i in top]}

    # ---- reading -------------------------------------------------------------------------
    def labels(self) -> list[dict[str, Any]]:
        """The label registry with counts of known positives and explicit negatives."""
        with self.store.read() as tx:
            rows = tx.all("SELECT name, description, threshold, positives, negatives, created_version FROM labels "
                          "ORDER BY id")
        return [{"name": r[0], "description": r[1], "threshold": r[2], "positives": int(r[3]),
                 "negatives": int(r[4]), "created_version": int(r[5])} for r in rows]

    def scores(self, X: np.ndarray) -> tuple[mdl.ModelState, np.ndarray]:
        """(state used, n×C ridge scores) at the latest version. X n×d float32 finite."""
        state = self.refresh()
        fmap = self._fmap
        if fmap is None or not state.label_ids:
            return state, np.zeros((X.shape[0], len(state.label_ids)))
        return state, mdl.scores(state, fmap, self.lam(state), X)
