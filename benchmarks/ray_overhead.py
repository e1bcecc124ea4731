"""Ray's overhead on one machine: one large session learned by ``analytic`` locally and through
:class:`~mlcil.engines.RayEngine` (a local cluster on the same cores), in the same run, alternating.

    python benchmarks/ray_overhead.py                          # 200k x 768, M = 2048, one pair
    python benchmarks/ray_overhead.py --rows 20000 --repeats 2  # quick

Columns:
  engine            local (this process, torch threads = cores) or ray (one task per block, one core each)
  learn s           Analytic.learn on the whole session (scaling, λ and α searches on samples, the
                    full-data statistics pass, solve, calibration)
  statistics s      time inside the engine's full-data passes (for ray: splitting, putting the blocks in
                    the object store, tasks, tree of sums, fetching the root)
  ratio             ray / local of the column before, same repeat
  max |ΔW| / max|W| the two learners' weights compared
Cluster start-up (ray.init) and the first tasks' worker start-up are timed separately: they are paid
once per process, not per session. Writes a Markdown table (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch


def timed(inner):
    """An engine that runs ``inner`` and adds up the seconds spent in its passes."""
    from mlcil.engines import Engine

    class Timed(Engine):
        name, local = inner.name, inner.local
        seconds, calls = 0.0, 0

        def _time(self, fn, *args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        def accumulate(self, *args, **kwargs):
            return self._time(inner.accumulate, *args, **kwargs)

        def statistics(self, *args, **kwargs):
            return self._time(inner.statistics, *args, **kwargs)

    return Timed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--M", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray/overhead.md"))
    args = parser.parse_args()

    from mlcil.engines import LOCAL, RayEngine
    from mlcil.learners import Analytic
    from mlcil.protocols import Session

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.d)).astype(np.float32)
    W_true = rng.normal(size=(args.d, args.classes)).astype(np.float32)
    Y = (X @ W_true / np.sqrt(args.d) + rng.normal(size=(args.rows, args.classes)) > 1.2).astype(np.uint8)
    session = Session(X, Y, np.arange(args.classes), np.arange(args.rows))

    t0 = time.perf_counter()
    ray_engine = RayEngine(num_cpus=args.cpus, progress=False)
    ray_engine.start()
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()  # first tasks: workers start and import torch and mlcil
    Analytic(M=32).learn(Session(X[:3000], Y[:3000], np.arange(args.classes), np.arange(3000)), engine=ray_engine)
    warm_s = time.perf_counter() - t0
    Analytic(M=32).learn(Session(X[:3000], Y[:3000], np.arange(args.classes), np.arange(3000)))  # local warm-up

    rows, learners = [], {}
    for rep in range(args.repeats):
        times = {}
        for name, engine in (("local", LOCAL), ("ray", ray_engine)):
            engine = timed(engine)
            learner = Analytic(M=args.M)
            start = time.perf_counter()
            learner.learn(session, engine=engine)
            times[name] = (time.perf_counter() - start, engine.seconds, engine.calls)
            learners[name] = learner
            print(f"repeat {rep} {name}: learn {times[name][0]:.1f} s, statistics {times[name][1]:.1f} s "
                  f"({times[name][2]} passes)", file=sys.stderr, flush=True)
        W_local, W_ray = learners["local"].W_, learners["ray"].W_
        dW = float((W_ray - W_local).abs().max() / W_local.abs().max())
        for name in ("local", "ray"):
            learn_s, stats_s, calls = times[name]
            rows.append((rep, name, learn_s, stats_s, calls, learn_s / times["local"][0],
                         stats_s / times["local"][1], dW if name == "ray" else 0.0))
    ray_engine.close()

    D = learners["local"].feature_map.D
    lines = [
        f"# Ray overhead: {args.rows:,} × {args.d} session, analytic M = {args.M} (D = {D}), {args.classes} classes",
        "",
        f"`python benchmarks/ray_overhead.py --rows {args.rows} --d {args.d} --M {args.M} --repeats {args.repeats}` "
        f"on {platform.machine()} with {os.cpu_count()} cores (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads locally; Ray cluster of {args.cpus} CPUs, one block per CPU). "
        f"Load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        f"Cluster start (ray.init): {start_s:.1f} s; first tasks (workers start, import torch and mlcil): "
        f"{warm_s:.1f} s — once per process.",
        "",
        "| repeat | engine | learn s | statistics s | passes | learn ratio | statistics ratio | max ΔW / max W |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rep, name, learn_s, stats_s, calls, r1, r2, dW in rows:
        lines.append(f"| {rep} | {name} | {learn_s:.1f} | {stats_s:.1f} | {calls} | {r1:.2f} | {r2:.2f} | "
                     f"{dW:.1e} |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
