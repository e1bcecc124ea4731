"""A teach's cost on the database (issue 24, item 9): statements per teach, the label registry read once per
registry (and re-read when any process changes it), the refresher reading nothing after this process's own
commits, and the serve process's GIL switch interval."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from mlcil.serve.errors import Invalid
from mlcil.serve.service import Options, Policy, TaggingService
from mlcil.serve.store import Store

D = 8
QUIET = Policy(background=False, calibrate=False)


class Counting:
    """A database connection that counts the statements sent through it (``execute``, ``executemany``)."""

    def __init__(self, conn, counter: list[int]) -> None:
        self._conn, self._counter = conn, counter

    def execute(self, *args, **kwargs):
        self._counter[0] += 1
        return self._conn.execute(*args, **kwargs)

    def executemany(self, statement, rows):
        self._counter[0] += 1
        return self._conn.executemany(statement, rows)

    def cursor(self, *args, **kwargs):
        counter, cur = self._counter, self._conn.cursor(*args, **kwargs)

        class Cursor:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                cur.close()

            def executemany(self, statement, rows):
                counter[0] += 1
                return cur.executemany(statement, rows)

        return Cursor()

    def __getattr__(self, name):
        return getattr(self._conn, name)


class CountingStore(Store):
    """A :class:`Store` whose connections count their statements in :attr:`statements`."""

    def __init__(self, *args, **kwargs) -> None:
        self.statements = [0]
        super().__init__(*args, **kwargs)

    def _connect(self, create: bool = False):
        return Counting(super()._connect(create), self.statements)


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def test_a_single_teach_is_few_statements_and_reads_the_labels_once(db_url):
    """PostgreSQL: BEGIN with the writer lock, the stored ids, every write in one statement, COMMIT (was 11:
    one statement per table and per label count, the labels read each time); SQLite: the same reads, one
    statement per table (in process, no round trip)."""
    store = CountingStore(db_url)
    svc = TaggingService(store, Options(M=16, seed=0), policy=QUIET)
    for name in ("a", "b", "c"):
        svc.create_label(name)
    X = rows(6)
    svc.teach([X[0]], [{"a": 1, "b": 0}], ["w0"])  # the first teach reads the registry
    per_teach = []
    for i in range(1, 6):
        before = store.statements[0]
        svc.teach([X[i]], [{"a": 1, "b": 0, "c": int(i % 2)}], [f"w{i}"])
        per_teach.append(store.statements[0] - before)
    expected = 4 if store.dialect == "postgresql" else 9
    assert per_teach == [expected] * 5, per_teach
    with store.read() as tx:  # and the writes are all there: rows, known labels, counts, events, version
        assert tx.count_examples() == 6 and tx.version() == 3 + 6
        assert {r["name"]: (r["positives"], r["negatives"]) for r in tx.label_listing()} == \
            {"a": (6, 0), "b": (0, 6), "c": (3, 2)}
        assert len(tx.known_of(range(1, 7))) == 6 and tx.model_row()["next_seq"] == 7
        assert json.loads(tx.event_details()[-1]) == {"seq": [6, 1], "relabel": []}


def test_the_label_registry_cache_follows_other_processes(db_url):
    """Process A keeps its {name: id} map while the registry is unchanged; B creating, forgetting and re-creating
    labels is seen by A's next teach (a new label accepted, a forgotten one refused, a re-created one under its
    new id)."""
    a = TaggingService(Store(db_url), Options(M=16, seed=0), policy=QUIET)
    b = TaggingService(Store(db_url), Options(M=16, seed=0), policy=QUIET)
    a.create_label("x")
    X = rows(6)
    a.teach([X[0]], [{"x": 1}], ["r0"])
    b.create_label("y")
    a.teach([X[1]], [{"y": 1}], ["r1"])  # created by B after A read the registry: accepted
    b.forget_label("x")
    with pytest.raises(Invalid) as err:
        a.teach([X[2]], [{"x": 1}], ["r2"])  # forgotten by B: refused, nothing written
    assert err.value.field == "examples[0].labels.x"
    b.create_label("x")  # the same name again: a new id
    a.teach([X[3]], [{"x": 1, "y": 0}], ["r3"])
    with a.store.read() as tx:
        listing = {r["name"]: (r["positives"], r["negatives"]) for r in tx.label_listing()}
        new_x = tx.label_id("x")
        assert tx.count_examples() == 3 and "r2" not in tx.external_ids()
        seq = tx.stored(["r3"])["r3"][0]
        assert tx.known_of([seq]) == {seq: {new_x: 1, tx.label_id("y"): 0}}
    assert listing == {"y": (1, 1), "x": (1, 0)}
    a.refresh()  # the model agrees with the database: a column per label, in id order
    assert a.state.names == ["y", "x"]


def test_the_refresher_reads_no_version_after_its_own_commit(db_url):
    """With polling slowed to a minute, a teach of this process is still published at once (the commit wakes the
    refresher, which knows the new version): not one read of the database's version."""
    svc = TaggingService(Store(db_url), Options(M=16, seed=0),
                         policy=Policy(refresh_interval=0.0, poll_s=60.0, calibrate=False))
    reads = []
    latest = svc.store.latest_version
    svc.store.latest_version = lambda: reads.append(1) or latest()
    try:
        svc.create_label("a")
        version = svc.teach(list(rows(4)), [{"a": 1}] * 4, [f"q{i}" for i in range(4)])[1]
        deadline = time.monotonic() + 20
        while svc.model.version < version and time.monotonic() < deadline:
            time.sleep(0.01)
        assert svc.model.version == version and reads == []
    finally:
        svc.close()


def test_snapshot_checks_read_nothing_until_a_new_version(db_url):
    store = CountingStore(db_url)
    svc = TaggingService(store, Options(M=16, seed=0), policy=QUIET)
    svc.create_label("a")
    svc.teach(list(rows(4)), [{"a": 1}] * 4, [f"s{i}" for i in range(4)])
    svc.maybe_snapshot()  # a new version: one look at the model row
    before = store.statements[0]
    for _ in range(5):
        assert svc.maybe_snapshot() is False
    assert store.statements[0] == before  # no new version: no read (the refresher asks every poll)
    svc.teach([rows(5)[4]], [{"a": 0}], ["s4"])
    before = store.statements[0]
    svc.maybe_snapshot()
    assert store.statements[0] > before


def test_the_serve_process_switches_threads_every_millisecond(tmp_path, monkeypatch):
    """``mlcil serve``'s app factory shortens the GIL switch interval: a teach thread waiting for the GIL after
    each database round trip no longer waits the default 5 ms for busy request handling to let go."""
    from mlcil.serve.app import SWITCH_INTERVAL_S, app_from_env

    monkeypatch.setenv("MLCIL_SERVE_CONFIG", json.dumps({"db": f"sqlite:///{tmp_path / 's.db'}",
                                                         "policy": {"background": False}}))
    old = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        app = app_from_env()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S) and SWITCH_INTERVAL_S <= 0.001
        app.state.service.close()
    finally:
        sys.setswitchinterval(old)
