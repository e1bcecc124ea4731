"""The tagging service's repository: every SQL statement of the service, SQLite (default) or PostgreSQL.

Nothing outside this module writes SQL. :class:`Store` is the database (a small connection pool);
each transaction is a :class:`Tx` whose methods are named after what they read or change
(``labels``, ``insert_examples``, ``append_event``, ...); they know no ridge math and no HTTP.

A small connection pool (one connection per transaction in flight). Two kinds of transaction:

- :meth:`Store.write` — serialises writers *on the database* (SQLite ``BEGIN IMMEDIATE``;
  PostgreSQL ``SELECT ... FOR UPDATE`` of the single ``model`` row), so two service
  processes on one database append to one ordered log;
- :meth:`Store.read` — a consistent snapshot (SQLite WAL read transaction; PostgreSQL
  ``REPEATABLE READ READ ONLY``).

SQL is written once with ``?`` placeholders and ``{blob}``/``{bigint}`` type names; the
PostgreSQL dialect rewrites them. SQLite runs in WAL mode with ``synchronous=FULL``, so an
acknowledged (committed) write survives kill -9 and power loss.

The schema is created only when the store is opened, never later: a SQLite file deleted (or
replaced) while the service runs is detected before every commit and every later connection
opens the file without creating it, and PostgreSQL tables dropped underneath give errors. Driver
errors leave this module as :class:`~mlcil.serve.errors.Unavailable` (retry later; nothing was
written) or :class:`~mlcil.serve.errors.StorageFull` (the disk, or ``max_pages``, is full).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import defaultdict
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

from mlcil.errors import MlcilError
from mlcil.serve.errors import ServiceError, StorageFull, Unavailable

#: SQLite is rewritten (VACUUM) after a forget when less than this share of the file holds data
COMPACT_BELOW = 0.7
#: version of the table layout below, stored in ``config``; another value is refused at open
FORMAT = 2

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # one row: the model version (= last event), the version up to which the log was pruned (base)
    # and the next seq then, the next ids to hand out, the ridge λ, whether an admin fixed it, the
    # number of examples when it was last chosen, the version of the last λ or calibration change
    "CREATE TABLE IF NOT EXISTS model (id INTEGER PRIMARY KEY, version {bigint} NOT NULL, "
    "base_version {bigint} NOT NULL, base_seq {bigint} NOT NULL, next_label_id {bigint} NOT NULL, "
    "next_seq {bigint} NOT NULL, lam DOUBLE PRECISION NOT NULL, lam_fixed INTEGER NOT NULL, lam_n {bigint} NOT NULL, "
    "calibrated_version {bigint} NOT NULL)",
    # calib: JSON {"a", "b", "n", "positives"} of the label's Platt map, or NULL (default map)
    "CREATE TABLE IF NOT EXISTS labels (id {bigint} PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT, "
    "threshold DOUBLE PRECISION, positives {bigint} NOT NULL, negatives {bigint} NOT NULL, "
    "created_version {bigint} NOT NULL, calib TEXT)",
    # one row per stored example: its float32 vector
    "CREATE TABLE IF NOT EXISTS examples (seq {bigint} PRIMARY KEY, ext_id TEXT NOT NULL UNIQUE, "
    "vector {blob} NOT NULL)",
    # the labels known for each example now (1 positive, 0 explicit negative)
    "CREATE TABLE IF NOT EXISTS known (seq {bigint} NOT NULL, label_id {bigint} NOT NULL, value INTEGER NOT NULL, "
    "PRIMARY KEY (seq, label_id)){without_rowid}",
    "CREATE INDEX IF NOT EXISTS known_label ON known (label_id)",
    # every write is one event; version = event number; events at or before base_version are pruned
    "CREATE TABLE IF NOT EXISTS events (version {bigint} PRIMARY KEY, kind TEXT NOT NULL, detail TEXT NOT NULL)",
    # at most one checkpoint of the statistics (float64 bytes), at base_version
    "CREATE TABLE IF NOT EXISTS snapshots (version {bigint} PRIMARY KEY, D {bigint} NOT NULL, G {blob} NOT NULL, "
    "B {blob} NOT NULL, meta TEXT NOT NULL, n_examples {bigint} NOT NULL)",
)


def _driver_error(exc: BaseException) -> Exception | None:
    """The service error for a database driver exception (None: not a driver error)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, sqlite3.Error):
        low = text.lower()
        if "full" in low:
            return StorageFull("db", f"the database is full, nothing was written: {text}")
        if "no such table" in low:
            return Unavailable("db", f"the database lost its tables (deleted or replaced?): {text}")
        return Unavailable("db", f"database unavailable, retry: {text}")
    module = type(exc).__module__
    if module.startswith("psycopg"):
        name = type(exc).__name__
        if name in ("DiskFull", "OutOfMemory", "ProgramLimitExceeded"):
            return StorageFull("db", f"the database is full, nothing was written: {text}")
        if name == "UndefinedTable":
            return Unavailable("db", f"the database lost its tables (dropped?): {text}")
        if name in ("OperationalError", "InterfaceError", "InternalError") or "Connection" in name:
            return Unavailable("db", f"database unavailable, retry: {text}")
        return Unavailable("db", f"database error, nothing was written: {text}")
    return None


