"""Predictions while the model refreshes: how much of the prediction rate a refresh takes away, in one process.

    python benchmarks/serve_contention.py                                   # this tree
    python benchmarks/serve_contention.py --baseline /tmp/old/src          # and another tree, side by side

A service (SQLite, d = 512, M = 1024, 20 labels, --preload examples, no background thread) answers
batch-1 predictions (scores, probabilities, decisions: what /v1/predict computes, without HTTP) in a
loop, first alone, then while a second thread teaches one example and refreshes (catch-up + solve)
without pause — the refresher's work, back to back. Reports predictions/s of both phases and refreshes/s.
A solve that holds the GIL (a LAPACK call that does not release it) shows up as a low "while refreshing"
share. Each tree runs in its own process (``PYTHONPATH=SRC`` for the baseline), one after the other,
``--repeats`` times alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, sys, tempfile, threading, time
import numpy as np
from mlcil.serve.app import limit_threads
from mlcil.serve.service import Options, Policy, TaggingService
from mlcil.serve.store import Store

d, M, L, preload = (int(a) for a in sys.argv[1:5])
seconds = float(sys.argv[5])
limit_threads(1)
svc = TaggingService(Store(f"sqlite:///{tempfile.mkdtemp()}/t.db"), Options(M=M), policy=Policy(background=False))
names = [f"l{j}" for j in range(L)]
for n in names:
    svc.create_label(n)
rng = np.random.default_rng(0)
for start in range(0, preload, 500):
    X = rng.normal(size=(min(500, preload - start), d)).astype(np.float32)
    svc.teach(list(X), [{n: int(x[j] > 0) for j, n in enumerate(names)} for x in X], [None] * len(X))
svc.refresh()
x = rng.normal(size=(1, d)).astype(np.float32)


def predictions(sec):
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < sec:
        model, S = svc.predict(x)
        model.decide(model.proba(S))
        n += 1
    return n / (time.perf_counter() - t)


alone = predictions(seconds)
stop, refreshes = False, [0]


def refresher():
    while not stop:
        svc.teach([rng.normal(size=d).astype(np.float32)], [{names[0]: 1}], [None])
        svc.refresh()
        refreshes[0] += 1


thread = threading.Thread(target=refresher)
thread.start()
start = time.perf_counter()
busy = predictions(2 * seconds)
stop = True
thread.join()
print(json.dumps({"alone": alone, "busy": busy, "refreshes": refreshes[0] / (time.perf_counter() - start)}))
'''


def run(src: Path | None, args) -> dict:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.d), str(args.M), str(args.labels), str(args.preload),
                          str(args.seconds)], capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    out = out.stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, default=None, help="src folder of another mlcil to compare")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--M", type=int, default=1024)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--preload", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3.0, help="predicting alone (twice as long while refreshing)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    trees = [("this tree", None)] + ([(f"baseline {args.baseline}", args.baseline)] if args.baseline else [])
    rows = []
    for r in range(args.repeats):
        for name, src in trees:
            rows.append((name, r + 1, run(src, args)))
    print(f"`python benchmarks/serve_contention.py {' '.join(sys.argv[1:])}`; d = {args.d}, M = {args.M}, "
          f"{args.labels} labels, {args.preload} examples; one BLAS thread\n")
    print("| tree | run | predictions/s alone | predictions/s while refreshing | share | refreshes/s |")
    print("|---|---|---|---|---|---|")
    for name, r, s in rows:
        print(f"| {name} | {r} | {s['alone']:.0f} | {s['busy']:.0f} | {s['busy'] / s['alone']:.0%} | "
              f"{s['refreshes']:.1f} |")


if __name__ == "__main__":
    main()
