"""Real processes: readers during writes (no torn reads), two servers on one database, kill -9."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import numpy as np
import torch

from mlcil.learners.ridge import gaussian_projection
from mlcil.serve import model as mdl
from mlcil.serve.service import Options, TaggingService
from mlcil.serve.store import Store

from ..conftest import assert_reproduced
from .conftest import features, make_batch
from .helpers import start_server, stop

D = 16
NAMES = ["a", "b"]


def test_readers_never_see_a_torn_version(db_url):
    """Predictions made while a writer teaches equal those of a from-scratch rebuild of their version."""
    svc = TaggingService(Store(db_url), Options(M=64))
    for name in NAMES:
        svc.create_label(name)
    rng = np.random.default_rng(0)
    svc.teach(*make_batch(rng, 10, D, NAMES), [None] * 10)
    probe = rng.normal(size=(3, D)).astype(np.float32)
    seen: list[tuple[int, np.ndarray]] = []
    done = threading.Event()

    def read():
        while not done.is_set():
            state, S = svc.scores(probe)
            seen.append((state.version, S))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    writer = TaggingService(Store(db_url))  # another engine: the readers must catch up through the database
    for _ in range(15):
        X, L = make_batch(rng, 8, D, NAMES)
        writer.teach(X, L, [None] * 8)
    done.set()
    for t in readers:
        t.join()
    versions = sorted({v for v, _ in seen})
    assert len(versions) >= 2 and len(seen) > 10
    for v in versions:
        with svc.store.read() as tx:
            state = svc._advance(tx, mdl.ModelState.empty(0), v)
        S_ref = mdl.scores(state, svc._fmap, svc.options.lam, probe)
        for version, S in seen:
            if version == v:  # a torn read mixes versions: far outside rounding
                assert_reproduced(S, S_ref)


def assert_same_predictions(r1: dict, r2: dict) -> None:
    """Two /v1/predict answers: same version, labels and score names; scores to the stated tolerance
    (two processes may round differently: README, "Reproducibility")."""
    assert r1["version"] == r2["version"] and len(r1["predictions"]) == len(r2["predictions"])
    for p1, p2 in zip(r1["predictions"], r2["predictions"]):
        assert p1["labels"] == p2["labels"] and list(p1["scores"]) == list(p2["scores"])
        assert_reproduced(np.array(list(p1["scores"].values())), np.array(list(p2["scores"].values())))


def teach_json(X, L, ids):
    return {"examples": [{"id": i, "vector": x.tolist(), "labels": l} for i, x, l in zip(ids, X, L)]}



def test_two_processes_on_one_database(db_url):
    (p1, u1), (p2, u2) = start_server(db_url, None, "--features", "64"), start_server(db_url, None, "--features", "64")
    try:
        for name in NAMES:
            assert httpx.post(u1 + "/v1/labels", json={"name": name}).status_code == 201
        assert httpx.post(u2 + "/v1/labels", json={"name": "a"}).status_code == 409  # p2 sees p1's label
        acked: list[str] = []
        lock = threading.Lock()

        def client(k: int):
            rng = np.random.default_rng(k)
            with httpx.Client(timeout=30) as http:
                for j in range(6):
                    X, L = make_batch(rng, 5, D, NAMES)
                    ids = [f"c{k}-{j}-{i}" for i in range(5)]
                    r = http.post((u1, u2)[(k + j) % 2] + "/v1/teach", json=teach_json(X, L, ids))
                    assert r.status_code == 200, r.text
                    with lock:
                        acked.extend(r.json()["ids"])
                    assert http.post((u2, u1)[(k + j) % 2] + "/v1/predict",
                                     json={"vectors": X[:1].tolist()}).status_code == 200

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(acked) == 120
        probe = np.random.default_rng(9).normal(size=(4, D)).tolist()
        r1 = httpx.post(u1 + "/v1/predict", json={"vectors": probe}).json()
        r2 = httpx.post(u2 + "/v1/predict", json={"vectors": probe}).json()
        assert r1["version"] == r2["version"] == 2 + 24
        assert_same_predictions(r1, r2)  # the same version in both processes (to the stated tolerance)
        labels = httpx.get(u2 + "/v1/labels").json()["labels"]
        assert httpx.get(u1 + "/v1/health").json()["examples"] == 120
        assert all(lab["positives"] + lab["negatives"] <= 120 for lab in labels)
        # writes of every kind through p2; p1 catches up (loading the forget snapshots) and agrees
        assert httpx.patch(u2 + "/v1/labels/b", json={"threshold": 0.2}).status_code == 200
        assert httpx.post(u2 + "/v1/forget", json={"ids": acked[:10]}).status_code == 200
        assert httpx.delete(u2 + "/v1/labels/a").status_code == 200
        r1 = httpx.post(u1 + "/v1/predict", json={"vectors": probe}).json()
        r2 = httpx.post(u2 + "/v1/predict", json={"vectors": probe}).json()
        assert_same_predictions(r1, r2)
        assert r1["version"] == 2 + 24 + 3 and list(r1["predictions"][0]["scores"]) == ["b"]
        assert httpx.get(u1 + "/v1/health").json()["examples"] == 110
    finally:
        stop(p1)
        stop(p2)


def test_kill_9_during_a_teach_storm_loses_no_acknowledged_example(db_url):
    proc, url = start_server(db_url, None, "--features", "64")
    sent: dict[str, tuple[np.ndarray, dict]] = {}
    acked: list[str] = []
    lock = threading.Lock()
    stop_flag = threading.Event()
    for name in NAMES:
        httpx.post(url + "/v1/labels", json={"name": name})

    def storm(k: int):
        rng = np.random.default_rng(100 + k)
        with httpx.Client(timeout=10) as http:
            j = 0
            while not stop_flag.is_set():
                X, L = make_batch(rng, 4, D, NAMES)
                ids = [f"s{k}-{j}-{i}" for i in range(4)]
                with lock:
                    sent.update({i: (x, l) for i, x, l in zip(ids, X, L)})
                try:
                    r = http.post(url + "/v1/teach", json=teach_json(X, L, ids))
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.extend(r.json()["ids"])
                j += 1

    threads = [threading.Thread(target=storm, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop_flag.set()
    for t in threads:
        t.join()
    assert len(acked) >= 40
    proc, url = start_server(db_url, None, "--features", "64")
    try:
        health = httpx.get(url + "/v1/health").json()
        svc = TaggingService(Store(db_url))
        with svc.store.read() as tx:
            stored = [r[0] for r in tx.all("SELECT ext_id FROM examples ORDER BY seq")]
        assert set(acked) <= set(stored) <= set(sent)  # nothing acknowledged is lost, nothing invented
        assert health["examples"] == len(stored) == svc.state.n_examples
        # the restarted statistics equal a from-scratch fit on the stored examples
        X = np.stack([sent[i][0] for i in stored])
        L = [sent[i][1] for i in stored]
        R = gaussian_projection(D, 64, 0, torch.device("cpu")).numpy()
        phi = features(X, R)
        Y = np.array([[float(row.get(n, 0) == 1) for n in NAMES] for row in L])
        np.testing.assert_allclose(svc.state.G.numpy(), phi.T @ phi, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(svc.state.B.numpy(), phi.T @ Y, rtol=2e-5, atol=2e-5)
        r = httpx.post(url + "/v1/predict", json={"vectors": X[:2].tolist()}).json()
        assert r["version"] == svc.state.version
    finally:
        stop(proc)
