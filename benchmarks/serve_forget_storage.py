"""Storage of the tagging service before and after forgetting half of its examples, SQLite and PostgreSQL.

    python benchmarks/serve_forget_storage.py                       # 20k × 384, SQLite (+ $MLCIL_TEST_POSTGRES_URL)
    python benchmarks/serve_forget_storage.py --n 20000 --d 384 --postgres postgresql://...

Per backend (a fresh SQLite file; a fresh PostgreSQL schema, dropped at the end): teaches --n random
examples (batches of 500, through the domain API, calibration off), then forgets every other one (in
batches of 1000, as ``POST /v1/forget`` with the default max_batch would), then teaches as many new
ones again. After each step: the database's bytes on disk (SQLite: file + WAL; PostgreSQL: the
service's tables with indexes and TOAST), the bytes per stored vector and the ratio to the float32
vectors' bytes (n × d × 4).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mlcil.serve.service import TaggingService
from serve_load import drop_schema, fresh_schema
from serve_storage import labelled_service


def teach(svc: TaggingService, rng, first: int, n: int, d: int, names: list[str], A: np.ndarray) -> None:
    for b in range(0, n, 500):
        X = rng.normal(size=(min(500, n - b), d)).astype(np.float32)
        Y = X @ A > 0.8
        labels = [{nm: int(y[j]) for j, nm in enumerate(names) if rng.random() < 0.6} for y in Y]
        svc.teach(list(X), labels, [f"x{first + b + i}" for i in range(len(X))])
        svc.maybe_snapshot()


def measure(db: str, args) -> list[dict]:
    svc, names, A, rng = labelled_service(db, args.M, args.d, args.labels)
    steps = []

    def step(what: str, seconds: float) -> None:
        svc.refresh()
        size = svc.store.size_bytes()
        with svc.store.read() as tx:
            n = tx.count_examples()
            snapshots = tx.count_snapshots()
        steps.append({"step": what, "examples": n, "bytes": size, "bytes_per_vector": size / n,
                      "over_vectors": size / (n * args.d * 4), "snapshots": snapshots, "seconds": seconds})

    start = time.perf_counter()
    teach(svc, rng, 0, args.n, args.d, names, A)
    svc.store.vacuum()
    step(f"taught {args.n}", time.perf_counter() - start)
    start = time.perf_counter()
    gone = [f"x{i}" for i in range(0, args.n, 2)]
    for b in range(0, len(gone), 1000):
        svc.forget_examples(gone[b:b + 1000])
    step("forgot every other one", time.perf_counter() - start)
    start = time.perf_counter()
    teach(svc, rng, args.n, args.n // 2, args.d, names, A)
    svc.store.vacuum()
    step(f"taught {args.n // 2} new ones", time.perf_counter() - start)
    svc.close()
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--M", type=int, default=1024)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--postgres", default=os.environ.get("MLCIL_TEST_POSTGRES_URL"),
                    help="PostgreSQL server URL (a fresh schema is used; 'none' = SQLite only)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_forget_storage.md")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    results = {"sqlite": measure(f"sqlite:///{tmp.name}/forget.db", args)}
    if args.postgres and args.postgres != "none":
        url, schema = fresh_schema(args.postgres)
        try:
            results["postgresql"] = measure(url, args)
        finally:
            drop_schema(args.postgres, schema)
    lines = [f"# Tagging service storage after forgetting ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"`python benchmarks/serve_forget_storage.py --n {args.n} --d {args.d} --M {args.M}`; "
             f"{os.cpu_count()} cores shared; vectors are {args.d * 4} bytes each (float32).", "",
             "| database | step | examples | MB | bytes per stored vector | / vector bytes | snapshots | s |",
             "|---|---|---|---|---|---|---|---|"]
    for backend, steps in results.items():
        for s in steps:
            lines.append(f"| {backend} | {s['step']} | {s['examples']} | {s['bytes'] / 1e6:.1f} | "
                         f"{s['bytes_per_vector']:.0f} | {s['over_vectors']:.2f} | {s['snapshots']} | "
                         f"{s['seconds']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
