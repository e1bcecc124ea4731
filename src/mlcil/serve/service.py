"""The tagging service's domain: writes to the log, the published model, predictions, λ, audit, export.

No HTTP (:mod:`mlcil.serve.app` and :mod:`mlcil.serve.routes`), no SQL (:mod:`mlcil.serve.repository`),
no thread of its own (:mod:`mlcil.serve.refresher`), no command-line text (``mlcil.cli``).

**Writes.** Every write request is one database transaction that appends one event and bumps the
model version (:mod:`mlcil.serve.journal`): ``create_label``, ``update_label``, ``teach`` (new
examples, and relabels of stored ones), ``set_lambda``, ``calibrate``, ``forget_label``,
``forget_examples``. A write is acknowledged iff its transaction committed; nothing else (a
snapshot, a refresh, a calibration) runs on its path.

**Predictions never wait for a factorisation.** A background thread per process (the refresher,
:mod:`mlcil.serve.refresher`) follows the database (woken by this process's commits, and polling every ``poll_s`` for other
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

import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from mlcil import ridge
from mlcil.decide.calibration import apply_platt
from mlcil.errors import MlcilError
from mlcil.ridge.calibrate import calibrate as fit_calibration
from mlcil.serve import journal
from mlcil.serve.errors import Conflict, Invalid, NotFound, NotReady, ServiceError, TooLarge, Unavailable
from mlcil.serve.export import to_learner
from mlcil.serve.model import Model
from mlcil.serve.options import (DEFAULTS, SCALINGS, Limits, OptionError, Options, Policy, contradiction,
                                 resolve_include_x, validate)
from mlcil.serve.refresher import REFRESH_SHARE, Refresher
from mlcil.serve.repository import GroupCommit, Store, Tx
from mlcil.serve.state import ModelState, feature_map, targets

log = logging.getLogger("mlcil.serve")

#: with scaling 'none', components above this magnitude are refused (φφᵀ would lose all precision)
MAX_ABS_UNSCALED = 1e6


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


#: a vector re-sent for a stored id is the same when ‖a − b‖ ≤ RETRY_RTOL · max(‖a‖, ‖b‖)
RETRY_RTOL = 1e-3


def same_vector(given, stored: bytes) -> bool:
    """Whether a vector re-sent for a stored example is the stored one (float32 bytes), within :data:`RETRY_RTOL`
    relative L2 distance: a text embedded in another batch differs in the last bits, never by 0.1%."""
    a = np.asarray(given, dtype=np.float64).reshape(-1)
    b = np.frombuffer(stored, dtype=np.float32).astype(np.float64)
    if a.shape != b.shape:
        return False
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    return float(np.linalg.norm(a - b)) <= RETRY_RTOL * scale


#: id prefix of the name examples (a label's name embedding, stored as an example); reserved.
NAME_PREFIX = "@name/"


def _check_name(value: str, field_: str, max_len: int) -> None:
    """Names and ids: 1..max_len characters, no control character, no leading or trailing white space."""
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


def _rank(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(quality, flagged, order) of n examples given one label's values y (bool) and out-of-sample P(y = 1):
    the library's audit (:func:`mlcil.decide.audit.find_label_errors`, one class, ``n_jobs=1``: a web server
    must not fork)."""
    from mlcil.decide.audit import find_label_errors

    result = find_label_errors(y[:, None].astype(np.uint8), np.asarray(proba, dtype=np.float64)[:, None], n_jobs=1)
    return result.quality, result.flagged, result.ranking


