"""Database access for the tagging service: SQLite (default) or PostgreSQL (psycopg 3).

A small connection pool (one connection per transaction in flight). Two kinds of transaction:

- :meth:`Store.write` — serialises writers *on the database* (SQLite ``BEGIN IMMEDIATE``;
  PostgreSQL ``SELECT ... FOR UPDATE`` of the single ``model`` row), so two service
  processes on one database append to one ordered log;
- :meth:`Store.read` — a consistent snapshot for catching up (SQLite WAL read
  transaction; PostgreSQL ``REPEATABLE READ READ ONLY``).

SQL is written once with ``?`` placeholders and ``{blob}``/``{bigint}`` type names; the
PostgreSQL dialect rewrites them. SQLite runs in WAL mode with ``synchronous=FULL``, so an
acknowledged (committed) write survives kill -9 and power loss.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from mlcil.errors import MlcilError

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT)",
    # one row: the model version (= last event), and the next ids to hand out
    "CREATE TABLE IF NOT EXISTS model (id INTEGER PRIMARY KEY, version {bigint} NOT NULL, "
    "next_label_id {bigint} NOT NULL, next_seq {bigint} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS labels (id {bigint} PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT, "
    "threshold DOUBLE PRECISION, positives {bigint} NOT NULL, negatives {bigint} NOT NULL, "
    "created_version {bigint} NOT NULL)",
    # the example log: one row per taught example; version = the teach event that added it
    "CREATE TABLE IF NOT EXISTS examples (seq {bigint} PRIMARY KEY, ext_id TEXT NOT NULL UNIQUE, "
    "version {bigint} NOT NULL, vector {blob} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS examples_version ON examples (version)",
    "CREATE TABLE IF NOT EXISTS known (seq {bigint} NOT NULL, label_id {bigint} NOT NULL, value INTEGER NOT NULL, "
    "PRIMARY KEY (seq, label_id))",
    "CREATE INDEX IF NOT EXISTS known_label ON known (label_id)",
    # every write is one event; version = event number
    "CREATE TABLE IF NOT EXISTS events (version {bigint} PRIMARY KEY, kind TEXT NOT NULL, detail TEXT NOT NULL)",
    # checkpoints of the statistics (float64 bytes); every forget event has one
    "CREATE TABLE IF NOT EXISTS snapshots (version {bigint} PRIMARY KEY, D {bigint} NOT NULL, G {blob} NOT NULL, "
    "B {blob} NOT NULL, labels TEXT NOT NULL, n_examples {bigint} NOT NULL)",
)


class Store:
    """A database URL -> a small pool of connections and the two transaction kinds.

    URLs: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, a bare path (SQLite), or
    ``postgresql://user@host:port/db`` (psycopg 3; libpq URI options such as
    ``?options=-csearch_path%3Dmyschema`` pass through). A connection is taken from the pool
    for one transaction and given back after it, so the number of open connections follows
    the number of concurrent transactions (at most ``max_idle`` stay open when idle).
    """

    def __init__(self, url: str, busy_timeout_s: float = 60.0, max_idle: int = 8) -> None:
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self.max_idle = max_idle
        self._idle: list = []
        self._pool_lock = threading.Lock()
        if url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self.path = None
        else:
            self.dialect = "sqlite"
            path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
            if url.startswith("sqlite:") and not url.startswith("sqlite:///"):
                raise MlcilError(f"db: expected sqlite:///path.db or postgresql://..., got {url!r}")
            if not path:
                raise MlcilError("db: empty SQLite path")
            self.path = path
            if path != ":memory:" and not Path(path).parent.exists():
                raise MlcilError(f"db: folder {Path(path).parent} does not exist")
        try:
            self._init_schema()
        except sqlite3.Error as exc:
            raise MlcilError(f"db: {url}: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise MlcilError(f"db: cannot use PostgreSQL at {url}: {exc}".strip()) from exc
            raise

    # ---- connections ---------------------------------------------------------------------
    def _connect(self):
        if self.dialect == "sqlite":
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            return conn
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection for one transaction; the caller ends the transaction."""
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        healthy = True
        try:
            yield conn
        except BaseException:
            healthy = self._rollback(conn)
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
            return statement.replace("?", "%s").format(blob="BYTEA", bigint="BIGINT")
        return statement.format(blob="BLOB", bigint="INTEGER")

    # ---- transactions --------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator["Tx"]:
        """A write transaction holding the database-wide writer lock; commits on success."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            tx = Tx(self, conn)
            if self.dialect == "postgresql":
                tx.one("SELECT version FROM model WHERE id = 1 FOR UPDATE")
            yield tx
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator["Tx"]:
        """A read-only transaction over one consistent snapshot of the database."""
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

    def _init_schema(self) -> None:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            if self.dialect == "postgresql":
                conn.execute("SELECT pg_advisory_xact_lock(727274)")  # two processes creating the schema at once
            for statement in SCHEMA:
                conn.execute(self.sql(statement))
            conn.execute(self.sql("INSERT INTO model (id, version, next_label_id, next_seq) VALUES (1, 0, 1, 1) "
                                  "ON CONFLICT (id) DO NOTHING"))
            conn.execute("COMMIT")


class Tx:
    """Statements inside one transaction: ``one``, ``all``, ``run``, ``many``."""

    def __init__(self, store: Store, conn) -> None:
        self.store = store
        self.conn = conn

    def run(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self.store.sql(statement), tuple(params))

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
