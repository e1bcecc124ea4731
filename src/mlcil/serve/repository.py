"""Database access for the tagging service: SQLite (default) or PostgreSQL (psycopg 3).

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

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

from mlcil.errors import MlcilError
from mlcil.serve.errors import StorageFull, Unavailable

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
                keep = healthy and len(self._idle) < self.max_idle
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
        """Raise :class:`Unavailable` when the SQLite file at ``path`` is not the one opened at start."""
        if self.dialect != "sqlite" or self._identity is None:
            return
        try:
            st = os.stat(self.path)
        except OSError:
            raise Unavailable("db", f"the database file {self.path} was deleted while the service runs; nothing was "
                                    "written (restore it, or restart the service to start a new one)") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise Unavailable("db", f"the database file {self.path} was replaced while the service runs; nothing "
                                    "was written (restart the service to open the new file)")

    # ---- transactions --------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator["Tx"]:
        """A write transaction holding the database-wide writer lock; commits on success."""
        self._check_identity()
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            tx = Tx(self, conn)
            if self.dialect == "postgresql":
                tx.one("SELECT version FROM model WHERE id = 1 FOR UPDATE")
            yield tx
            self._check_identity()  # never acknowledge a write that went to a deleted file
            conn.execute("COMMIT")

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
        """Give the pages freed by deleted rows back to the file system (SQLite; PostgreSQL autovacuums)."""
        if self.dialect != "sqlite":
            return
        with self._connection() as conn:
            conn.execute("PRAGMA incremental_vacuum")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
            conn.execute("COMMIT")
        finally:
            if self.dialect == "sqlite":
                st = os.stat(self.path)
                self._identity = (st.st_dev, st.st_ino)
            self._close(conn)
        return bool(created)


class Tx:
    """Statements inside one transaction: ``one``, ``all``, ``run``, ``many``."""

    def __init__(self, store: Store, conn) -> None:
        self.store = store
        self.conn = conn

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
