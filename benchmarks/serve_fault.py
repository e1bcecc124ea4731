"""Fault test of the tagging service: kill -9 during a teach storm, restart, check every acknowledgement.

    python benchmarks/serve_fault.py                      # 5 kills on SQLite
    python benchmarks/serve_fault.py --db postgresql://... --rounds 3

Each round: start ``mlcil serve`` on the same database, run --clients threads teaching batches of
1..--max-batch random examples (each with a unique id) as fast as they can, SIGKILL the server at
a random moment between --min-s and --max-s seconds, restart it, and check that

- every acknowledged example is stored (acknowledged ⊆ stored ⊆ sent; stored but unacknowledged
  = committed while its reply was lost in the kill, allowed);
- the restarted statistics G, B equal a from-scratch numpy float64 fit on the stored examples
  (max |ΔG| reported; the service computes φ in float32, so ~1e-6 relative is expected);
- the restarted model's example count matches the database.

Teaches are sent with ids, so a client could resend an unacknowledged batch safely: a stored id
with the same vector and labels is a no-op (that is how "stored, reply lost" rows are settled).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve.helpers import start_server, stop  # noqa: E402

from mlcil.ridge import gaussian_projection  # noqa: E402
from mlcil.serve.service import Policy, TaggingService  # noqa: E402
from mlcil.serve.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file in a temp folder)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--min-s", type=float, default=2.0)
    ap.add_argument("--max-s", type=float, default=6.0)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--M", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_fault.md")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db or f"sqlite:///{tmp.name}/fault.db"
    names = ["a", "b", "c", "d"]
    sent: dict[str, tuple[np.ndarray, dict]] = {}
    acked: set[str] = set()
    rows = []
    flags = ("--features", str(args.M), "--dim", str(args.d))
    proc, url = start_server(db, None, *flags)
    for name in names:
        httpx.post(url + "/v1/labels", json={"name": name})
    rng_kill = random.Random(0)
    for rnd in range(args.rounds):
        lock = threading.Lock()
        halt = threading.Event()
        acked_round: list[str] = []

        def storm(k: int) -> None:
            rng = np.random.default_rng(1000 * rnd + k)
            with httpx.Client(timeout=30) as http:
                j = 0
                while not halt.is_set():
                    n = int(rng.integers(1, args.max_batch + 1))
                    X = rng.normal(size=(n, args.d)).astype(np.float32)
                    L = [{c: int(x[i] > 0) for i, c in enumerate(names) if rng.random() < 0.6} for x in X]
                    ids = [f"r{rnd}-c{k}-{j}-{i}" for i in range(n)]
                    with lock:
                        sent.update({i: (x, lab) for i, x, lab in zip(ids, X, L)})
                    try:
                        r = http.post(url + "/v1/teach", json={"examples": [
                            {"id": i, "vector": x.tolist(), "labels": lab} for i, x, lab in zip(ids, X, L)]})
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        with lock:
                            acked_round.extend(r.json()["ids"])
                    j += 1

        threads = [threading.Thread(target=storm, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        delay = rng_kill.uniform(args.min_s, args.max_s)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        halt.set()
        for t in threads:
            t.join()
        acked.update(acked_round)
        start = time.perf_counter()
        proc, url = start_server(db, None, *flags)
        restart_s = time.perf_counter() - start
        svc = TaggingService(Store(db), policy=Policy(background=False))
        with svc.store.read() as tx:
            stored = [r[0] for r in tx.all("SELECT ext_id FROM examples ORDER BY seq")]
        X = np.stack([sent[i][0] for i in stored]).astype(np.float64)
        Xh = X / np.linalg.norm(X, axis=1, keepdims=True)
        R = gaussian_projection(args.d, args.M, 0, "cpu").astype(np.float64)
        phi = np.hstack([np.maximum(Xh @ R, 0), Xh])
        Y = np.array([[float(sent[i][1].get(c, 0) == 1) for c in names] for i in stored])
        dG = float(np.abs(svc.state.stats.G - phi.T @ phi).max())
        dB = float(np.abs(svc.state.stats.B - phi.T @ Y).max())
        health = httpx.get(url + "/v1/health").json()
        lost = acked - set(stored)
        rows.append({"round": rnd + 1, "kill_s": delay, "acked": len(acked_round), "acked_total": len(acked),
                     "stored": len(stored), "lost": len(lost), "unacked_stored": len(set(stored) - acked),
                     "dG": dG, "dB": dB, "G_scale": float(np.abs(phi.T @ phi).max()),
                     "ok": not lost and set(stored) <= set(sent) and health["examples"] == len(stored)
                     and health["db_version"] >= svc.model.version,
                     "restart_s": restart_s})
        svc.close()
    stop(proc)
    tmp.cleanup()
    lines = ["# Tagging service fault test (kill -9 during a teach storm)\n",
             f"`python benchmarks/serve_fault.py --rounds {args.rounds} --clients {args.clients} --max-batch "
             f"{args.max_batch} --d {args.d} --M {args.M}`{'' if args.db is None else ' --db <url>'}; backend "
             f"{db.split(':')[0]}.\n",
             "| round | kill after s | acked this round | acked total | stored | acked but lost | stored, reply lost "
             "| max abs ΔG vs numpy fit | max abs ΔB | max abs G | check | restart s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['round']} | {r['kill_s']:.1f} | {r['acked']} | {r['acked_total']} | {r['stored']} | "
                     f"{r['lost']} | {r['unacked_stored']} | {r['dG']:.1e} | {r['dB']:.1e} | {r['G_scale']:.0f} | "
                     f"{'ok' if r['ok'] else 'FAIL'} | {r['restart_s']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    if not all(r["ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
