"""Real processes: readers during writes (no torn reads), two servers on one database, kill -9."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import numpy as np

from mlcil.ridge import gaussian_projection
from mlcil.serve.service import Options, Policy, TaggingService
from mlcil.serve.store import Store

from ..conftest import assert_reproduced
from .conftest import features, make_batch
from .helpers import start_server, stop

D = 16
NAMES = ["a", "b"]


def test_readers_never_see_a_torn_version(db_url):
    """Predictions made while another engine teaches equal a from-scratch fit of the version they name."""
    svc = TaggingService(Store(db_url), Options(M=64, lam=0.5), policy=Policy(refresh_interval=0.0, poll_s=0.005,
                                                                              calibrate=False))
    for name in NAMES:
        svc.create_label(name)
    rng = np.random.default_rng(0)
    batches = [make_batch(rng, 10, D, NAMES)]
    svc.teach(list(batches[0][0]), batches[0][1], [None] * 10)
    svc.wait_for(3)
    probe = rng.normal(size=(3, D)).astype(np.float32)
    seen: list[tuple[int, np.ndarray]] = []
    done = threading.Event()

    def read():
        while not done.is_set():
            model, S = svc.predict(probe)
            seen.append((model.version, S))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    writer = TaggingService(Store(db_url), policy=Policy(background=False))  # the readers follow the database
    version_of = {3: 1}
    for k in range(15):
        X, L = make_batch(rng, 8, D, NAMES)
        batches.append((X, L))
        _, v = writer.teach(list(X), L, [None] * 8)
        version_of[v] = len(batches)
        time.sleep(0.01)
    svc.wait_for(max(version_of))
    done.set()
    for t in readers:
        t.join()
    versions = sorted({v for v, _ in seen})
    assert len(versions) >= 2 and len(seen) > 10 and set(versions) <= set(version_of)
    R = gaussian_projection(D, 64, 0, "cpu")
    for v in versions:  # a from-scratch fit on exactly the batches committed at that version
        X = np.vstack([b[0] for b in batches[:version_of[v]]])
        Y = np.array([[float(row.get(n) == 1) for n in NAMES] for b in batches[:version_of[v]] for row in b[1]])
        phi = features(X, R)
        S_ref = features(probe, R) @ np.linalg.solve(phi.T @ phi + 0.5 * np.eye(phi.shape[1]), phi.T @ Y)
        for version, S in seen:
            if version == v:
                np.testing.assert_allclose(S, S_ref, rtol=1e-4, atol=1e-5)


def teach_json(X, L, ids):
    return {"examples": [{"id": i, "vector": x.tolist(), "labels": l} for i, x, l in zip(ids, X, L)]}



def same_answers(r1: dict, r2: dict) -> None:
    """Two processes' predictions agree: same version and labels' numbers within 1e-6 (never bit for bit:
    another process may get other BLAS kernels)."""
    assert r1["version"] == r2["version"] and len(r1["predictions"]) == len(r2["predictions"])
    for p1, p2 in zip(r1["predictions"], r2["predictions"]):
        for key in ("scores", "proba"):
            assert p1[key].keys() == p2[key].keys()
            np.testing.assert_allclose(list(p1[key].values()), list(p2[key].values()), rtol=1e-6, atol=1e-6)


def agree(u1: str, u2: str, probe, at_least: int) -> tuple[dict, dict]:
    """Predictions of both servers at one version ≥ ``at_least`` (background calibrations may add versions)."""
    for _ in range(20):
        r1 = httpx.post(u1 + "/v1/predict", json={"vectors": probe, "min_version": at_least}, timeout=60).json()
        r2 = httpx.post(u2 + "/v1/predict", json={"vectors": probe, "min_version": r1["version"]}, timeout=60).json()
        if r1["version"] == r2["version"]:
            return r1, r2
        at_least = max(r1["version"], r2["version"])
    raise AssertionError("the two servers never served the same version")


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
        same_answers(*agree(u1, u2, probe, 26))  # the same version in both processes, to rounding
        labels = httpx.get(u2 + "/v1/labels").json()["labels"]
        assert httpx.get(u1 + "/v1/health").json()["examples"] == 120
        assert all(lab["positives"] + lab["negatives"] <= 120 for lab in labels)
        # writes of every kind through p2; p1 catches up (loading the forget snapshots) and agrees
        assert httpx.patch(u2 + "/v1/labels/b", json={"threshold": 0.2}).status_code == 200
        assert httpx.post(u2 + "/v1/forget", json={"ids": acked[:10]}).status_code == 200
        assert httpx.delete(u2 + "/v1/labels/a").status_code == 200
        head = httpx.get(u2 + "/v1/health").json()["db_version"]  # the forgets' version (a calibration may follow)
        r1, r2 = agree(u1, u2, probe, head)
        same_answers(r1, r2)
        assert list(r1["predictions"][0]["scores"]) == ["b"]
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
        svc = TaggingService(Store(db_url), policy=Policy(background=False))
        with svc.store.read() as tx:
            stored = [r[0] for r in tx.all("SELECT ext_id FROM examples ORDER BY seq")]
        assert set(acked) <= set(stored) <= set(sent)  # nothing acknowledged is lost, nothing invented
        assert health["examples"] == len(stored) == svc.model.n_examples
        # the restarted statistics equal a from-scratch fit on the stored examples
        X = np.stack([sent[i][0] for i in stored])
        L = [sent[i][1] for i in stored]
        R = gaussian_projection(D, 64, 0, "cpu")
        phi = features(X, R)
        Y = np.array([[float(row.get(n, 0) == 1) for n in NAMES] for row in L])
        np.testing.assert_allclose(svc.state.stats.G, phi.T @ phi, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(svc.state.stats.B, phi.T @ Y, rtol=2e-5, atol=2e-5)
        r = httpx.post(url + "/v1/predict", json={"vectors": X[:2].tolist(), "min_version": svc.model.version}).json()
        assert r["version"] == svc.model.version
    finally:
        stop(proc)