class Store:
    """A database URL -> a small pool of connections and the two transaction kinds.

    URLs: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, a bare path (SQLite), or
    ``postgresql://user@host:port/db`` (psycopg 3; libpq URI options such as
    ``?options=-csearch_path%3Dmyschema`` pass through). ``created`` tells whether opening made a
    new database. ``max_pages`` (SQLite only) caps the file at that many pages
    (``PRAGMA max_page_count``; the fault tests use it as a small disk).
    """

    def __init__(self, url: str, busy_timeout_s: float = 60.0, max_idle: int = 8, max_pages: int | None = None) -> None:
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self.max_idle = max_idle
        self.max_pages = max_pages
        self._idle: list = []
        self._pool_lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self.db_id: str | None = None  # the database's random id (config 'db_id'): a restored copy has the same
        #: bumped each time the SQLite file was re-adopted (a restored copy): holders of state rebuild it
        self.generation = 0
        self.writes_in_flight = 0
        if url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self.path = None
        else:
            self.dialect = "sqlite"
            path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
            if url.startswith("sqlite:") and not url.startswith("sqlite:///"):
                raise MlcilError(f"db: expected sqlite:///path.db or postgresql://..., got {url!r}")
            if not path or path == ":memory:":
                raise MlcilError("db: expected a SQLite file path (an in-memory database cannot be shared)")
            self.path = path
            if not Path(path).parent.exists():
                raise MlcilError(f"db: folder {Path(path).parent} does not exist")
        try:
            self.created = self._init_schema()
        except MlcilError:
            raise
        except Exception as exc:
            if _driver_error(exc) is not None:
                raise MlcilError(f"db: cannot use {url}: {str(exc).strip()}") from exc
            raise

    # ---- connections ---------------------------------------------------------------------
    def _connect(self, create: bool = False):
        if self.dialect == "sqlite":
            mode = "rwc" if create else "rw"  # after start-up, never create a file that vanished
            uri = f"file:{quote(os.path.abspath(self.path))}?mode={mode}"
            conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            if create:  # both take effect on a new file only
                # a 2 KB vector (d = 512) fills half a 4 KB page and leaves the rest unused: 16 KB pages
                # hold seven such rows (measured: the default made the file 2.2× the vectors)
                conn.execute("PRAGMA page_size=16384")
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA journal_size_limit={64 << 20}")
            if self.max_pages:
                conn.execute(f"PRAGMA max_page_count={int(self.max_pages)}")
            return conn
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection for one transaction; the caller ends the transaction."""
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
            generation = self.generation
        if conn is None:
            try:
                conn = self._connect()
            except Exception as exc:
                err = _driver_error(exc)
                if err is None:
                    raise
                raise err from exc
        healthy = True
        try:
            yield conn
        except BaseException as exc:
            healthy = self._rollback(conn)
            err = _driver_error(exc)
            if err is not None:
                raise err from exc
            raise
        finally:
            with self._pool_lock:
                keep = healthy and len(self._idle) < self.max_idle and generation == self.generation
                if keep:
                    self._idle.append(conn)
            if not keep:
                self._close(conn)

    def close(self) -> None:
        """Close the idle connections (connections in use close when given back over the limit)."""
        with self._pool_lock:
            conns, self._idle = self._idle, []
        for conn in conns:
            self._close(conn)

    @staticmethod
    def _close(conn) -> None:
        try:
            conn.close()
        except Exception:  # already closed or broken: nothing left to release
            pass

    def sql(self, statement: str) -> str:
        """Dialect rewrite: placeholders and type names."""
        if self.dialect == "postgresql":
            return statement.replace("?", "%s").format(blob="BYTEA", bigint="BIGINT", without_rowid="")
        return statement.format(blob="BLOB", bigint="INTEGER", without_rowid=" WITHOUT ROWID")

    def _check_identity(self) -> None:
        """Raise :class:`Unavailable` when the SQLite file at ``path`` is not the one opened at start.

        A copy of that database put back at ``path`` (a restored backup: same ``db_id`` in its config)
        is re-adopted: the pooled connections to the old file are dropped and :attr:`generation` is
        bumped, so that the service rebuilds its state from the restored file."""
        if self.dialect != "sqlite" or self._identity is None:
            return
        try:
            st = os.stat(self.path)
        except OSError:
            raise Unavailable("db", f"the database file {self.path} was deleted while the service runs; nothing was "
                                    "written (restore a copy of it at the same path: the service adopts it, or "
                                    "restart the service to start a new one)") from None
        if (st.st_dev, st.st_ino) != self._identity:
            if self._readopt(st):
                return
            raise Unavailable("db", f"the database file {self.path} was replaced while the service runs by "
                                    "another database; nothing was written (put a copy of the original back, or "
                                    "restart the service to open the new file)")

    def _readopt(self, st) -> bool:
        """Adopt the file now at ``path`` when it is a copy of this database (same ``db_id``); True if adopted."""
        with self._pool_lock:
            if (st.st_dev, st.st_ino) == self._identity:
                return True  # another thread adopted it meanwhile
            try:
                conn = self._connect()
                try:
                    row = conn.execute("SELECT value FROM config WHERE key = 'db_id'").fetchone()
                finally:
                    self._close(conn)
            except Exception:  # not a database of ours (or unreadable)
                return False
            if row is None or self.db_id is None or json.loads(row[0]) != self.db_id:
                return False
            stale, self._idle = self._idle, []
            self._identity = (st.st_dev, st.st_ino)
            self.generation += 1
        for old in stale:
            self._close(old)
        return True

    # ---- transactions --------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator["Tx"]:
        """A write transaction holding the database-wide writer lock; commits on success."""
        self._check_identity()
        with self._pool_lock:
            self.writes_in_flight += 1
        try:
            generation = self.generation
            with self._connection() as conn:
                tx = Tx(self, conn)
                if self.dialect == "postgresql":  # BEGIN and the writer lock, whose row is the transaction's head
                    tx.begin_write()
                else:
                    conn.execute("BEGIN IMMEDIATE")
                yield tx
                self._check_identity()  # never acknowledge a write that went to a deleted file
                if generation != self.generation:
                    raise Unavailable("db", "the database file was restored from a copy during this write; "
                                            "nothing was written, retry")
                conn.execute("COMMIT")
        finally:
            with self._pool_lock:
                self.writes_in_flight -= 1

    def latest_version(self) -> int:
        """The model version now: one statement outside any transaction (the refresher's poll)."""
        self._check_identity()
        with self._connection() as conn:
            return int(conn.execute("SELECT version FROM model WHERE id = 1").fetchone()[0])

    @contextmanager
    def read(self) -> Iterator["Tx"]:
        """A read-only transaction over one consistent snapshot of the database."""
        self._check_identity()
        with self._connection() as conn:
            conn.execute("BEGIN" if self.dialect == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield Tx(self, conn)
            conn.execute("ROLLBACK")

    @staticmethod
    def _rollback(conn) -> bool:
        """Roll back an open transaction; False when the connection is unusable."""
        try:
            conn.execute("ROLLBACK")
            return True
        except Exception as exc:  # no transaction open (fine), or the connection is broken
            return "no transaction" in str(exc).lower()

    def vacuum(self) -> None:
        """Reclaim the space of deleted rows (after a forget or a snapshot).

        SQLite: free pages go back to the file system (``incremental_vacuum``), and when less than
        :data:`COMPACT_BELOW` of the file's bytes hold data (pages left half-empty by forgetting every
        other example: the free list stays empty), the file is rewritten (``VACUUM``), so the file
        stays within 1 / COMPACT_BELOW of the bytes it needs. PostgreSQL: ``VACUUM`` of the tables
        rows are deleted from, so the next inserts reuse their space (the tables stay within their
        largest size; trailing empty pages go back to the file system)."""
        if self.dialect != "sqlite":
            with self._connection() as conn:
                conn.execute("VACUUM examples, known, events, snapshots")
            return
        with self._connection() as conn:
            conn.execute("PRAGMA incremental_vacuum")
            if self.fill_ratio(conn) < COMPACT_BELOW:
                conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @staticmethod
    def fill_ratio(conn) -> float:
        """SQLite: the share of the file's bytes that hold data (1.0 when unknown: no ``dbstat``)."""
        try:
            used = conn.execute("SELECT SUM(pgsize - unused) FROM dbstat").fetchone()[0] or 0
        except sqlite3.Error:  # SQLite built without the dbstat table
            return 1.0
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return float(used) / max(pages * size, 1)

    def size_bytes(self) -> int:
        """Bytes the database takes on disk (SQLite: file + WAL; PostgreSQL: the service's tables)."""
        if self.dialect == "sqlite":
            return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))
        with self.read() as tx:
            return int(sum(tx.one("SELECT pg_total_relation_size(?::regclass)", (t,))[0]
                           for t in ("config", "model", "labels", "examples", "known", "events", "snapshots")))

    def _init_schema(self) -> bool:
        """Create the tables when absent; True when this made a new database."""
        conn = self._connect(create=True)
        try:
            conn.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            if self.dialect == "postgresql":
                conn.execute("SELECT pg_advisory_xact_lock(727274)")  # two processes creating the schema at once
            for statement in SCHEMA:
                conn.execute(self.sql(statement))
            row = conn.execute(self.sql("SELECT value FROM config WHERE key = 'format'")).fetchone()
            used = conn.execute(self.sql("SELECT COUNT(*) FROM config")).fetchone()[0]
            if used and (row is None or row[0] != str(FORMAT)):
                conn.execute("ROLLBACK")
                raise MlcilError(f"db: {self.url} was written by another mlcil version (table format "
                                 f"{row[0] if row else 1}, this one reads {FORMAT}); use a new database")
            cur = conn.execute(self.sql(
                "INSERT INTO model (id, version, base_version, base_seq, next_label_id, next_seq, lam, lam_fixed, "
                "lam_n, calibrated_version) VALUES (1, 0, 0, 1, 1, 1, 1.0, 0, 0, 0) ON CONFLICT (id) DO NOTHING"))
            created = cur.rowcount == 1
            if created:
                conn.execute(self.sql("INSERT INTO config (key, value) VALUES ('format', ?)"), (str(FORMAT),))
            # the database's identity (a restored copy keeps it; older databases get one now)
            conn.execute(self.sql("INSERT INTO config (key, value) VALUES ('db_id', ?) ON CONFLICT (key) DO NOTHING"),
                         (json.dumps(uuid.uuid4().hex),))
            self.db_id = json.loads(conn.execute(self.sql("SELECT value FROM config WHERE key = 'db_id'")).fetchone()[0])
            conn.execute("COMMIT")
        finally:
            if self.dialect == "sqlite":
                st = os.stat(self.path)
                self._identity = (st.st_dev, st.st_ino)
            self._close(conn)
        return bool(created)


