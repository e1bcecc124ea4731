"""Faults: a full disk (page-limited SQLite), a database deleted or dropped while running, bounded storage.

In each, a write is acknowledged iff it is committed: nothing acknowledged is lost, nothing refused is stored.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlcil.serve.app import create_app
from mlcil.serve.errors import StorageFull
from mlcil.serve.service import Options, Policy, TaggingService
from mlcil.serve.store import Store

from ..conftest import assert_reproduced

D = 256
FAST = Policy(refresh_interval=0.0, poll_s=0.01, calibrate=False, snapshot_share=100.0)


def stored_ids(url: str) -> set[str]:
    with Store(url).read() as tx:
        return {r[0] for r in tx.all("SELECT ext_id FROM examples")}


def test_disk_full_acknowledges_only_committed_writes(tmp_path):
    url = f"sqlite:///{tmp_path / 'small.db'}"
    svc = TaggingService(Store(url, max_pages=40), Options(M=16), policy=FAST)  # 40 pages of 16 KiB
    c = TestClient(create_app(svc))
    assert c.post("/v1/labels", json={"name": "a"}).status_code == 201
    rng = np.random.default_rng(0)
    acked, refused, statuses = [], [], []
    for b in range(80):
        X = rng.normal(size=(8, D))
        ids = [f"b{b}-{i}" for i in range(8)]
        r = c.post("/v1/teach", json={"examples": [{"id": i, "vector": x.tolist(), "labels": {"a": int(x[0] > 0)}}
                                                   for i, x in zip(ids, X)]})
        statuses.append(r.status_code)
        if r.status_code == 200:
            acked += ids
        else:
            assert r.status_code == 507, r.text
            assert r.json()["error"]["field"] == "db" and "nothing was written" in r.json()["error"]["message"]
            refused += ids
    assert acked and refused, statuses  # the disk did fill up
    with pytest.raises(StorageFull):  # a snapshot that does not fit fails alone (in the background: counted)
        svc.maybe_snapshot(force=True)
    stored = stored_ids(url)
    assert set(acked) <= stored and not (set(refused) & stored)
    # the service still answers: reads, predictions, and writes that fit
    v = c.get("/v1/health").json()["db_version"]
    r = c.post("/v1/predict", json={"vectors": [[0.1] * D], "min_version": v})
    assert r.status_code == 200 and r.json()["version"] == v
    assert c.post("/v1/teach", json={"examples": [{"id": acked[0], "labels": {"a": 1}}]}).status_code in (200, 507)
    again = TaggingService(Store(url), policy=Policy(background=False))  # restart without the limit
    assert again.model.n_examples == len(stored_ids(url)) == len(acked)


def test_a_database_file_deleted_while_running_is_never_recreated(tmp_path):
    path = tmp_path / "gone.db"
    c = TestClient(create_app(f"sqlite:///{path}", options=Options(M=16), policy=FAST))
    c.post("/v1/labels", json={"name": "a"})
    r = c.post("/v1/teach", json={"examples": [{"id": "x", "vector": [1.0, 0.0], "labels": {"a": 1}}]})
    assert r.status_code == 200
    # the process has built version 2 before the file goes (else it would need the file to build it)
    assert c.post("/v1/predict", json={"vectors": [[1.0, 0.0]], "min_version": 2}).status_code == 200
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    r = c.post("/v1/teach", json={"examples": [{"id": "y", "vector": [0.0, 1.0], "labels": {"a": 0}}]})
    assert r.status_code == 503 and "deleted" in r.json()["error"]["message"]
    assert c.post("/v1/labels", json={"name": "b"}).status_code == 503
    assert c.get("/v1/health").status_code == 503  # health tells
    r = c.post("/v1/predict", json={"vectors": [[1.0, 0.0]], "min_version": 2})  # served from memory
    assert r.status_code == 200 and r.json()["predictions"][0]["labels"] == ["a"]
    assert not path.exists()  # never silently recreated


def test_tables_dropped_underneath_are_an_error_not_a_new_schema(pg_schema_url):
    import psycopg

    c = TestClient(create_app(pg_schema_url, options=Options(M=16), policy=FAST))
    c.post("/v1/labels", json={"name": "a"})
    with psycopg.connect(pg_schema_url, autocommit=True) as conn:
        conn.execute("DROP TABLE examples, known, events, labels")
    r = c.post("/v1/labels", json={"name": "b"})
    assert r.status_code == 503 and r.json()["error"]["field"] == "db"
    with psycopg.connect(pg_schema_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('labels')").fetchone()[0] is None


def test_storage_stays_within_three_times_the_vectors(tmp_path):
    """Many teaches and several snapshots: one snapshot is kept, the log is pruned, the file stays small."""
    url = f"sqlite:///{tmp_path / 'size.db'}"
    d, n_batches, batch = 128, 16, 100
    svc = TaggingService(Store(url), Options(M=64), policy=Policy(background=False, snapshot_events=5,
                                                                  snapshot_rows_per_feature=1e9))
    svc.create_label("a")
    svc.create_label("b")
    rng = np.random.default_rng(1)
    for b in range(n_batches):
        X = rng.normal(size=(batch, d)).astype(np.float32)
        svc.teach(list(X), [{"a": int(x[0] > 0), "b": int(x[1] > 0)} for x in X], [None] * batch)
        svc.refresh()
        svc.maybe_snapshot()
    with svc.store.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM snapshots")[0] == 1
        assert tx.one("SELECT COUNT(*) FROM events")[0] <= 5
    svc.store.vacuum()
    vectors = n_batches * batch * d * 4
    assert svc.store.size_bytes() <= 3 * vectors, (svc.store.size_bytes(), vectors)
    again = TaggingService(Store(url), policy=Policy(background=False))  # snapshot + log = the live model
    # the replay sums the rows after the snapshot in other blocks than the live catch-ups did, and float32 φ of
    # a row is rounded by its block's shape: equal to float32 precision of φ, not bit for bit
    assert_reproduced(again.state.stats.G, svc.state.stats.G, rtol=1e-6)
