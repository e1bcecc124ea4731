"""Storage of the tagging service after many taught examples, against the bytes of their vectors.

    python benchmarks/serve_storage.py                    # 100k examples, d = 512, M = 1024, SQLite
    python benchmarks/serve_storage.py --db postgresql://... --n 100000

Teaches --n random examples in batches of --batch through the service's domain API (no HTTP), with
the background work of a running server done in line after each batch (snapshots by the default
policy, a refresh every 10 batches; calibration off: it adds one small event), then reports the database size on disk (SQLite:
file + WAL after a checkpoint; PostgreSQL: the service's tables with indexes and TOAST) against
n × d × 4 bytes of float32 vectors, the snapshots kept, the events left in the log, and the
time to open the database again (snapshot + replay of the log).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mlcil.serve.service import Options, Policy, TaggingService
from mlcil.serve.store import Store


def labelled_service(db: str, M: int, d: int, labels: int, seed: int = 0):
    """(service on ``db`` with labels label0.., their names, a d×labels linear label model A, the rng that drew A):
    the set-up the storage and teach-cost benchmarks share; rows are labelled by X @ A > 0.8."""
    svc = TaggingService(Store(db), Options(M=M), policy=Policy(background=False, calibrate=False))
    names = [f"label{j}" for j in range(labels)]
    for name in names:
        svc.create_label(name)
    rng = np.random.default_rng(seed)
    return svc, names, rng.normal(size=(d, labels)) / np.sqrt(d), rng


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--M", type=int, default=1024)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_storage.md")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db or f"sqlite:///{tmp.name}/storage.db"
    svc, names, A, rng = labelled_service(db, args.M, args.d, args.labels)
    start = time.perf_counter()
    snapshots = 0
    for b in range(0, args.n, args.batch):
        X = rng.normal(size=(min(args.batch, args.n - b), args.d)).astype(np.float32)
        Y = X @ A > 0.8
        labels = [{nm: int(y[j]) for j, nm in enumerate(names) if rng.random() < 0.6} for y in Y]
        svc.teach(list(X), labels, [f"x{b + i}" for i in range(len(X))])
        if (b // args.batch) % 10 == 9:  # what the refresher of a running server does meanwhile
            svc.refresh()
        snapshots += svc.maybe_snapshot()
    teach_s = time.perf_counter() - start
    svc.store.vacuum()
    size = svc.store.size_bytes()
    with svc.store.read() as tx:
        kept = tx.one("SELECT COUNT(*) FROM snapshots")[0]
        events = tx.one("SELECT COUNT(*) FROM events")[0]
    svc.close()
    start = time.perf_counter()
    again = TaggingService(Store(db), policy=Policy(background=False))
    open_s = time.perf_counter() - start
    assert again.model.n_examples == args.n
    again.close()
    vectors = args.n * args.d * 4
    D = args.M + (args.d if args.d <= 1024 else 0)
    lines = [f"# Tagging service storage ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"`python benchmarks/serve_storage.py --n {args.n} --d {args.d} --M {args.M}`"
             f"{'' if args.db is None else ' --db <url>'}; {'SQLite' if db.startswith('sqlite') else 'PostgreSQL'}; "
             f"{os.cpu_count()} cores shared (load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}).", "",
             "| examples | vectors MB | database MB | database / vectors | snapshots written | kept | "
             "snapshot MB | events in the log | teach s | reopen s |", "|---|---|---|---|---|---|---|---|---|---|",
             f"| {args.n} | {vectors / 1e6:.1f} | {size / 1e6:.1f} | {size / vectors:.2f} | {snapshots} | {kept} | "
             f"{D * (D + args.labels) * 8 / 1e6:.1f} | {events} | {teach_s:.0f} | {open_s:.1f} |"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
