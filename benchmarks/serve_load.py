"""Load test of the tagging service on loopback: many clients, mostly predicts, some teaches.

    python benchmarks/serve_load.py                         # 32 clients, 120 s per batch size
    python benchmarks/serve_load.py --seconds 30 --batches 1 --db postgresql://...

Starts ``mlcil serve`` in a subprocess on a fresh database (SQLite in a temporary folder unless
--db names one), creates --labels labels, teaches a warm-up batch, then runs --clients concurrent
clients (asyncio + httpx, one process) for --seconds per batch size: each request is a teach with
probability --teach (else a predict) of --batch examples, d-dimensional random embeddings with
labels from a fixed random linear rule (each label known for 60% of the examples).

Columns: requests and examples per second, p50/p99 latency per operation (ms, client side,
including JSON encoding on the server), errors (non-2xx or transport), and the durability
check: examples acknowledged by teach (+ warm-up) == examples stored in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve.helpers import start_server, stop  # noqa: E402


def bodies(rng: np.random.Generator, kind: str, n_bodies: int, batch: int, d: int, labels: list[str],
           A: np.ndarray) -> list[tuple[bytes, int]]:
    """Pre-encoded request bodies (so the client spends its CPU on sending, not on JSON)."""
    out = []
    for _ in range(n_bodies):
        X = rng.normal(size=(batch, d)).astype(np.float32)
        if kind == "predict":
            out.append((json.dumps({"vectors": np.round(X, 5).tolist()}).encode(), batch))
            continue
        Y = (X @ A > 0.8)
        examples = [{"vector": np.round(x, 5).tolist(),
                     "labels": {name: int(y[j]) for j, name in enumerate(labels) if rng.random() < 0.6}}
                    for x, y in zip(X, Y)]
        out.append((json.dumps({"examples": examples}).encode(), batch))
    return out


async def run(url: str, clients: int, seconds: float, batch: int, teach_p: float, d: int, labels: list[str],
              A: np.ndarray, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    pool = {"teach": bodies(rng, "teach", 64, batch, d, labels, A),
            "predict": bodies(rng, "predict", 64, batch, d, labels, A)}
    lat: dict[str, list[float]] = {"teach": [], "predict": []}
    errors = {"teach": 0, "predict": 0}
    acked = 0
    stop_at = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal acked
        r = random.Random(seed * 1000 + k)
        while time.perf_counter() < stop_at:
            op = "teach" if r.random() < teach_p else "predict"
            body, n = pool[op][r.randrange(len(pool[op]))]
            start = time.perf_counter()
            try:
                resp = await http.post(f"{url}/v1/{op}", content=body, headers=headers)
                ok = resp.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                lat[op].append(time.perf_counter() - start)
                if op == "teach":
                    acked += len(resp.json()["ids"])
            else:
                errors[op] += 1

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    elapsed = time.perf_counter() - start
    return {"lat": lat, "errors": errors, "acked": acked, "elapsed": elapsed}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file in a temp folder)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=120.0, help="per batch size")
    ap.add_argument("--batches", default="1,64", help="batch sizes, comma-separated")
    ap.add_argument("--teach", type=float, default=0.1, help="share of teach requests")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--M", type=int, default=1024)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_load.md")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    db = args.db or f"sqlite:///{tmp.name}/load.db"
    proc, url = start_server(db, None, "--features", str(args.M), "--dim", str(args.d), "--max-batch", "1024",
                             "--max-body-mb", "64")
    rows = []
    try:
        names = [f"label{j}" for j in range(args.labels)]
        for name in names:
            httpx.post(f"{url}/v1/labels", json={"name": name}).raise_for_status()
        rng = np.random.default_rng(0)
        A = rng.normal(size=(args.d, args.labels)) / np.sqrt(args.d) * 2
        warm = bodies(rng, "teach", 4, 64, args.d, names, A)
        for body, _ in warm:
            httpx.post(f"{url}/v1/teach", content=body, headers={"content-type": "application/json"},
                       timeout=60).raise_for_status()
        expected = 4 * 64
        for b in [int(x) for x in args.batches.split(",")]:
            res = asyncio.run(run(url, args.clients, args.seconds, b, args.teach, args.d, names, A, seed=b))
            expected += res["acked"]
            stored = httpx.get(f"{url}/v1/health", timeout=60).json()["examples"]
            for op in ("predict", "teach"):
                n = len(res["lat"][op])
                rows.append({"batch": b, "op": op, "requests": n, "req_s": n / res["elapsed"],
                             "ex_s": n * b / res["elapsed"], "p50": pct(res["lat"][op], 50),
                             "p99": pct(res["lat"][op], 99), "errors": res["errors"][op],
                             "seconds": res["elapsed"]})
            rows.append({"batch": b, "check": f"acknowledged {expected} == stored {stored}: {expected == stored}"})
    finally:
        stop(proc)
        tmp.cleanup()

    lines = [f"# Tagging service load test\n",
             f"`python benchmarks/serve_load.py --clients {args.clients} --seconds {args.seconds:g} "
             f"--batches {args.batches} --teach {args.teach} --d {args.d} --M {args.M} --labels {args.labels}`"
             f"{'' if args.db is None else ' --db <url>'}\n",
             f"Backend: {db.split(':')[0]}; one `mlcil serve` process (uvicorn, 1 worker) and the clients on the "
             f"same machine over loopback ({platform.machine()}, {__import__('os').cpu_count()} cores, shared); "
             f"latencies measured by the clients, in ms.\n",
             "| batch | op | requests | req/s | examples/s | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|---|"]
    checks = []
    for r in rows:
        if "check" in r:
            checks.append(f"- batch {r['batch']}: {r['check']}")
            continue
        lines.append(f"| {r['batch']} | {r['op']} | {r['requests']} | {r['req_s']:.1f} | {r['ex_s']:.1f} | "
                     f"{r['p50']:.1f} | {r['p99']:.1f} | {r['errors']} |")
    text = "\n".join(lines) + "\n\nDurability (cumulative over the runs, incl. a 256-example warm-up):\n\n" + \
        "\n".join(checks) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