#: columns of the one-row ``model`` table, in :meth:`Tx.model_row` order
MODEL_COLUMNS = ("version", "base_version", "base_seq", "next_label_id", "next_seq", "lam", "lam_fixed", "lam_n",
                 "calibrated_version")
#: rows per ``IN (...)`` list
IN_CHUNK = 500


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


#: PostgreSQL: add (positives, negatives) to the labels' counts, one statement over three arrays (ids, positives,
#: negatives: :func:`_count_arrays`), alone (:meth:`Tx.add_label_counts`) or as a CTE of a teach (:meth:`Tx.write_teach`)
PG_ADD_LABEL_COUNTS = ("UPDATE labels SET positives = labels.positives + v.p, negatives = labels.negatives + v.n "
                       "FROM unnest(?::bigint[], ?::bigint[], ?::bigint[]) AS v(id, p, n) WHERE labels.id = v.id")


def _count_arrays(counts: dict[int, Sequence[int]]) -> tuple[list[int], list[int], list[int]]:
    """{label id: (positives, negatives)} as :data:`PG_ADD_LABEL_COUNTS`'s three arrays, by label id."""
    lids = sorted(counts)
    return [int(lid) for lid in lids], [int(counts[lid][0]) for lid in lids], [int(counts[lid][1]) for lid in lids]


