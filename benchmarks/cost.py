"""Cost of the Analytic learner: learning throughput, solve time and peak memory vs M and d,
and the statistics-accumulation rate against this machine's plain matrix-multiply rate,
measured side by side in the same process.

    python benchmarks/cost.py                # full table (each configuration in a fresh process)
    python benchmarks/cost.py --n 20000 --M 1024,2048,4096 --d 128,512,1024

Columns:
  learn ex/s     examples per second of Analytic.learn on one session of n rows (features,
                 statistics, leave-one-out λ search, α search, solve, calibration)
  accumulate ex/s  examples per second of the statistics pass alone (features + G, B)
  matmul ratio   time of a bare float64 ΦᵀΦ on precomputed features / time of the full
                 accumulation pass (feature map + ΦᵀΦ + ΦᵀY) for the same n, M: the share of
                 the machine's plain matmul rate the accumulation reaches (goal ≥ 50%)
  solve s        one Cholesky solve of the (M+d)×(M+d) system for 10 classes
  peak RSS MB    peak resident memory of the process that ran the configuration
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch


def one(n: int, d: int, M: int, precision: str, classes: int = 10) -> dict:
    from mlcil import ridge
    from mlcil.learners import Analytic
    from mlcil.protocols import Session

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = (rng.random((n, classes)) < 0.1).astype(np.uint8)
    learner = Analytic(M=M, precision=precision, include_x=True, scaling="standardize")
    # warm-up on a small session so that one-off library start-up is not timed
    Analytic(M=64).learn(Session(X[:200], Y[:200], np.arange(classes), np.arange(200)))
    start = time.perf_counter()
    learner.learn(Session(X, Y, np.arange(classes), np.arange(n)))
    learn_s = time.perf_counter() - start

    fmap = learner.feature_map
    acc_s = float("inf")
    for _ in range(2):  # best of two, like the bare matmul below
        start = time.perf_counter()
        st = ridge.partial_statistics(fmap, X, Y, precision=precision)
        acc_s = min(acc_s, time.perf_counter() - start)

    dtype = torch.float64 if precision == "float64" else torch.float32
    phi = torch.cat([p for _, p in fmap.chunks(X)]).to(dtype)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        _ = phi.T @ phi
        best = min(best, time.perf_counter() - start)

    start = time.perf_counter()
    ridge.ridge_solve(st.G, st.B, 1.0)
    solve_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "d": d, "M": M, "precision": precision, "learn_ex_s": n / learn_s, "acc_ex_s": n / acc_s,
            "matmul_ratio": best / acc_s, "matmul_gflops": 2 * n * phi.shape[1] ** 2 / best / 1e9,
            "solve_s": solve_s, "peak_mb": peak, "state_mb": learner.state_bytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--M", default="1024,2048,4096")
    parser.add_argument("--d", default="128,512,1024")
    parser.add_argument("--precision", default="float64,float32")
    parser.add_argument("--one", nargs=4, metavar=("N", "D", "M", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        n, d, M, precision = args.one
        print(json.dumps(one(int(n), int(d), int(M), precision)))
        return
    rows = []
    for precision in args.precision.split(","):
        for d in map(int, args.d.split(",")):
            for M in map(int, args.M.split(",")):
                out = subprocess.run([sys.executable, __file__, "--one", str(args.n), str(d), str(M), precision],
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(f"done d={d} M={M} {precision}: {r['learn_ex_s']:.0f} ex/s", file=sys.stderr, flush=True)
    print(f"\nAnalytic cost, n = {args.n} rows in one session, 10 classes, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| precision | d | M | learn ex/s | accumulate ex/s | matmul ratio | matmul GFLOP/s | solve s | state MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['precision']} | {r['d']} | {r['M']} | {r['learn_ex_s']:,.0f} | {r['acc_ex_s']:,.0f} | "
              f"{r['matmul_ratio']:.0%} | {r['matmul_gflops']:.1f} | {r['solve_s']:.2f} | {r['state_mb']:.0f} | "
              f"{r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
