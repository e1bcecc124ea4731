"""Where a teach's cost goes in the tagging service, against a prediction's: CPU and wall time per request.

    python benchmarks/serve_teach_cost.py              # SQLite (+ PostgreSQL at $MLCIL_TEST_POSTGRES_URL)

In one process, no HTTP: the service (d = 512, M = 1024, 20 labels, --preload examples) answers
--n batch-1 predictions and --n single-example teaches, one after the other, measuring per request
the wall time and this thread's CPU time (``time.thread_time``): a teach's own work (checks, SQL
statements) and its commit (the fsync is wall time, not CPU); then the refresh that publishes them
(CPU of the catch-up of the statistics and of the solve W = (G + λI)⁻¹B). Then the same teaches
from 8 threads at once, through the group commit: commits per teach and wall time per teach.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mlcil.serve.app import limit_threads
from mlcil.serve.model import Model
from serve_load import drop_schema, fresh_schema
from serve_storage import labelled_service


def measure(db: str, args) -> dict:
    svc, names, A, rng = labelled_service(db, args.M, args.d, args.labels)

    def batch(n):
        X = rng.normal(size=(n, args.d)).astype(np.float32)
        return X, [{nm: int(y[j]) for j, nm in enumerate(names) if rng.random() < 0.6} for y in X @ A > 0.8]

    for b in range(0, args.preload, 500):
        X, L = batch(500)
        svc.teach(list(X), L, [f"p{b + i}" for i in range(500)])
    svc.refresh()
    out: dict = {}
    P = rng.normal(size=(args.n, args.d)).astype(np.float32)
    c0, w0 = time.thread_time(), time.perf_counter()
    for i in range(args.n):
        svc.predict(P[i:i + 1])
    out["predict_cpu_ms"] = (time.thread_time() - c0) / args.n * 1e3
    out["predict_wall_ms"] = (time.perf_counter() - w0) / args.n * 1e3
    X, L = batch(args.n)
    c0, w0 = time.thread_time(), time.perf_counter()
    for i in range(args.n):
        svc.teach([X[i]], [L[i]], [f"t{i}"])
    out["teach_cpu_ms"] = (time.thread_time() - c0) / args.n * 1e3
    out["teach_wall_ms"] = (time.perf_counter() - w0) / args.n * 1e3
    c0, w0 = time.thread_time(), time.perf_counter()
    with svc.store.read() as tx:  # the refresh, in its two parts
        from mlcil.serve import journal

        state = journal.advance(tx, svc.state, svc._feature_map())  # noqa: SLF001 - measuring the refresh's parts
    out["catch_up_cpu_ms"] = (time.thread_time() - c0) * 1e3
    c0 = time.thread_time()
    Model.build(state, svc._feature_map())  # noqa: SLF001
    out["solve_cpu_ms"] = (time.thread_time() - c0) * 1e3
    svc.refresh()
    X, L = batch(args.n)
    groups0, works0 = svc.commits.groups, svc.commits.works
    w0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: svc.teach([X[i]], [L[i]], [f"c{i}"]), range(args.n)))
    out["concurrent_teach_wall_ms"] = (time.perf_counter() - w0) / args.n * 1e3
    out["teaches_per_commit"] = (svc.commits.works - works0) / max(svc.commits.groups - groups0, 1)
    svc.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--M", type=int, default=1024)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--preload", type=int, default=5000)
    ap.add_argument("--postgres", default=os.environ.get("MLCIL_TEST_POSTGRES_URL"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_teach_cost.md")
    args = ap.parse_args()
    limit_threads(1)
    tmp = tempfile.TemporaryDirectory()
    results = {"sqlite": measure(f"sqlite:///{tmp.name}/cost.db", args)}
    if args.postgres and args.postgres != "none":
        url, schema = fresh_schema(args.postgres)
        try:
            results["postgresql"] = measure(url, args)
        finally:
            drop_schema(args.postgres, schema)
    keys = ["predict_cpu_ms", "predict_wall_ms", "teach_cpu_ms", "teach_wall_ms", "catch_up_cpu_ms", "solve_cpu_ms",
            "concurrent_teach_wall_ms", "teaches_per_commit"]
    lines = [f"# Where a teach's cost goes ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"`python benchmarks/serve_teach_cost.py --n {args.n}`; {os.cpu_count()} cores shared (load average "
             f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}); d = {args.d}, M = {args.M}, {args.labels} labels, "
             f"{args.preload} examples; one BLAS thread; no HTTP. Per request: CPU of the calling thread and wall "
             f"time; the refresh after {args.n} single teaches: catch-up of the statistics and the solve, CPU.", "",
             "| database | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for backend, r in results.items():
        lines.append(f"| {backend} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
