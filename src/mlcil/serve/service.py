"""The tagging service's domain (no HTTP here): writes to the log, a background refresher, predictions.

**Writes.** Every write request is one database transaction that appends one event and bumps the
model version (:mod:`mlcil.serve.journal`): ``create_label``, ``update_label``, ``teach`` (new
examples, and relabels of stored ones), ``set_lambda``, ``calibrate``, ``forget_label``,
``forget_examples``. A write is acknowledged iff its transaction committed; nothing else (a
snapshot, a refresh, a calibration) runs on its path.

**Predictions never wait for a factorisation.** A background thread per process (the refresher)
follows the database (woken by this process's commits, and polling every ``poll_s`` for other
processes'), catches its statistics up, solves W = (G + λI)⁻¹B once and publishes an immutable
:class:`~mlcil.serve.model.Model` — at most once per max(``refresh_interval``, 4 × the last
refresh's duration), so refreshing never takes more than a fifth of a core. A prediction reads
the published model — no database round trip, no lock — and names its version. Staleness bound:
a write committed at time t is in every prediction answered after t + poll_s (other processes
only) + max(refresh_interval, 4r) + r, r = the duration of one refresh; a client that needs its
own write passes ``min_version`` and waits for it.

**Calibration and λ** follow the library's ``Analytic``: the same thread recalibrates (at most
every ``calib_min_interval``) when the stored examples (or a label's positives) have grown by
``calib_growth`` since the last fit: per-label Platt maps on leave-one-out scores, and λ by
closed-form leave-one-out mAP (unless fixed by an admin) when they have grown by ``lam_growth``
(:mod:`mlcil.serve.calibrate`). The result is a ``calibrate`` event, so every process
applies the same calibration at the same version.

**Storage stays bounded**: the log is pruned at each snapshot and each forget; at most one
snapshot is kept, and only while it is smaller than ``snapshot_share`` × the stored vectors.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from mlcil import ridge
from mlcil.errors import MlcilError
from mlcil.serve import journal
from mlcil.serve.calibrate import calibrate as fit_calibration
from mlcil.serve.errors import Conflict, Invalid, NotFound, NotReady, ServiceError, TooLarge, Unavailable
from mlcil.serve.model import Model, to_learner
from mlcil.decide.calibration import apply_platt
from mlcil.serve.state import DEFAULT_PLATT, ModelState, ServiceFeatureMap, feature_map, targets
from mlcil.serve.store import Store, Tx

log = logging.getLogger("mlcil.serve")

SCALINGS = ("l2", "none")
#: defaults of a new database (``Options`` fields left None take these)
DEFAULTS = {"d": None, "M": 1024, "seed": 0, "lam": "auto", "include_x": "auto", "scaling": "l2"}
#: what a user calls each option (CLI flags) in error messages
FLAGS = {"d": "--dim", "M": "--features", "seed": "--seed", "lam": "--lam", "include_x": "--include-x",
         "scaling": "--scaling"}
#: the refresher waits at least this many times its last refresh's duration before the next one, so
#: that refreshing takes at most 1/(1 + REFRESH_SHARE) of a core while writes keep coming
REFRESH_SHARE = 4.0
#: with scaling 'none', components above this magnitude are refused (φφᵀ would lose all precision)
MAX_ABS_UNSCALED = 1e6


@dataclass(frozen=True)
class Options:
    """The model's frame, fixed when the database is created (stored in its ``config`` table).

    None = unspecified: a new database takes :data:`DEFAULTS`, an existing one keeps its own. A
    value that contradicts an existing database is refused. d: embedding dimension (None = set by
    the first teach); M: random features; seed: of R; lam: ridge λ, or 'auto' (chosen by
    leave-one-out); include_x: also the scaled input as features (True, False or 'auto': only when
    d ≤ 1024, as the library does); scaling: 'l2' (unit rows; default) or 'none'.
    """

    d: int | None = None
    M: int | None = None
    seed: int | None = None
    lam: float | str | None = None
    include_x: bool | str | None = None
    scaling: str | None = None


@dataclass(frozen=True)
class Limits:
    """Hard bounds: embedding dimension, random features, labels, name length; memory budget of the state."""

    max_dim: int = 16384
    max_features: int = 16384
    max_labels: int = 10000
    max_name: int = 200
    memory_budget: Any = None


@dataclass(frozen=True)
class Policy:
    """Background work. Times in seconds."""

    background: bool = True
    refresh_interval: float = 1.0
    poll_s: float = 0.05
    calibrate: bool = True
    calib_rows: int = 2000
    calib_per_label: int = 200
    calib_growth: float = 1.25
    lam_growth: float = 2.0
    calib_min_interval: float = 10.0
    calib_min_rows: int = 10
    snapshot_rows_per_feature: float = 8.0
    snapshot_events: int = 5000
    snapshot_share: float = 0.5
    n_lambdas: int = 13


@dataclass
class Counters:
    """What the background did, for /metrics."""

    refreshes: int = 0
    refresh_seconds: float = 0.0
    calibrations: int = 0
    snapshots: int = 0
    background_errors: int = 0
    last_error: str = ""
    db_version: int = 0


#: id prefix of the name examples (a label's name embedding, stored as an example); reserved.
NAME_PREFIX = "@name/"


def _check_name(value: str, field_: str, max_len: int) -> None:
    """Names and ids: 1..max_len characters, no control character, no '/' or '\\', not '.' or '..'."""
    if not isinstance(value, str) or not value:
        raise Invalid(field_, "expected a non-empty string")
    if len(value) > max_len:
        raise TooLarge(field_, f"{len(value)} characters, over the limit of {max_len}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Invalid(field_, "control characters (NUL, newline, ...) are not allowed")
    if value != value.strip():
        raise Invalid(field_, "leading or trailing white space")


def check_label_name(name: str, field_: str = "name", max_len: int = 200) -> None:
    """A label name must be usable as one URL path segment: no '/', '\\', and not '.' or '..'."""
    _check_name(name, field_, max_len)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise Invalid(field_, "a label name cannot contain '/' or '\\' nor be '.' or '..' (it is a URL path segment)")


class TaggingService:
    """Create labels, teach, relabel, forget, predict over a :class:`Store` (any number of processes)."""

    def __init__(self, store: Store, options: Options | None = None, limits: Limits | None = None,
                 policy: Policy | None = None) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.policy = policy or Policy()
        self.counters = Counters()
        self.options = self._load_options(options or Options())
        self._fmap: ServiceFeatureMap | None = None
        self._lock = threading.Lock()  # guards _state (catch-up)
        self._published = threading.Condition()
        self._state: ModelState | None = None
        self._model = Model(0, (), None, None, 1.0, 0)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_refresh = 0.0
        self._refresh_took = 0.0
        self._last_calibration = 0.0
        self._thread: threading.Thread | None = None
        self.refresh()
        if self.policy.background:
            self._thread = threading.Thread(target=self._background, name="mlcil-refresher", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the background thread and close the idle connections."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.store.close()

    # ---- configuration -------------------------------------------------------------------
    def _load_options(self, requested: Options) -> Options:
        """The database's frame; a new database takes ``requested`` (+ defaults); a contradiction is refused."""
        req = {k: v for k, v in asdict(requested).items() if v is not None}
        self._validate_options(req)
        with self.store.write() as tx:
            stored = journal.config(tx)
            if "M" not in stored:  # a new database
                frame = {**DEFAULTS, **req}
                if frame["d"] is not None:
                    frame["include_x"] = self._resolve_include_x(frame["include_x"], frame["d"])
                    self._check_memory(frame["d"], frame["M"], frame["include_x"], "d")
                for key, value in frame.items():
                    tx.run("INSERT INTO config (key, value) VALUES (?, ?)", (key, json.dumps(value)))
                if isinstance(frame["lam"], (int, float)):
                    tx.run("UPDATE model SET lam = ?, lam_fixed = 1 WHERE id = 1", (float(frame["lam"]),))
                return Options(**frame)
        for key, value in req.items():
            have = stored.get(key)
            if key == "include_x" and value == "auto" and isinstance(have, bool):
                continue  # 'auto' was resolved when d was set
            if have != value and not (key == "lam" and isinstance(have, (int, float)) and isinstance(value, (int, float))
                                      and math.isclose(have, value, rel_tol=1e-12)):
                raise MlcilError(
                    f"{FLAGS[key]} {value} contradicts the database {self.store.url}, created with {key} = {have}; "
                    f"start without {FLAGS[key]} (or with {FLAGS[key]} {have}), or use a new database")
        return Options(**{k: stored.get(k, DEFAULTS[k]) for k in DEFAULTS})

    def _validate_options(self, req: dict[str, Any]) -> None:
        lim = self.limits
        if "d" in req and not (isinstance(req["d"], int) and 1 <= req["d"] <= lim.max_dim):
            raise MlcilError(f"--dim: expected 1..{lim.max_dim}, got {req['d']!r}")
        if "M" in req and not (isinstance(req["M"], int) and 1 <= req["M"] <= lim.max_features):
            raise MlcilError(f"--features: expected 1..{lim.max_features}, got {req['M']!r}")
        if "lam" in req and not (req["lam"] == "auto" or (isinstance(req["lam"], (int, float)) and
                                                          math.isfinite(req["lam"]) and req["lam"] > 0)):
            raise MlcilError(f"--lam: expected 'auto' or a finite λ > 0, got {req['lam']!r}")
        if "include_x" in req and req["include_x"] not in (True, False, "auto"):
            raise MlcilError(f"--include-x: expected true, false or auto, got {req['include_x']!r}")
        if "scaling" in req and req["scaling"] not in SCALINGS:
            raise MlcilError(f"--scaling: expected one of {', '.join(SCALINGS)}, got {req['scaling']!r}")

    @staticmethod
    def _resolve_include_x(include_x, d: int) -> bool:
        return bool(d <= ridge.INCLUDE_X_MAX_FEATURES) if include_x == "auto" else bool(include_x)

    def _check_memory(self, d: int, M: int, include_x: bool, field_: str) -> None:
        D = M + (d if include_x else 0)
        try:
            ridge.check_budget("serve", {f"statistics G and their factor (D = {D})": 3 * D * D * 8,
                                         f"random features R ({d}×{M})": d * M * 4}, self.limits.memory_budget,
                               hint="lower --features, or --include-x false")
        except MlcilError as exc:
            raise TooLarge(field_, str(exc)) from None

    def _feature_map(self) -> ServiceFeatureMap | None:
        """φ once d is known."""
        if self._fmap is None and self.options.d is not None:
            o = self.options
            self._fmap = feature_map(o.d, o.M, o.seed, self._resolve_include_x(o.include_x, o.d), o.scaling)
        return self._fmap

    def _learn_dim(self, tx: Tx) -> None:
        """Pick up d when another process (or this one) set it."""
        if self.options.d is None:
            cfg = journal.config(tx)
            if cfg.get("d") is not None:
                self.options = Options(**{**asdict(self.options), "d": cfg["d"], "include_x": cfg["include_x"]})

    @property
    def dim(self) -> int | None:
        """Embedding dimension d, or None before the first teach (when not set at creation).

        While unknown, each call asks the database (another process may have set it)."""
        if self.options.d is None:
            with self.store.read() as tx:
                self._learn_dim(tx)
        return self.options.d

    # ---- the published model ---------------------------------------------------------------
    @property
    def model(self) -> Model:
        """The last published model (no database round trip, no lock)."""
        return self._model

    def refresh(self) -> Model:
        """Catch up with the database now and publish its latest version (blocking; off the request path)."""
        start = time.perf_counter()
        with self._lock:
            with self.store.read() as tx:
                self._learn_dim(tx)
                state = journal.advance(tx, self._state, self._feature_map())
            self._state = state
        self.counters.db_version = max(self.counters.db_version, state.version)
        if state.version > self._model.version or self._model.fmap is None and self._fmap is not None:
            self._publish(Model.build(state, self._fmap))
        self._last_refresh = time.monotonic()
        self._refresh_took = time.perf_counter() - start
        self.counters.refreshes += 1
        self.counters.refresh_seconds += self._refresh_took
        return self._model

    def _publish(self, model: Model) -> None:
        with self._published:
            if model.version >= self._model.version:
                self._model = model
            self._published.notify_all()

    def wait_for(self, version: int, timeout: float = 30.0) -> Model:
        """The published model once it reaches ``version`` (raises :class:`NotReady` after ``timeout``)."""
        model = self._model
        if model.version >= version:
            return model
        if self._thread is None:
            return self.refresh() if self.refresh().version >= version else self._not_ready(version)
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._published:
            while self._model.version < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._not_ready(version)
                self._published.wait(min(left, 0.5))
        return self._model

    def _not_ready(self, version: int):
        raise NotReady("min_version", f"version {version} is not built yet (this process serves "
                                      f"{self._model.version}; the database is at {self.counters.db_version})")

    def _committed(self, version: int) -> None:
        """A write of this process committed: wake the refresher."""
        self.counters.db_version = max(self.counters.db_version, version)
        self._wake.set()

    def _background(self) -> None:
        """Refresh, recalibrate and snapshot until :meth:`close`; errors are counted, never raised."""
        p = self.policy
        while not self._stop.is_set():
            self._wake.wait(p.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                with self.store.read() as tx:
                    latest = int(tx.one("SELECT version FROM model WHERE id = 1")[0])
                self.counters.db_version = max(self.counters.db_version, latest)
                if latest > self._model.version:
                    # at most one refresh per interval, and never more than a fifth of a core on refreshing
                    interval = max(p.refresh_interval, REFRESH_SHARE * self._refresh_took)
                    wait = self._last_refresh + interval - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        return
                    self.refresh()
                if p.calibrate and time.monotonic() - self._last_calibration >= p.calib_min_interval:
                    self._last_calibration = time.monotonic()
                    if self._calibration_due():
                        self.calibrate()
                self.maybe_snapshot()
            except Exception as exc:  # noqa: BLE001 - the thread must survive any failure; counted and logged
                self.counters.background_errors += 1
                self.counters.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("background: %s", self.counters.last_error)
                self._stop.wait(min(5.0, 10 * p.poll_s))

    # ---- writing: one transaction per request ----------------------------------------------
    @staticmethod
    def _head(tx: Tx) -> dict[str, Any]:
        return journal.model_row(tx)

    @staticmethod
    def _event(tx: Tx, version: int, kind: str, detail: dict[str, Any], **model_updates: Any) -> None:
        tx.run("INSERT INTO events (version, kind, detail) VALUES (?, ?, ?)", (version, kind, json.dumps(detail)))
        sets = ", ".join(f"{k} = ?" for k in ("version", *model_updates))
        tx.run(f"UPDATE model SET {sets} WHERE id = 1", (version, *model_updates.values()))

    def _label_id(self, tx: Tx, name: str) -> int:
        """The id of label ``name``; :class:`NotFound` naming the field when there is none."""
        if not isinstance(name, str) or "\x00" in name or len(name) > self.limits.max_name:
            raise NotFound("name", f"unknown label {name!r}")
        row = tx.one("SELECT id FROM labels WHERE name = ?", (name,))
        if row is None:
            raise NotFound("name", f"unknown label {name!r}")
        return int(row[0])

    def create_label(self, name: str, description: str | None = None, threshold: float | None = None,
                     name_vector: np.ndarray | None = None) -> int:
        """Register a label; returns the new model version.

        ``name_vector``: the label's name (and description) embedded by the text encoder that embeds
        the inputs (d floats). It is stored, in the same transaction, as the label's **name example**
        (id ``@name/<label>``, positive for this label, absent for the others): a pseudo-example of
        weight 1 in G and B, as the library's name prior (``Analytic(prior=1)``), so the label has
        scores before its first example and the data outweigh it as examples arrive. Forgetting the
        label forgets it too.
        """
        check_label_name(name, "name", self.limits.max_name)
        if description is not None and "\x00" in description:
            raise Invalid("description", "NUL characters are not allowed")
        if name_vector is not None:
            name_vector = np.asarray(name_vector, dtype=np.float32).reshape(-1)
            if not np.isfinite(name_vector).all():
                raise Invalid("description", "the encoder returned a non-finite name embedding")
        with self.store.write() as tx:
            head = self._head(tx)
            if tx.one("SELECT 1 FROM labels WHERE name = ?", (name,)):
                raise Conflict("name", f"label {name!r} already exists")
            if tx.one("SELECT COUNT(*) FROM labels")[0] >= self.limits.max_labels:
                raise TooLarge("name", f"the service holds the maximum of {self.limits.max_labels} labels")
            v, lid = head["version"] + 1, head["next_label_id"]
            tx.run("INSERT INTO labels (id, name, description, threshold, positives, negatives, created_version) "
                   "VALUES (?, ?, ?, ?, 0, 0, ?)", (lid, name, description, threshold, v))
            self._event(tx, v, "create_label", {"id": lid, "name": name, "threshold": threshold},
                        next_label_id=lid + 1)
            if name_vector is not None:  # the name example: one more event, same transaction
                self._set_dim(tx, len(name_vector), "description")
                seq, v = head["next_seq"], v + 1
                self._write_teach(tx, v, seq, [(seq, NAME_PREFIX + name, name_vector.tobytes())], [(seq, lid, 1)],
                                  {lid: [1, 0]}, [])
        self._committed(v)
        return v

    def update_label(self, name: str, threshold: float | None, description: str | None, fields: set[str]) -> int:
        """Set a label's decision threshold and/or description (those named in ``fields``); returns the version."""
        if description is not None and "\x00" in description:
            raise Invalid("description", "NUL characters are not allowed")
        with self.store.write() as tx:
            head = self._head(tx)
            lid = self._label_id(tx, name)
            v = head["version"] + 1
            if "description" in fields:
                tx.run("UPDATE labels SET description = ? WHERE id = ?", (description, lid))
            if "threshold" in fields:
                tx.run("UPDATE labels SET threshold = ? WHERE id = ?", (threshold, lid))
            current = tx.one("SELECT threshold FROM labels WHERE id = ?", (lid,))[0]
            self._event(tx, v, "update_label", {"id": lid, "threshold": current})
        self._committed(v)
        return v

    def _set_dim(self, tx: Tx, d: int, field_: str) -> None:
        """Check ``d`` against the database's dimension, or set it (first vectors ever), inside the write.

        Reads the config inside the transaction and changes nothing in this object: if the write
        rolls back, no process (this one included) has seen the new dimension."""
        stored = journal.config(tx).get("d")
        if stored is not None:
            if d != stored:
                raise Invalid(field_, f"expected embedding dimension {stored}, got {d}")
            return
        if d > self.limits.max_dim:
            raise TooLarge(field_, f"embedding dimension {d} is over the limit of {self.limits.max_dim}")
        include_x = self._resolve_include_x(self.options.include_x, d)
        self._check_memory(d, self.options.M, include_x, field_)
        tx.run("UPDATE config SET value = ? WHERE key = 'd'", (json.dumps(int(d)),))
        tx.run("UPDATE config SET value = ? WHERE key = 'include_x'", (json.dumps(include_x),))

    def teach(self, vectors: Sequence[np.ndarray | None], labels: Sequence[dict[str, int | None]],
              ids: Sequence[str | None]) -> tuple[list[str], int]:
        """Store new examples and relabel stored ones, in one transaction; returns (ids, version).

        Row i: ``vectors[i]`` (d float32, finite; None for a stored id: relabel only), known labels
        ``{name: 1 | 0 | None}`` (1 positive, 0 explicit negative, None: no longer known), and an id
        (None: a new UUID). An id already stored is a **relabel**: the labels given replace the
        stored values of those labels (others stay), and its contribution changes exactly
        (B += φ(y_new − y_old)ᵀ; G unchanged). Its vector, if given, must equal the stored one.
        Re-sending a batch is therefore harmless: unchanged rows write nothing. When nothing
        changes at all, no event is written and the current version is returned. Invalid input
        raises and writes nothing.
        """
        n = len(labels)
        ext = [i if i is not None else uuid.uuid4().hex for i in ids]
        seen: dict[str, int] = {}
        for i, e in enumerate(ext):
            _check_name(e, f"examples[{i}].id", self.limits.max_name)
            if e.startswith(NAME_PREFIX):
                raise Invalid(f"examples[{i}].id", f"ids starting with {NAME_PREFIX!r} are reserved for label names")
            if e in seen:
                raise Conflict(f"examples[{i}].id", f"id {e!r} appears twice in the batch (also examples[{seen[e]}])")
            seen[e] = i
        for i, row in enumerate(labels):
            for name in row:
                if "\x00" in name:
                    raise Invalid(f"examples[{i}].labels", "NUL characters are not allowed in label names")
        given = [i for i, v in enumerate(vectors) if v is not None]
        for i in given:
            if len(vectors[i]) != len(vectors[given[0]]):
                raise Invalid(f"examples[{i}].vector", f"expected embedding dimension {len(vectors[given[0]])} "
                                                       f"(as examples[{given[0]}]), got {len(vectors[i])}")
        with self.store.write() as tx:
            head = self._head(tx)
            if given:
                self._set_dim(tx, len(vectors[given[0]]), f"examples[{given[0]}].vector")
            by_name = {name: int(lid) for lid, name in tx.all("SELECT id, name FROM labels")}
            wanted: list[dict[int, int | None]] = []
            for i, row in enumerate(labels):
                out: dict[int, int | None] = {}
                for name, value in row.items():
                    lid = by_name.get(name)
                    if lid is None:
                        raise Invalid(f"examples[{i}].labels.{name}", f"unknown label {name!r}; create it first")
                    out[lid] = value
                wanted.append(out)
            stored = self._stored(tx, ext)
            known_now = journal._known(tx, f"seq IN ({','.join('?' * len(stored))})",
                                       [s for s, _ in stored.values()]) if stored else {}
            new_rows, known_rows, relabel, counts = [], [], [], {}
            next_seq = head["next_seq"]

            def count(lid: int, value, sign: int) -> None:
                if value is not None:
                    pos_neg = counts.setdefault(lid, [0, 0])
                    pos_neg[0 if value == 1 else 1] += sign

            for i in range(n):
                if ext[i] in stored:
                    seq, vec = stored[ext[i]]
                    if vectors[i] is not None and np.asarray(vectors[i], np.float32).tobytes() != bytes(vec):
                        raise Conflict(f"examples[{i}].vector", f"example {ext[i]!r} is stored with another vector; "
                                                                 "forget it first to replace it")
                    have = known_now.get(seq, {})
                    for lid, value in wanted[i].items():
                        before = have.get(lid)
                        if before != value:
                            relabel.append([seq, lid, before, value])
                            count(lid, before, -1)
                            count(lid, value, +1)
                    continue
                if vectors[i] is None:
                    raise Invalid(f"examples[{i}].vector", f"example {ext[i]!r} is not stored: give its vector")
                seq = next_seq + len(new_rows)
                new_rows.append((seq, ext[i], np.asarray(vectors[i], np.float32).tobytes()))
                for lid, value in wanted[i].items():
                    if value is not None:
                        known_rows.append((seq, lid, int(value)))
                        count(lid, value, +1)
            if not new_rows and not relabel:
                return ext, int(head["version"])
            v = head["version"] + 1
            self._write_teach(tx, v, next_seq, new_rows, known_rows, counts, relabel)
        self._committed(v)
        return ext, v

    def _write_teach(self, tx: Tx, v: int, next_seq: int, new_rows: list, known_rows: list,
                     counts: dict[int, list[int]], relabel: list) -> None:
        """Inside a write: store new rows (seq, ext_id, vector bytes) with their known labels
        (seq, label_id, value), apply relabels [seq, label_id, before, after], add the label counts
        {label_id: [positives, negatives]}, and log it all as the ``teach`` event of version v."""
        tx.many("INSERT INTO examples (seq, ext_id, vector) VALUES (?, ?, ?)", new_rows)
        tx.many("INSERT INTO known (seq, label_id, value) VALUES (?, ?, ?)", known_rows)
        for seq, lid, before, after in relabel:
            if after is None:
                tx.run("DELETE FROM known WHERE seq = ? AND label_id = ?", (seq, lid))
            elif before is None:
                tx.run("INSERT INTO known (seq, label_id, value) VALUES (?, ?, ?)", (seq, lid, int(after)))
            else:
                tx.run("UPDATE known SET value = ? WHERE seq = ? AND label_id = ?", (int(after), seq, lid))
        for lid in sorted(counts):
            tx.run("UPDATE labels SET positives = positives + ?, negatives = negatives + ? WHERE id = ?",
                   (counts[lid][0], counts[lid][1], lid))
        self._event(tx, v, "teach", {"seq": [next_seq, len(new_rows)], "relabel": relabel},
                    next_seq=next_seq + len(new_rows))

    def _stored(self, tx: Tx, ext: list[str]) -> dict[str, tuple[int, bytes]]:
        """{external id: (seq, vector bytes)} of the ids already stored."""
        found: dict[str, tuple[int, bytes]] = {}
        for start in range(0, len(ext), 500):
            chunk = ext[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for seq, e, vec in tx.all(f"SELECT seq, ext_id, vector FROM examples WHERE ext_id IN ({marks})", chunk):
                found[e] = (int(seq), vec)
        return found

    def _state_in(self, tx: Tx) -> ModelState:
        """The state at the transaction's version (from the one this process holds)."""
        self._learn_dim(tx)
        return journal.advance(tx, self._state, self._feature_map())

    def _after_forget(self, tx: Tx, new: ModelState, next_seq: int) -> None:
        """Make the forget the base of the log: prune, and checkpoint when the size policy allows."""
        if new.stats is not None and self._snapshot_allowed(tx, new):
            journal.write_snapshot(tx, new, next_seq)
        else:
            tx.run("DELETE FROM snapshots")
            journal.prune(tx, new.version, next_seq)

    def _adopt(self, new: ModelState) -> None:
        with self._lock:
            if self._state is None or self._state.version < new.version:
                self._state = new
        self._committed(new.version)

    def forget_label(self, name: str) -> int:
        """Drop a label exactly: its B column, its known entries, its registry row (and its name example,
        if it was created with one: forgotten first, as :meth:`forget_examples`). Returns the version."""
        with self.store.read() as tx:
            self._label_id(tx, name)
            has_name = bool(self._stored(tx, [NAME_PREFIX + name]))
        if has_name:
            self.forget_examples([NAME_PREFIX + name])
        with self.store.write() as tx:
            head = self._head(tx)
            lid = self._label_id(tx, name)
            v = head["version"] + 1
            new = self._state_in(tx).without_label(v, lid)
            tx.run("DELETE FROM known WHERE label_id = ?", (lid,))
            tx.run("DELETE FROM labels WHERE id = ?", (lid,))
            self._event(tx, v, "forget_label", {"id": lid})
            self._after_forget(tx, new, head["next_seq"])
        self._adopt(new)
        self.store.vacuum()
        return v

    def forget_examples(self, ids: list[str]) -> int:
        """Remove examples exactly: subtract their φφᵀ and φyᵀ, delete their rows. Returns the version."""
        for i, e in enumerate(ids):
            if not isinstance(e, str) or "\x00" in e or len(e) > self.limits.max_name:
                raise NotFound(f"ids[{i}]", f"unknown example id {e!r}")
        with self.store.write() as tx:
            head = self._head(tx)
            found = self._stored(tx, list(ids))
            for i, e in enumerate(ids):
                if e not in found:
                    raise NotFound(f"ids[{i}]", f"unknown example id {e!r}")
            v = head["version"] + 1
            state = self._state_in(tx)
            seqs = sorted({found[e][0] for e in ids})
            fmap = self._feature_map()
            stats = state.stats
            for start in range(0, len(seqs), journal.CHUNK):
                part = seqs[start:start + journal.CHUNK]
                _, X, known, _ = journal.rows_by_seq(tx, part, fmap.d)
                if stats is not None:
                    stats = stats - journal.row_statistics(fmap, X, targets(known, state.label_ids))
                pos: dict[int, list[int]] = {}
                for row in known:
                    for lid, value in row.items():
                        pos.setdefault(lid, [0, 0])[0 if value == 1 else 1] += 1
                for lid in sorted(pos):
                    tx.run("UPDATE labels SET positives = positives - ?, negatives = negatives - ? WHERE id = ?",
                           (pos[lid][0], pos[lid][1], lid))
                marks = ",".join("?" * len(part))
                tx.run(f"DELETE FROM known WHERE seq IN ({marks})", part)
                tx.run(f"DELETE FROM examples WHERE seq IN ({marks})", part)
            new = state.with_stats(v, stats) if stats is not None else state
            self._event(tx, v, "forget_examples", {"n": len(seqs)})
            self._after_forget(tx, new, head["next_seq"])
        self._adopt(new)
        self.store.vacuum()
        return v

    def set_lambda(self, lam: float) -> int:
        """Fix the ridge λ (no longer chosen by leave-one-out); returns the version."""
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
            raise Invalid("value", "must be a finite λ > 0")
        with self.store.write() as tx:
            v = self._head(tx)["version"] + 1
            self._event(tx, v, "set_lambda", {"lam": float(lam), "fixed": True}, lam=float(lam), lam_fixed=1,
                        calibrated_version=v)
        self._committed(v)
        return v

    # ---- calibration, λ and snapshots (background) -----------------------------------------
    def _calibration_due(self) -> bool:
        """Whether the stored examples or a label's positives grew by ``calib_growth`` since the last fit."""
        g = self.policy.calib_growth
        n = self._state.n_examples if self._state is not None else 0  # as of the last refresh: no table scan
        if n < max(3, self.policy.calib_min_rows):
            return False
        with self.store.read() as tx:
            head = self._head(tx)
            rows = tx.all("SELECT positives, calib FROM labels")
        if n < max(3, self.policy.calib_min_rows):
            return False
        if not head["lam_fixed"] and (head["lam_n"] == 0 or n >= self.policy.lam_growth * head["lam_n"]):
            return any(p >= 2 for p, _ in rows)
        for positives, calib in rows:
            if positives < 2 or n - positives < 2:
                continue
            c = json.loads(calib) if calib else None
            if c is None or c.get("lam") != head["lam"] or positives >= g * c["positives"] or n >= g * c["n"]:
                return True
        return False

    def calibrate(self, lambdas: Sequence[float] | None = None, choose: bool | None = None) -> dict[str, Any]:
        """Fit λ (when chosen) and every label's Platt map on leave-one-out scores; write a ``calibrate`` event.

        ``lambdas``: the grid (default: the ridge core's, 13 values around the mean eigenvalue of G);
        ``choose``: choose λ (default: unless an admin fixed it; True also unfixes it). Returns
        {lam, version, lambdas, loo_map, rows} (version None when another process calibrated first).
        """
        p = self.policy
        with self.store.read() as tx:
            self._learn_dim(tx)
            fmap = self._feature_map()
            state = journal.advance(tx, self._state, fmap)
            head = self._head(tx)
            n = int(tx.one("SELECT COUNT(*) FROM examples")[0])
            if fmap is None or n < 3 or not state.labels:
                raise Conflict("examples", "need at least 3 stored examples and a label to calibrate or choose λ")
            if choose is None:  # λ again when never chosen or the examples grew by lam_growth (eigh of G)
                choose = not head["lam_fixed"] and (head["lam_n"] == 0 or n >= p.lam_growth * head["lam_n"])
            seqs = [r[0] for r in tx.all("SELECT seq FROM examples ORDER BY seq")]
            even = {seqs[int(i)] for i in np.linspace(0, len(seqs) - 1, min(p.calib_rows, len(seqs)))}
            extra: set[int] = set()
            for lid in state.label_ids:
                extra.update(r[0] for r in tx.all("SELECT seq FROM known WHERE label_id = ? AND value = 1 "
                                                  "ORDER BY seq DESC LIMIT ?", (lid, p.calib_per_label)))
            seq_list, X, known, _ = journal.rows_by_seq(tx, even | extra, fmap.d)
            positives = dict(tx.all("SELECT id, positives FROM labels"))
        Y = targets(known, state.label_ids)
        if not Y.any():
            raise Conflict("examples", "no label has a positive example among the stored examples")
        is_even = np.array([s in even for s in seq_list])
        grid = None
        if choose:
            grid = np.asarray(lambdas, dtype=np.float64) if lambdas is not None else \
                ridge.lambda_grid(state.stats.G, p.n_lambdas)
        pos = np.array([positives.get(lid, 0) for lid in state.label_ids], dtype=np.float64)
        try:
            cal = fit_calibration(state.stats.G, state.stats.B, fmap(X), Y, is_even, pos, n, state.lam, grid)
        except ridge.NotPositiveDefinite:
            raise Conflict("lam", "G + λI is not positive definite; set a larger λ (POST /v1/lambda)") from None
        platt = {lid: ab for lid, ab in zip(state.label_ids, cal.platt) if ab is not None}
        version = None
        with self.store.write() as tx:
            head = self._head(tx)
            if head["calibrated_version"] <= state.version:  # nobody calibrated or set λ meanwhile
                live = {int(r[0]): int(r[1]) for r in tx.all("SELECT id, positives FROM labels")}
                platt = {lid: ab for lid, ab in platt.items() if lid in live}
                version = head["version"] + 1
                updates: dict[str, Any] = {"lam": cal.lam, "calibrated_version": version}
                if choose:
                    updates.update(lam_fixed=0, lam_n=n)
                for lid, (a, b) in platt.items():
                    tx.run("UPDATE labels SET calib = ? WHERE id = ?", (json.dumps(
                        {"a": a, "b": b, "n": n, "positives": live[lid], "lam": cal.lam}), lid))
                self._event(tx, version, "calibrate", {"lam": cal.lam, "chosen": bool(choose), "at": state.version,
                                                       "rows": len(seq_list), "platt": {str(k): list(v) for k, v in
                                                                                        platt.items()}}, **updates)
        if version is not None:
            self.counters.calibrations += 1
            self._committed(version)
        return {"lam": cal.lam, "version": version, "lambdas": cal.lambdas, "loo_map": cal.loo_map,
                "rows": len(seq_list)}

    def _snapshot_allowed(self, tx: Tx, state: ModelState) -> bool:
        """A snapshot (D² + D·C floats) is kept only while smaller than ``snapshot_share`` × the stored vectors."""
        d = self.options.d or 0
        vector_bytes = int(tx.one("SELECT COUNT(*) FROM examples")[0]) * d * 4
        return state.stats is not None and state.nbytes <= self.policy.snapshot_share * vector_bytes

    def maybe_snapshot(self, force: bool = False) -> bool:
        """Checkpoint the statistics when enough rows or events accumulated since the base (and the size
        policy allows); prunes the log. Returns whether one was written. Never on a request's path."""
        fmap = self._feature_map()
        if fmap is None:
            return False
        with self.store.read() as tx:
            head = self._head(tx)
            events = head["version"] - head["base_version"]
        rows = head["next_seq"] - head["base_seq"]
        if not force and rows < self.policy.snapshot_rows_per_feature * fmap.D and \
                events < self.policy.snapshot_events:
            return False
        with self.store.write() as tx:
            head = self._head(tx)
            state = self._state_in(tx)
            if not self._snapshot_allowed(tx, state):
                return False
            journal.write_snapshot(tx, state, head["next_seq"])
        self.counters.snapshots += 1
        self.store.vacuum()
        return True

    # ---- reading ---------------------------------------------------------------------------
    def head(self) -> dict[str, Any]:
        """The database's version and counts (one read)."""
        with self.store.read() as tx:
            head = self._head(tx)
            n = int(tx.one("SELECT COUNT(*) FROM examples")[0])
        self.counters.db_version = max(self.counters.db_version, int(head["version"]))
        return {"version": int(head["version"]), "examples": n, "lam": float(head["lam"]),
                "lam_fixed": bool(head["lam_fixed"])}

    def labels(self) -> tuple[int, list[dict[str, Any]]]:
        """(version, the label registry with counts of known positives and explicit negatives)."""
        with self.store.read() as tx:
            version = int(self._head(tx)["version"])
            rows = tx.all("SELECT name, description, threshold, positives, negatives, created_version, calib "
                          "FROM labels ORDER BY id")
        return version, [{"name": r[0], "description": r[1], "threshold": r[2], "positives": int(r[3]),
                          "negatives": int(r[4]), "created_version": int(r[5]), "calibrated": r[6] is not None}
                         for r in rows]

    def predict(self, X: np.ndarray, min_version: int | None = None, wait_s: float = 30.0) -> tuple[Model, np.ndarray]:
        """(model used, n×C ridge scores) from the published model (waits only for ``min_version``)."""
        model = self._model if min_version is None else self.wait_for(min_version, wait_s)
        return model, model.scores(X)

    def check_vectors(self, X: np.ndarray, field_: str = "vectors") -> None:
        """Refuse components too large for the configured scaling (finite float32 is checked by the caller)."""
        if self.options.scaling == "none" and X.size and np.abs(X).max() > MAX_ABS_UNSCALED:
            i, j = np.unravel_index(int(np.abs(X).argmax()), X.shape)
            raise Invalid(f"{field_}[{i}][{j}]", f"|component| over {MAX_ABS_UNSCALED:g} with scaling 'none' "
                                                 "(create the service with scaling 'l2' for such inputs)")

    def suspicious(self, name: str, limit: int = 20, include_absent: bool = False,
                   sample: int = 20000) -> dict[str, Any]:
        """The stored examples whose label ``name`` most likely is wrong (or missing).

        Each example is scored by the model fitted without it — closed-form ridge leave-one-out,
        (ŷ − h·y)/(1 − h) with h = φᵀ(G + λI)⁻¹φ, no refit — turned into a probability by the
        label's Platt map, and ranked by label quality (:func:`mlcil.serve.audit.rank`). Examples
        where the label is known are audited; with ``include_absent`` (or when every known value is
        the same, e.g. a label only ever taught positives) also those where it is absent, which
        the model reads as negatives. At most ``sample`` examples (the latest) are read.
        Returns {version, label, audited, examples}.
        """
        from mlcil.serve.audit import rank

        with self.store.read() as tx:
            self._learn_dim(tx)
            fmap = self._feature_map()
            state = journal.advance(tx, self._state, fmap)
            lid = self._label_id(tx, name)
            values = {int(v) for (v,) in tx.all("SELECT DISTINCT value FROM known WHERE label_id = ?", (lid,))}
            everything = include_absent or len(values) < 2
            sql = "SELECT seq FROM examples ORDER BY seq DESC LIMIT ?" if everything else \
                "SELECT seq FROM known WHERE label_id = ? ORDER BY seq DESC LIMIT ?"
            seqs = [r[0] for r in tx.all(sql, (int(sample),) if everything else (lid, int(sample)))]
            if not seqs or fmap is None or state.stats is None:
                return {"version": state.version, "label": name, "audited": 0, "examples": []}
            _, X, known, ext = journal.rows_by_seq(tx, seqs, fmap.d, with_ids=True)
        col = state.column(lid)
        y = np.array([k.get(lid) == 1 for k in known], dtype=np.float64)
        try:
            factor = ridge.Factor(state.stats.G, state.lam)
        except ridge.NotPositiveDefinite:
            raise Conflict("lam", "G + λI is not positive definite; set a larger λ (POST /v1/lambda)") from None
        W = factor.solve(state.stats.B[:, col:col + 1])  # one column from the one factor
        loo = factor.loo_scores(W, fmap(X), torch.as_tensor(y[:, None])).numpy()[:, 0]
        a, b = state.labels[col].platt or DEFAULT_PLATT
        proba = apply_platt(loo[:, None], np.array([a]), np.array([b]))[:, 0]
        quality, flagged, order = rank(y.astype(bool), proba)
        given = ["positive" if k.get(lid) == 1 else "negative" if k.get(lid) == 0 else "absent" for k in known]
        top = order[:int(limit)]
        return {"version": state.version, "label": name, "audited": int(len(y)),
                "examples": [{"id": ext[i], "given": given[i], "loo_score": float(loo[i]),
                              "loo_proba": float(proba[i]), "quality": float(quality[i]),
                              "flagged": bool(flagged[i])} for i in top]}

    def export_learner(self):
        """The current model as an ``Analytic`` learner (see :func:`mlcil.serve.model.to_learner`)."""
        model = self.refresh()
        with self._lock:
            state = self._state
        if state is None or state.stats is None or model.W is None or model.version != state.version:
            model = Model.build(state, self._fmap)
        if state.stats is None:
            raise Conflict("examples", "the model has no example yet: nothing to export")
        return to_learner(state, self._fmap, model, self.options.seed)


__all__ = ["Counters", "DEFAULTS", "Limits", "Options", "Policy", "ServiceError", "TaggingService", "Unavailable",
           "check_label_name"]