class TaggingService:
    """Create labels, teach, relabel, forget, predict over a :class:`Store` (any number of processes)."""

    def __init__(self, store: Store, options: Options | None = None, limits: Limits | None = None,
                 policy: Policy | None = None) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.policy = policy or Policy()
        self.counters = Counters()
        self.options = self._load_options(options or Options())
        self._fmap: ridge.FeatureMap | None = None
        self._lock = threading.Lock()  # guards _state (catch-up)
        self._published = threading.Condition()
        self._state: ModelState | None = None
        self._model = Model.empty()
        self._listeners: list = []  # called with each published model (the predict route's async waiters)
        self._generation = store.generation
        self._label_names: tuple[tuple[int, int, int], dict[str, int]] | None = None  # see _label_ids
        self._snapshot_checked = -1  # the database version maybe_snapshot last looked at
        self.refresher = Refresher(self, self.policy)
        #: teaches of concurrent requests share one transaction and one commit (group commit)
        self.commits = GroupCommit(store, after=self._teaches_committed)
        self.refresh()
        if self.policy.background:
            self.refresher.start()

    def close(self) -> None:
        """Stop the background thread and close the idle connections."""
        self.refresher.stop()
        self.store.close()

    # ---- configuration -------------------------------------------------------------------
    def _load_options(self, requested: Options) -> Options:
        """The database's frame; a new database takes ``requested`` (+ defaults); a contradiction is refused."""
        req = {k: v for k, v in asdict(requested).items() if v is not None}
        validate(req, self.limits)
        with self.store.write() as tx:
            stored = tx.config()
            if "M" not in stored:  # a new database
                frame = {**DEFAULTS, **req}
                if frame["d"] is not None:
                    frame["include_x"] = resolve_include_x(frame["include_x"], frame["d"])
                    self._check_start_memory(frame)
                tx.insert_config(frame)
                if isinstance(frame["lam"], (int, float)):
                    tx.update_model(lam=float(frame["lam"]), lam_fixed=1)
                return Options(**frame)
            if stored.get("d") is None and req.get("d") is not None:
                # no dimension yet (nothing taught): the requested one is the database's from now on
                frame = {**DEFAULTS, **stored}
                include_x = req.get("include_x", frame["include_x"])
                frame.update(d=req["d"], include_x=resolve_include_x(include_x, req["d"]))
                conflict = contradiction({k: v for k, v in req.items() if k not in ("d", "include_x")}, stored,
                                         self.store.url)
                if conflict is not None:
                    raise conflict
                self._check_start_memory(frame)
                tx.set_config("d", int(frame["d"]))
                tx.set_config("include_x", frame["include_x"])
                stored = tx.config()
                req = {k: v for k, v in req.items() if k not in ("d", "include_x")}
        conflict = contradiction(req, stored, self.store.url)
        if conflict is not None:
            raise conflict
        return Options(**{k: stored.get(k, DEFAULTS[k]) for k in DEFAULTS})

    def _check_start_memory(self, frame: dict[str, Any]) -> None:
        """The memory check of a frame at start: an :class:`OptionError` on M (what to lower), saying the largest M
        that fits the budget for this d, instead of the request path's 413."""
        d, M, include_x = frame["d"], frame["M"], frame["include_x"]
        try:
            self._check_memory(d, M, include_x, "d")
        except TooLarge as exc:
            budget = ridge.memory_budget(self.limits.memory_budget)
            fits = 0
            lo, hi = 1, M
            while lo <= hi:  # the largest M within the budget (the need grows with M)
                mid = (lo + hi) // 2
                D = mid + (d if include_x else 0)
                if 3 * D * D * 8 + d * mid * 4 <= budget:
                    fits, lo = mid, mid + 1
                else:
                    hi = mid - 1
            expected = (f"at most {fits} random features for d = {d}" if fits else
                        f"a smaller d (d = {d} alone is over the budget)") + \
                f" within the memory budget of {ridge.format_bytes(budget)} (or a larger $MLCIL_MEMORY_BUDGET)"
            raise OptionError("M", M, exc.message, expected=expected) from None

    def _check_memory(self, d: int, M: int, include_x: bool, field_: str) -> None:
        D = M + (d if include_x else 0)
        try:
            ridge.check_budget("serve", {f"statistics G and their factor (D = {D})": 3 * D * D * 8,
                                         f"random features R ({d}×{M})": d * M * 4}, self.limits.memory_budget,
                               hint="lower the number of random features M, or set include_x false")
        except MlcilError as exc:
            raise TooLarge(field_, str(exc)) from None

    def _feature_map(self) -> ridge.FeatureMap | None:
        """φ once d is known."""
        if self._fmap is None and self.options.d is not None:
            o = self.options
            self._fmap = feature_map(o.d, o.M, o.seed, resolve_include_x(o.include_x, o.d), o.scaling)
        return self._fmap

    def _learn_dim(self, tx: Tx) -> None:
        """Pick up d when another process (or this one) set it."""
        if self.options.d is None:
            cfg = tx.config()
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

    @property
    def state(self) -> ModelState | None:
        """The statistics and label registry this process holds (as of its last catch-up); read-only."""
        return self._state

    @property
    def state_bytes(self) -> int:
        """Bytes of the statistics (G, B) this process holds."""
        state = self._state
        return state.nbytes if state is not None else 0

    def served_version(self) -> int:
        """Version of the published model (-1 once the database file was re-adopted: a restored copy, whose
        history may be shorter; the refresher then rebuilds from it)."""
        return self._model.version if self._generation == self.store.generation else -1

    def latest_version(self) -> int:
        """The database's latest version (one statement)."""
        latest = self.store.latest_version()
        self.counters.db_version = max(self.counters.db_version, latest)
        return latest

    def known_version(self) -> int:
        """The latest database version this process has seen — its own commits included — without a read."""
        return self.counters.db_version

    def refresh(self) -> Model:
        """Catch up with the database now and publish its latest version (blocking; off the request path)."""
        start = time.perf_counter()
        with self._lock:
            with self.store.read() as tx:
                reset = self._generation != self.store.generation  # the file was restored from a copy
                if reset:
                    self._state = None
                    self.counters.db_version = 0
                self._learn_dim(tx)
                state = journal.advance(tx, self._state, self._feature_map())
            self._state = state
            self._generation = self.store.generation
        self.counters.db_version = max(self.counters.db_version, state.version)
        if reset or state.version > self._model.version or self._model.ridge is None and self._fmap is not None:
            self._publish(Model.build(state, self._fmap), force=reset)
        self.counters.refreshes += 1
        self.counters.refresh_seconds += time.perf_counter() - start
        return self._model

    def _publish(self, model: Model, force: bool = False) -> None:
        with self._published:
            if model.version >= self._model.version or force:
                self._model = model
            self._published.notify_all()
        for listener in list(self._listeners):
            listener(self._model)

    def on_publish(self, listener) -> None:
        """Call ``listener(model)`` (from the publishing thread) after each publication."""
        self._listeners.append(listener)

    def writes_in_flight(self) -> int:
        """Versions this process's writes in flight may add: two per open write transaction (a label created
        with its name example is two versions) and one per teach queued for the group commit."""
        return 2 * self.store.writes_in_flight + self.commits.pending

    def version_can_arrive(self, version: int) -> bool:
        """Whether model ``version`` exists or may still come: at most the database's version (one read when
        the last one seen is lower) + what this process's writes in flight may add (:meth:`writes_in_flight`)."""
        if version <= self._model.version or version <= self.counters.db_version:
            return True
        return version <= self.latest_version() + self.writes_in_flight()
    def wait_for(self, version: int, timeout: float = 30.0) -> Model:
        """The published model once it reaches ``version`` (raises :class:`NotReady` after ``timeout``)."""
        model = self._model
        if model.version >= version:
            return model
        if not self.refresher.running:
            return self.refresh() if self.refresh().version >= version else self._not_ready(version)
        self.refresher.wake()
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

    def _teaches_committed(self, results: list[tuple[list[str], int]]) -> None:
        if results:
            self._committed(max(v for _, v in results))

    def _committed(self, version: int) -> None:
        """A write of this process committed: wake the refresher."""
        self.counters.db_version = max(self.counters.db_version, version)
        self.refresher.wake()

    def background_failed(self, exc: BaseException) -> None:
        """Count and log a failure of background work (the refresher calls this; it never raises)."""
        self.counters.background_errors += 1
        self.counters.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("background: %s", self.counters.last_error)

    # ---- writing: one transaction per request ----------------------------------------------
    def _label_id(self, tx: Tx, name: str) -> int:
        """The id of label ``name``; :class:`NotFound` naming the field when there is none."""
        lid = None
        if isinstance(name, str) and "\x00" not in name and len(name) <= self.limits.max_name:
            lid = tx.label_id(name)
        if lid is None:
            raise NotFound("name", f"unknown label {name!r}")
        return lid

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
            head = tx.model_row()
            if tx.label_id(name) is not None:
                raise Conflict("name", f"label {name!r} already exists")
            if tx.count_labels() >= self.limits.max_labels:
                raise TooLarge("name", f"the service holds the maximum of {self.limits.max_labels} labels")
            v, lid = head["version"] + 1, head["next_label_id"]
            tx.insert_label(lid, name, description, threshold, v)
            tx.append_event(v, "create_label", {"id": lid, "name": name, "threshold": threshold},
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
            head = tx.model_row()
            lid = self._label_id(tx, name)
            v = head["version"] + 1
            if "description" in fields:
                tx.set_label_description(lid, description)
            if "threshold" in fields:
                tx.set_label_threshold(lid, threshold)
            tx.append_event(v, "update_label", {"id": lid, "threshold": tx.label_threshold(lid)})
        self._committed(v)
        return v

    def _set_dim(self, tx: Tx, d: int, field_: str) -> None:
        """Check ``d`` against the database's dimension, or set it (first vectors ever), inside the write.

        Reads the config inside the transaction and changes nothing in this object: if the write
        rolls back, no process (this one included) has seen the new dimension."""
        stored = self.options.d if self.options.d is not None else tx.config().get("d")  # d never changes once set
        if stored is not None:
            if d != stored:
                raise Invalid(field_, f"expected embedding dimension {stored}, got {d}")
            return
        if d > self.limits.max_dim:
            raise TooLarge(field_, f"embedding dimension {d} is over the limit of {self.limits.max_dim}")
        include_x = resolve_include_x(self.options.include_x, d)
        self._check_memory(d, self.options.M, include_x, field_)
        tx.set_config("d", int(d))
        tx.set_config("include_x", include_x)

    def teach(self, vectors: Sequence[np.ndarray | None], labels: Sequence[dict[str, int | None]],
              ids: Sequence[str | None]) -> tuple[list[str], int]:
        """Store new examples and relabel stored ones, in one transaction; returns (ids, version).

        Concurrent teaches share one transaction and one commit (:class:`~mlcil.serve.repository.GroupCommit`),
        each in its own savepoint with its own version: a refused teach writes nothing, the others commit.

        Row i: ``vectors[i]`` (d float32, finite; None for a stored id: relabel only), known labels
        ``{name: 1 | 0 | None}`` (1 positive, 0 explicit negative, None: no longer known), and an id
        (None: a new UUID). An id already stored is a **relabel**: the labels given replace the
        stored values of those labels (others stay), and its contribution changes exactly
        (B += φ(y_new − y_old)ᵀ; G unchanged). Its vector, if given, must equal the stored one within
        :data:`RETRY_RTOL` (:func:`same_vector`: an encoder embeds one text to slightly different floats in
        batches of other sizes); the stored vector is kept. Re-sending a batch, or any subset or
        superset of it, is therefore harmless: unchanged rows write nothing. When nothing
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
        ext, v = self.commits.run(lambda tx: self._teach_in(tx, vectors, labels, ext, given, n))
        if given and self.options.d is None:
            self._learn_committed_dim()
        return ext, v

    def _learn_committed_dim(self) -> None:
        """After a committed teach with vectors: learn d now (one read), so the next teaches' checks read nothing."""
        with self.store.read() as tx:
            self._learn_dim(tx)

    def _teach_in(self, tx: Tx, vectors, labels, ext: list[str], given: list[int], n: int) -> tuple[list[str], int]:
        """The writes of one :meth:`teach` (checked input) inside ``tx``; returns (ids, version)."""
        head = tx.model_row()
        if given:
            self._set_dim(tx, len(vectors[given[0]]), f"examples[{given[0]}].vector")
        by_name = self._label_ids(tx, head)
        wanted: list[dict[int, int | None]] = []
        for i, row in enumerate(labels):
            out: dict[int, int | None] = {}
            for name, value in row.items():
                lid = by_name.get(name)
                if lid is None:
                    raise Invalid(f"examples[{i}].labels.{name}", f"unknown label {name!r}; create it first")
                out[lid] = value
            wanted.append(out)
        stored = tx.stored(ext)
        known_now = tx.known_of([s for s, _ in stored.values()]) if stored else {}
        new_rows, known_rows, relabel, counts = [], [], [], {}
        next_seq = head["next_seq"]

        def count(lid: int, value, sign: int) -> None:
            if value is not None:
                pos_neg = counts.setdefault(lid, [0, 0])
                pos_neg[0 if value == 1 else 1] += sign

        for i in range(n):
            if ext[i] in stored:
                seq, vec = stored[ext[i]]
                if vectors[i] is not None and not same_vector(vectors[i], vec):
                    raise Conflict(f"examples[{i}].vector", f"example {ext[i]!r} is stored with another vector "
                                                             f"(differs by more than {RETRY_RTOL:g} relative); "
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
        return ext, v

    def _label_ids(self, tx: Tx, head: dict[str, Any]) -> dict[str, int]:
        """{label name: id} inside a write, read once per label registry: the registry only grows by a label
        creation (which bumps ``next_label_id``) and only shrinks by a label forget (a base of the log: it moves
        ``base_version``), so the map read at the same (file generation, next_label_id, base_version) — by any
        process — is the same."""
        key = (self.store.generation, int(head["next_label_id"]), int(head["base_version"]))
        cached = self._label_names
        if cached is None or cached[0] != key:
            cached = (key, tx.label_ids_by_name())
            self._label_names = cached
        return cached[1]

    @staticmethod
    def _write_teach(tx: Tx, v: int, next_seq: int, new_rows: list, known_rows: list,
                     counts: dict[int, list[int]], relabel: list) -> None:
        """Inside a write: store new rows (seq, ext_id, vector bytes) with their known labels
        (seq, label_id, value), apply relabels [seq, label_id, before, after], add the label counts
        {label_id: [positives, negatives]}, and log it all as the ``teach`` event of version v."""
        for seq, lid, before, after in relabel:
            tx.set_known(seq, lid, before, after)
        tx.write_teach(new_rows, known_rows, counts, v, {"seq": [next_seq, len(new_rows)], "relabel": relabel},
                       next_seq + len(new_rows))

    def _state_in(self, tx: Tx) -> ModelState:
        """The state at the transaction's version (from the one this process holds)."""
        self._learn_dim(tx)
        return journal.advance(tx, self._state, self._feature_map())

    def _after_forget(self, tx: Tx, new: ModelState, next_seq: int) -> None:
        """Make the forget the base of the log: prune, and checkpoint when the size policy allows."""
        if new.stats is not None and self._snapshot_allowed(tx, new):
            journal.write_snapshot(tx, new, next_seq)
        else:
            tx.delete_snapshots()
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
            has_name = bool(tx.stored([NAME_PREFIX + name]))
        if has_name:
            self.forget_examples([NAME_PREFIX + name])
        with self.store.write() as tx:
            head = tx.model_row()
            lid = self._label_id(tx, name)
            v = head["version"] + 1
            new = self._state_in(tx).without_label(v, lid)
            tx.delete_label(lid)
            tx.append_event(v, "forget_label", {"id": lid})
            self._after_forget(tx, new, head["next_seq"])
        self._adopt(new)
        self.store.vacuum()
        return v

    def forget_examples(self, ids: list[str]) -> int:
        """Remove examples exactly: subtract their φφᵀ and φyᵀ, delete their rows. Returns the version.

        Idempotent: an id that is not stored (never taught, or already forgotten — e.g. a retry after a
        lost reply) is not an error; it is absent afterwards, as asked. When none of the ids is stored,
        nothing is written and the current version is returned. :meth:`forget_report` also says which ids
        were removed. An id that could never be stored (control characters, too long) is :class:`Invalid`.
        """
        return self.forget_report(ids)[0]

    def forget_report(self, ids: list[str]) -> tuple[int, list[str], list[str]]:
        """:meth:`forget_examples`, returning (version, ids removed now, ids that were not stored)."""
        for i, e in enumerate(ids):
            if not isinstance(e, str):
                raise Invalid(f"ids[{i}]", "expected an example id (a string)")
            try:
                _check_name(e, f"ids[{i}]", self.limits.max_name)
            except TooLarge as exc:
                raise Invalid(exc.field, exc.message) from None
        with self.store.write() as tx:
            head = tx.model_row()
            found = tx.stored(list(ids))
            removed = list(dict.fromkeys(e for e in ids if e in found))
            absent = list(dict.fromkeys(e for e in ids if e not in found))
            if not removed:
                return int(head["version"]), [], absent
            v = head["version"] + 1
            state = self._state_in(tx)
            seqs = sorted({found[e][0] for e in removed})
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
                        pos.setdefault(lid, [0, 0])[0 if value == 1 else 1] -= 1
                tx.add_label_counts(pos)
                tx.delete_examples(part)
            new = state.with_stats(v, stats) if stats is not None else state
            tx.append_event(v, "forget_examples", {"n": len(seqs)})
            self._after_forget(tx, new, head["next_seq"])
        self._adopt(new)
        self.store.vacuum()
        return v, removed, absent

    def set_lambda(self, lam: float) -> int:
        """Fix the ridge λ (no longer chosen by leave-one-out); returns the version."""
        if not (isinstance(lam, (int, float)) and np.isfinite(lam) and lam > 0):
            raise Invalid("value", "must be a finite λ > 0")
        with self.store.write() as tx:
            v = tx.model_row()["version"] + 1
            tx.append_event(v, "set_lambda", {"lam": float(lam), "fixed": True}, lam=float(lam), lam_fixed=1,
                            calibrated_version=v)
        self._committed(v)
        return v

    # ---- calibration, λ and snapshots (background) -----------------------------------------
    def calibration_due(self) -> bool:
        """Whether the stored examples or a label's positives grew by ``calib_growth`` since the last fit."""
        g = self.policy.calib_growth
        n = self._state.n_examples if self._state is not None else 0  # as of the last refresh: no table scan
        if n < max(3, self.policy.calib_min_rows):
            return False
        with self.store.read() as tx:
            head = tx.model_row()
            rows = tx.label_calibrations()
        if not head["lam_fixed"] and (head["lam_n"] == 0 or n >= self.policy.lam_growth * head["lam_n"]):
            return any(p >= 2 for p, _ in rows)
        for positives, c in rows:
            if positives < 2 or n - positives < 2:
                continue
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
            head = tx.model_row()
            seqs = tx.example_seqs()
            n = len(seqs)
            if fmap is None or n < 3 or not state.labels:
                raise Conflict("examples", "need at least 3 stored examples and a label to calibrate or choose λ")
            if choose is None:  # λ again when never chosen or the examples grew by lam_growth (eigh of G)
                choose = not head["lam_fixed"] and (head["lam_n"] == 0 or n >= p.lam_growth * head["lam_n"])
            even = {seqs[int(i)] for i in np.linspace(0, len(seqs) - 1, min(p.calib_rows, len(seqs)))}
            extra: set[int] = set()
            for lid in state.label_ids:
                extra.update(tx.latest_positive_seqs(lid, p.calib_per_label))
            seq_list, X, known, _ = journal.rows_by_seq(tx, even | extra, fmap.d)
            positives = tx.label_positives()
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
            head = tx.model_row()
            if head["calibrated_version"] <= state.version:  # nobody calibrated or set λ meanwhile
                live = tx.label_positives()
                platt = {lid: ab for lid, ab in platt.items() if lid in live}
                version = head["version"] + 1
                updates: dict[str, Any] = {"lam": cal.lam, "calibrated_version": version}
                if choose:
                    updates.update(lam_fixed=0, lam_n=n)
                for lid, (a, b) in platt.items():
                    tx.set_label_calibration(lid, {"a": a, "b": b, "n": n, "positives": live[lid], "lam": cal.lam})
                tx.append_event(version, "calibrate", {"lam": cal.lam, "chosen": bool(choose), "at": state.version,
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
        vector_bytes = tx.count_examples() * d * 4
        return state.stats is not None and state.nbytes <= self.policy.snapshot_share * vector_bytes

    def maybe_snapshot(self, force: bool = False) -> bool:
        """Checkpoint the statistics when enough rows or events accumulated since the base (and the size
        policy allows); prunes the log. Returns whether one was written. Never on a request's path."""
        fmap = self._feature_map()
        if fmap is None or (not force and self.counters.db_version == self._snapshot_checked):
            return False  # nothing was written since the last look (by this process, or seen of others')
        with self.store.read() as tx:
            head = tx.model_row()
        self._snapshot_checked = int(head["version"])
        events = head["version"] - head["base_version"]
        rows = head["next_seq"] - head["base_seq"]
        if not force and rows < self.policy.snapshot_rows_per_feature * fmap.D and \
                events < self.policy.snapshot_events:
            return False
        return self.checkpoint(respect_size=True)

    def checkpoint(self, respect_size: bool = False) -> bool:
        """Write a snapshot of the statistics at the latest version now and prune the log before it
        (``respect_size``: only when the size policy allows). Returns whether one was written."""
        if self._feature_map() is None:
            return False
        with self.store.write() as tx:
            head = tx.model_row()
            state = self._state_in(tx)
            if state.stats is None or (respect_size and not self._snapshot_allowed(tx, state)):
                return False
            journal.write_snapshot(tx, state, head["next_seq"])
        self.counters.snapshots += 1
        self.store.vacuum()
        return True

    # ---- reading ---------------------------------------------------------------------------
    def head(self) -> dict[str, Any]:
        """The database's version and counts (one read)."""
        with self.store.read() as tx:
            head = tx.model_row()
            n = tx.count_examples()
        self.counters.db_version = max(self.counters.db_version, int(head["version"]))
        return {"version": int(head["version"]), "examples": n, "lam": float(head["lam"]),
                "lam_fixed": bool(head["lam_fixed"])}

    def labels(self) -> tuple[int, list[dict[str, Any]]]:
        """(version, the label registry with counts of known positives and explicit negatives)."""
        with self.store.read() as tx:
            version = tx.version()
            listing = tx.label_listing()
        return version, listing

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
        label's Platt map, and ranked by label quality (:func:`mlcil.decide.audit.find_label_errors`,
        cleanlab without a process pool). Examples
        where the label is known are audited; with ``include_absent`` (or when every known value is
        the same, e.g. a label only ever taught positives) also those where it is absent, which
        the model reads as negatives. At most ``sample`` examples (the latest) are read.
        Returns {version, label, audited, examples}.
        """
        with self.store.read() as tx:
            self._learn_dim(tx)
            fmap = self._feature_map()
            state = journal.advance(tx, self._state, fmap)
            lid = self._label_id(tx, name)
            everything = include_absent or len(tx.known_values(lid)) < 2
            seqs = tx.latest_seqs(int(sample), None if everything else lid)
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
        loo = factor.loo_scores(W, fmap(X), y[:, None])[:, 0]
        a, b = state.labels[col].platt or ridge.DEFAULT_PLATT
        proba = apply_platt(loo[:, None], np.array([a]), np.array([b]))[:, 0]
        quality, flagged, order = _rank(y.astype(bool), proba)
        given = ["positive" if k.get(lid) == 1 else "negative" if k.get(lid) == 0 else "absent" for k in known]
        top = order[:int(limit)]
        return {"version": state.version, "label": name, "audited": int(len(y)),
                "examples": [{"id": ext[i], "given": given[i], "loo_score": float(loo[i]),
                              "loo_proba": float(proba[i]), "quality": float(quality[i]),
                              "flagged": bool(flagged[i])} for i in top]}

    def export_learner(self):
        """The current model as an ``Analytic`` learner (see :func:`mlcil.serve.model.to_learner`).

        Raises :class:`Conflict` when there is nothing to export: no example, or no label."""
        model = self.refresh()
        with self._lock:
            state = self._state
        if state is None or state.stats is None:
            raise Conflict("examples", "the model has no example yet: nothing to export")
        if not state.labels:
            raise Conflict("labels", "the model has no label: nothing to export (create a label and teach it)")
        if model.ridge is None or model.version != state.version:
            model = Model.build(state, self._fmap)
        try:
            return to_learner(state, model, self.options.seed)
        except (MlcilError, ValueError) as exc:  # e.g. NotFittedError: examples but nothing the learner can fit
            raise Conflict("labels", f"nothing to export: {exc}") from None


__all__ = ["Counters", "DEFAULTS", "Limits", "NAME_PREFIX", "OptionError", "Options", "Policy", "REFRESH_SHARE",
           "SCALINGS", "ServiceError", "TaggingService", "Unavailable", "check_label_name"]