class Tx:
    """One transaction: named reads and writes of the service's tables (and ``one``/``all``/``run``/``many``)."""

    def __init__(self, store: Store, conn) -> None:
        self.store = store
        self.conn = conn
        #: the ``model`` row as this transaction last read or wrote it (every change goes through
        #: :meth:`update_model`; a rolled-back savepoint forgets it)
        self._head: dict[str, Any] | None = None

    # ---- raw statements ------------------------------------------------------------------
    def run(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Execute; returns the number of rows changed."""
        return self.conn.execute(self.store.sql(statement), tuple(params)).rowcount

    def many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.store.dialect == "sqlite":
            self.conn.executemany(self.store.sql(statement), rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self.store.sql(statement), rows)

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.conn.execute(self.store.sql(statement), tuple(params)).fetchall())

    def one(self, statement: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.conn.execute(self.store.sql(statement), tuple(params)).fetchone()

    # ---- config and the model row ----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The ``config`` table (JSON values), without the table format."""
        return {k: json.loads(v) for k, v in self.all("SELECT key, value FROM config") if k not in ("format", "db_id")}

    def insert_config(self, values: dict[str, Any]) -> None:
        """Write the frame of a new database (JSON values)."""
        self.many("INSERT INTO config (key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

    def set_config(self, key: str, value: Any) -> None:
        self.run("UPDATE config SET value = ? WHERE key = ?", (json.dumps(value), key))

    def begin_write(self) -> None:
        """PostgreSQL: open the transaction and take the writer lock (``SELECT ... FOR UPDATE`` of the ``model``
        row, kept as the transaction's head) in one round trip (a statement without parameters may hold two)."""
        cur = self.conn.execute(f"BEGIN; SELECT {', '.join(MODEL_COLUMNS)} FROM model WHERE id = 1 FOR UPDATE",
                                prepare=False)
        cur.nextset()
        self._head = dict(zip(MODEL_COLUMNS, cur.fetchone()))

    def model_row(self) -> dict[str, Any]:
        """The one-row ``model`` table as a dict (:data:`MODEL_COLUMNS`): read once per transaction, then kept up to
        date by :meth:`update_model`."""
        if self._head is None:
            row = self.one(f"SELECT {', '.join(MODEL_COLUMNS)} FROM model WHERE id = 1")
            self._head = dict(zip(MODEL_COLUMNS, row))
        return dict(self._head)

    def version(self) -> int:
        """The latest model version (= the last event)."""
        if self._head is not None:
            return int(self._head["version"])
        return int(self.one("SELECT version FROM model WHERE id = 1")[0])

    def update_model(self, **values: Any) -> None:
        """Set columns of the ``model`` row (names from :data:`MODEL_COLUMNS`)."""
        if values:
            self.run(*self._model_update(values))
            self._noted(values)

    def _model_update(self, values: dict[str, Any], before: str = "", params: Sequence[Any] = ()) -> tuple:
        """(statement, parameters) setting ``values`` in the ``model`` row, after the CTE ``before`` (PostgreSQL)."""
        bad = set(values) - set(MODEL_COLUMNS)
        if bad:
            raise ValueError(f"model: unknown columns {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in values)
        return f"{before}UPDATE model SET {sets} WHERE id = 1", (*params, *values.values())

    def _noted(self, values: dict[str, Any]) -> None:
        if self._head is not None:
            self._head.update(values)

    # ---- savepoints (one work of a group commit) ---------------------------------------------
    def savepoint(self) -> None:
        self.run("SAVEPOINT work")

    def rollback_savepoint(self) -> None:
        """Undo everything since :meth:`savepoint` (and forget the model row read since)."""
        self.run("ROLLBACK TO SAVEPOINT work")
        self._head = None

    def release_savepoint(self) -> None:
        self.run("RELEASE SAVEPOINT work")

    # ---- events ----------------------------------------------------------------------------
    def append_event(self, version: int, kind: str, detail: dict[str, Any], **model_updates: Any) -> None:
        """Log event ``version`` and make it the model version (with ``model_updates`` to the model row)."""
        event = ("INSERT INTO events (version, kind, detail) VALUES (?, ?, ?)", (version, kind, json.dumps(detail)))
        values = {"version": version, **model_updates}
        if self.store.dialect == "postgresql":  # one statement (one round trip): the insert as a CTE
            self.run(*self._model_update(values, f"WITH event AS ({event[0]}) ", event[1]))
            self._noted(values)
        else:
            self.run(*event)
            self.update_model(**values)

    def events_after(self, version: int) -> list[tuple[int, str, dict[str, Any]]]:
        """(version, kind, detail) of the events after ``version``, in order."""
        return [(int(v), kind, json.loads(detail)) for v, kind, detail in
                self.all("SELECT version, kind, detail FROM events WHERE version > ? ORDER BY version", (version,))]

    def event_details(self) -> list[str]:
        """The JSON detail of every event still logged (tests check what the log keeps)."""
        return [r[0] for r in self.all("SELECT detail FROM events")]

    def count_events(self) -> int:
        return int(self.one("SELECT COUNT(*) FROM events")[0])

    def prune(self, version: int, next_seq: int) -> None:
        """Make ``version`` the base: delete the events at or before it (and snapshots older than it)."""
        self.run("DELETE FROM events WHERE version <= ?", (version,))
        self.run("DELETE FROM snapshots WHERE version < ?", (version,))
        self.update_model(base_version=version, base_seq=next_seq)

    # ---- snapshots -------------------------------------------------------------------------
    def snapshot(self) -> tuple[int, int, bytes, bytes, str, int] | None:
        """The latest checkpoint (version, D, G bytes, B bytes, meta JSON, n_examples), or None."""
        row = self.one("SELECT version, D, G, B, meta, n_examples FROM snapshots ORDER BY version DESC LIMIT 1")
        if row is None:
            return None
        version, D, G, B, meta, n = row
        return int(version), int(D), bytes(G), bytes(B), meta, int(n)

    def replace_snapshot(self, version: int, D: int, G: bytes, B: bytes, meta: str, n_examples: int) -> None:
        """Keep this checkpoint only."""
        self.run("DELETE FROM snapshots")
        self.run("INSERT INTO snapshots (version, D, G, B, meta, n_examples) VALUES (?, ?, ?, ?, ?, ?)",
                 (version, D, G, B, meta, n_examples))

    def delete_snapshots(self) -> None:
        self.run("DELETE FROM snapshots")

    def count_snapshots(self) -> int:
        return int(self.one("SELECT COUNT(*) FROM snapshots")[0])

    # ---- labels ----------------------------------------------------------------------------
    def label_rows(self) -> list[tuple[int, str, float | None, dict[str, Any] | None]]:
        """(id, name, threshold, calibration JSON or None) of every label, in id order (= column order)."""
        return [(int(lid), name, threshold, json.loads(calib) if calib else None) for lid, name, threshold, calib in
                self.all("SELECT id, name, threshold, calib FROM labels ORDER BY id")]

    def label_listing(self) -> list[dict[str, Any]]:
        """Every label with its description, counts, creation version and whether it is calibrated, in id order."""
        rows = self.all("SELECT name, description, threshold, positives, negatives, created_version, calib "
                        "FROM labels ORDER BY id")
        return [{"name": r[0], "description": r[1], "threshold": r[2], "positives": int(r[3]), "negatives": int(r[4]),
                 "created_version": int(r[5]), "calibrated": r[6] is not None} for r in rows]

    def label_id(self, name: str) -> int | None:
        row = self.one("SELECT id FROM labels WHERE name = ?", (name,))
        return None if row is None else int(row[0])

    def label_ids_by_name(self) -> dict[str, int]:
        return {name: int(lid) for lid, name in self.all("SELECT id, name FROM labels")}

    def count_labels(self) -> int:
        return int(self.one("SELECT COUNT(*) FROM labels")[0])

    def insert_label(self, lid: int, name: str, description: str | None, threshold: float | None,
                     version: int) -> None:
        self.run("INSERT INTO labels (id, name, description, threshold, positives, negatives, created_version) "
                 "VALUES (?, ?, ?, ?, 0, 0, ?)", (lid, name, description, threshold, version))

    def set_label_description(self, lid: int, description: str | None) -> None:
        self.run("UPDATE labels SET description = ? WHERE id = ?", (description, lid))

    def set_label_threshold(self, lid: int, threshold: float | None) -> None:
        self.run("UPDATE labels SET threshold = ? WHERE id = ?", (threshold, lid))

    def label_threshold(self, lid: int) -> float | None:
        return self.one("SELECT threshold FROM labels WHERE id = ?", (lid,))[0]

    def add_label_counts(self, counts: dict[int, Sequence[int]]) -> None:
        """Add {label id: (positives, negatives)} to the labels' counts (negative values subtract)."""
        if not counts:
            return
        if self.store.dialect == "postgresql":  # one statement over arrays, not one per label
            self.run(PG_ADD_LABEL_COUNTS, _count_arrays(counts))
            return
        self.many("UPDATE labels SET positives = positives + ?, negatives = negatives + ? WHERE id = ?",
                  [(int(counts[lid][0]), int(counts[lid][1]), lid) for lid in sorted(counts)])  # one round trip

    def label_positives(self) -> dict[int, int]:
        """{label id: known positives}."""
        return {int(lid): int(p) for lid, p in self.all("SELECT id, positives FROM labels")}

    def label_calibrations(self) -> list[tuple[int, dict[str, Any] | None]]:
        """(positives, calibration JSON or None) per label."""
        return [(int(p), json.loads(c) if c else None) for p, c in self.all("SELECT positives, calib FROM labels")]

    def set_label_calibration(self, lid: int, calib: dict[str, Any]) -> None:
        self.run("UPDATE labels SET calib = ? WHERE id = ?", (json.dumps(calib), lid))

    def delete_label(self, lid: int) -> None:
        """The label's registry row and every known value of it."""
        self.run("DELETE FROM known WHERE label_id = ?", (lid,))
        self.run("DELETE FROM labels WHERE id = ?", (lid,))

    # ---- examples and their known labels ----------------------------------------------------
    def count_examples(self) -> int:
        return int(self.one("SELECT COUNT(*) FROM examples")[0])

    def example_seqs(self) -> list[int]:
        """Every stored example's seq, ascending."""
        return [int(r[0]) for r in self.all("SELECT seq FROM examples ORDER BY seq")]

    def external_ids(self) -> list[str]:
        """Every stored example's external id, in seq order."""
        return [r[0] for r in self.all("SELECT ext_id FROM examples ORDER BY seq")]

    def latest_seqs(self, limit: int, label_id: int | None = None) -> list[int]:
        """The ``limit`` latest seqs (of the examples where label ``label_id`` is known, when given)."""
        if label_id is None:
            rows = self.all("SELECT seq FROM examples ORDER BY seq DESC LIMIT ?", (int(limit),))
        else:
            rows = self.all("SELECT seq FROM known WHERE label_id = ? ORDER BY seq DESC LIMIT ?",
                            (label_id, int(limit)))
        return [int(r[0]) for r in rows]

    def latest_positive_seqs(self, label_id: int, limit: int) -> list[int]:
        return [int(r[0]) for r in self.all("SELECT seq FROM known WHERE label_id = ? AND value = 1 "
                                            "ORDER BY seq DESC LIMIT ?", (label_id, int(limit)))]

    def known_values(self, label_id: int) -> set[int]:
        """The distinct values (0, 1) label ``label_id`` is known with."""
        return {int(v) for (v,) in self.all("SELECT DISTINCT value FROM known WHERE label_id = ?", (label_id,))}

    def stored(self, ext_ids: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """{external id: (seq, vector bytes)} of the ids already stored."""
        found: dict[str, tuple[int, bytes]] = {}
        for start in range(0, len(ext_ids), IN_CHUNK):
            chunk = list(ext_ids[start:start + IN_CHUNK])
            for seq, e, vec in self.all(f"SELECT seq, ext_id, vector FROM examples WHERE ext_id IN ({_marks(chunk)})",
                                        chunk):
                found[e] = (int(seq), bytes(vec))
        return found

    def known_of(self, seqs: Sequence[int]) -> dict[int, dict[int, int]]:
        """{seq: {label id: value}} of the given examples (examples without known labels are absent)."""
        known: dict[int, dict[int, int]] = defaultdict(dict)
        seqs = list(seqs)
        for start in range(0, len(seqs), IN_CHUNK):
            part = seqs[start:start + IN_CHUNK]
            for seq, lid, value in self.all(f"SELECT seq, label_id, value FROM known WHERE seq IN ({_marks(part)})",
                                            part):
                known[int(seq)][int(lid)] = int(value)
        return dict(known)

    def _known_between(self, first: int, last: int) -> dict[int, dict[int, int]]:
        known: dict[int, dict[int, int]] = defaultdict(dict)
        for seq, lid, value in self.all("SELECT seq, label_id, value FROM known WHERE seq >= ? AND seq <= ?",
                                        (first, last)):
            known[int(seq)][int(lid)] = int(value)
        return known

    def examples_from(self, first_seq: int, chunk: int) -> Iterator[tuple[list[int], list[bytes],
                                                                          list[dict[int, int]]]]:
        """Stored examples with seq ≥ ``first_seq`` in seq order, ``chunk`` at a time: (seqs, vector bytes, known)."""
        last = first_seq - 1
        while True:
            rows = self.all("SELECT seq, vector FROM examples WHERE seq > ? ORDER BY seq LIMIT ?", (last, chunk))
            if not rows:
                return
            seqs = [int(r[0]) for r in rows]
            known = self._known_between(seqs[0], seqs[-1])
            yield seqs, [bytes(r[1]) for r in rows], [known.get(s, {}) for s in seqs]
            last = seqs[-1]

    def examples_by_seq(self, seqs) -> tuple[list[int], list[str], list[bytes], list[dict[int, int]]]:
        """(seqs ascending, external ids, vector bytes, known) of the examples ``seqs`` (missing ones skipped)."""
        seqs = sorted(set(int(s) for s in seqs))
        out_seqs: list[int] = []
        ids: list[str] = []
        vectors: list[bytes] = []
        known: list[dict[int, int]] = []
        for start in range(0, len(seqs), IN_CHUNK):
            part = seqs[start:start + IN_CHUNK]
            rows = self.all(f"SELECT seq, ext_id, vector FROM examples WHERE seq IN ({_marks(part)}) ORDER BY seq", part)
            k = self.known_of(part)
            out_seqs += [int(r[0]) for r in rows]
            ids += [r[1] for r in rows]
            vectors += [bytes(r[2]) for r in rows]
            known += [k.get(int(r[0]), {}) for r in rows]
        return out_seqs, ids, vectors, known

    def insert_examples(self, rows: Sequence[tuple[int, str, bytes]], known: Sequence[tuple[int, int, int]]) -> None:
        """New examples (seq, external id, vector bytes) and their known labels (seq, label id, value), one
        ``executemany`` per table (PostgreSQL teaches write them with the rest: :meth:`write_teach`)."""
        self.many("INSERT INTO examples (seq, ext_id, vector) VALUES (?, ?, ?)", rows)
        self.many("INSERT INTO known (seq, label_id, value) VALUES (?, ?, ?)", known)

    def write_teach(self, rows: Sequence[tuple[int, str, bytes]], known: Sequence[tuple[int, int, int]],
                    counts: dict[int, Sequence[int]], version: int, detail: dict[str, Any], next_seq: int) -> None:
        """A teach's writes: new examples (seq, external id, vector bytes), their known labels (seq, label id,
        value), the labels' count changes {label id: (positives, negatives)} and event ``version`` (kind 'teach',
        ``detail``), with ``next_seq`` in the model row. PostgreSQL: one statement (data-modifying CTEs over
        arrays: one round trip and one plan, prepared once, whatever the number of rows); SQLite: one per table."""
        if self.store.dialect != "postgresql":
            self.insert_examples(rows, known)
            self.add_label_counts(counts)
            self.append_event(version, "teach", detail, next_seq=next_seq)
            return
        self.run("WITH ex AS (INSERT INTO examples (seq, ext_id, vector) "
                 "SELECT * FROM unnest(?::bigint[], ?::text[], ?::bytea[])), "
                 "kn AS (INSERT INTO known (seq, label_id, value) SELECT * FROM unnest(?::bigint[], ?::bigint[], "
                 "?::integer[])), "
                 f"lc AS ({PG_ADD_LABEL_COUNTS}), "
                 "ev AS (INSERT INTO events (version, kind, detail) VALUES (?, 'teach', ?)) "
                 "UPDATE model SET version = ?, next_seq = ? WHERE id = 1",
                 ([int(r[0]) for r in rows], [r[1] for r in rows], [bytes(r[2]) for r in rows],
                  [int(r[0]) for r in known], [int(r[1]) for r in known], [int(r[2]) for r in known],
                  *_count_arrays(counts), version, json.dumps(detail), version, next_seq))
        self._noted({"version": version, "next_seq": next_seq})

    def set_known(self, seq: int, label_id: int, before: int | None, after: int | None) -> None:
        """Change one known value (None = not known)."""
        if after is None:
            self.run("DELETE FROM known WHERE seq = ? AND label_id = ?", (seq, label_id))
        elif before is None:
            self.run("INSERT INTO known (seq, label_id, value) VALUES (?, ?, ?)", (seq, label_id, int(after)))
        else:
            self.run("UPDATE known SET value = ? WHERE seq = ? AND label_id = ?", (int(after), seq, label_id))

    def delete_examples(self, seqs: Sequence[int]) -> None:
        """The examples ``seqs`` and their known labels."""
        seqs = list(seqs)
        for start in range(0, len(seqs), IN_CHUNK):
            part = seqs[start:start + IN_CHUNK]
            self.run(f"DELETE FROM known WHERE seq IN ({_marks(part)})", part)
            self.run(f"DELETE FROM examples WHERE seq IN ({_marks(part)})", part)


class GroupCommit:
    """Group commit: the writes of concurrent callers share one write transaction and one commit (one fsync).

    Each caller of :meth:`run` queues its work (a function of a :class:`Tx`) and waits; one of them, the
    leader, takes every queued work, runs each inside its own savepoint of one transaction — a work that
    raises is rolled back alone and its caller gets its exception — and commits once. Each work still
    sees the effects of those before it (its own version, its own rows): the result is the same as one
    transaction per work, in queue order, with one commit instead of many. A refusal of one work (a
    :class:`~mlcil.serve.errors.ServiceError` it raises: bad input) is that caller's alone; any other
    failure (database unavailable, disk full: the database may have rolled the whole transaction back)
    goes to every caller of the group, and nothing of the group was written.
    ``after(results)`` runs once after each successful commit (the service wakes its refresher there).
    """

    def __init__(self, store: Store, after=None, max_group: int = 64) -> None:
        self.store = store
        self.after = after
        self.max_group = max_group
        self._queue: list[list] = []  # [work, done event, result, exception]
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()
        self.groups = 0
        self.works = 0
        self.pending = 0  # works queued or being committed now (each may add a version)

    def run(self, work):
        """``work(tx)`` inside a shared write transaction; returns its result once committed (or raises)."""
        item = [work, threading.Event(), None, None]
        with self._queue_lock:
            self._queue.append(item)
            self.pending += 1
        try:
            return self._wait(item)
        finally:
            with self._queue_lock:
                self.pending -= 1

    def _wait(self, item: list):
        while not item[1].is_set():
            with self._leader:
                if item[1].is_set():
                    break
                with self._queue_lock:
                    group, self._queue = self._queue[:self.max_group], self._queue[self.max_group:]
                if group:
                    self._commit(group)
        if item[3] is not None:
            raise item[3]
        return item[2]

    def _commit(self, group: list[list]) -> None:
        self.groups += 1  # transactions tried, and the works they held (refused or failed ones included)
        self.works += len(group)
        try:
            with self.store.write() as tx:
                if len(group) == 1:  # alone: no savepoint (two round trips fewer); a refusal rolls it all back
                    group[0][2] = group[0][0](tx)
                for item in group if len(group) > 1 else ():
                    tx.savepoint()
                    try:
                        item[2] = item[0](tx)
                    except (ServiceError, MlcilError) as exc:  # this caller's input was refused: its writes
                        tx.rollback_savepoint()                 # are rolled back, the others' stay
                        item[3] = exc
                    tx.release_savepoint()
        except BaseException as exc:  # the transaction failed: nothing of the group was written
            for item in group:
                item[2], item[3] = None, exc
                item[1].set()
            if not isinstance(exc, Exception):
                raise
            return
        if self.after is not None:
            try:
                self.after([item[2] for item in group if item[3] is None])
            finally:
                for item in group:
                    item[1].set()
        else:
            for item in group:
                item[1].set()
