"""Cost of the Analytic learner: learning throughput, solve time and peak memory vs M and d,
and the statistics-accumulation rate against this machine's plain matrix-multiply rate,
measured side by side in the same process.

    python benchmarks/cost.py                # full table (each configuration in a fresh process)
    python benchmarks/cost.py --n 20000 --M 1024,2048,4096 --d 128,512,1024

    # each new session against scikit-learn's one-vs-rest logistic regression retrained on every row seen so far
    # (side by side in one process, d = 384, 30 labels, 5 sessions; wall and CPU seconds), and a first session of
    # 100 rows; above 20,000 rows only the last session is timed (--last-only; the first four learned as one):
    python benchmarks/cost.py --retrain --rows 1000,10000,100000
    python benchmarks/cost.py --retrain --rows 1000,10000 --M 512,1024,2048   # candidates for M

    # the ridge core alone, this checkout against another one's src/ side by side (fresh processes,
    # alternating, one BLAS thread each; best of --repeat):
    python benchmarks/cost.py --core --compare /tmp/mlcil_old/src --n 8000 --M 1024,2048 --d 128,512

Columns:
  learn ex/s     examples per second of Analytic.learn on one session of n rows (features,
                 statistics, leave-one-out λ search, α search, solve, calibration)
  accumulate ex/s  examples per second of the statistics pass alone (features + G, B)
  matmul ratio   time of a bare float64 ΦᵀΦ on precomputed features / time of the full
                 accumulation pass (feature map + ΦᵀΦ + ΦᵀY) for the same n, M: the share of
                 the machine's plain matmul rate the accumulation reaches (goal ≥ 50%)
  solve s        one Cholesky solve of the (M+d)×(M+d) system for 10 classes
  peak RSS MB    peak resident memory of the process that ran the configuration

Columns of ``--core`` (each a time in seconds of the ridge core alone, old → new and new/old speed):
  projection     R = gaussian_projection(d, M, seed)
  features       φ of every row (the map's chunks), include_x, scaling 'standardize'
  accumulate     partial_statistics(φ, Y) for 10 classes, without / with per-row weights
  solve          ridge_solve(G, B, λ) (Cholesky) for 10 classes
  eigh           ridge.eigh(G), the λ path's eigendecomposition
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import os
from pathlib import Path

import numpy as np


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

    phi = np.concatenate([np.asarray(p) for _, p in fmap.chunks(X)]).astype(precision)
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


def as_numpy(a):
    """An ndarray from either core (the old one returned torch tensors)."""
    return a.cpu().numpy() if hasattr(a, "cpu") else np.asarray(a)


def core_one(n: int, d: int, M: int, precision: str, classes: int = 10) -> dict:
    """Seconds of each stage of the ridge core (whichever ``mlcil`` is on the path), best of two."""
    from mlcil import ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = (rng.random((n, classes)) < 0.1).astype(np.uint8)
    w = ridge.imbalance_weights(Y)
    small = ridge.FeatureMap.fit(X[:300], M=64, scaling="standardize", include_x=True)  # warm-up
    ridge.ridge_solve(ridge.partial_statistics(small, X[:300], Y[:300], w[:300], precision=precision).G,
                      ridge.partial_statistics(small, X[:300], Y[:300], precision=precision).B, 1.0)

    def best(f, k=2):
        t = float("inf")
        for _ in range(k):
            start = time.perf_counter()
            out = f()
            t = min(t, time.perf_counter() - start)
        return t, out

    out = {"n": n, "d": d, "M": M, "precision": precision}
    out["projection"], _ = best(lambda: ridge.gaussian_projection(d, M, 0))
    fmap = ridge.FeatureMap.fit(X, M=M, seed=0, scaling="standardize", include_x=True)
    out["features"], _ = best(lambda: [p for _, p in fmap.chunks(X)])
    out["accumulate"], st = best(lambda: ridge.partial_statistics(fmap, X, Y, precision=precision))
    out["accumulate_w"], _ = best(lambda: ridge.partial_statistics(fmap, X, Y, w, precision=precision))
    lam = float(np.trace(as_numpy(st.G))) / st.G.shape[0]
    out["solve"], W = best(lambda: ridge.ridge_solve(st.G, st.B, lam))
    out["eigh"], _ = best(lambda: ridge.eigh(st.G), k=1)
    out["W_digest"] = float(np.abs(as_numpy(W)).sum())  # the same problem: equal to float rounding
    return out


def topic_data(n: int, d: int = 384, labels: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X n×d float32 unit rows, Y n×labels uint8): sentence-embedding-like rows, each a noisy mix of one or
    two of 2·labels topic directions; label c is on when one of its two topics is in the row (every row has one)."""
    rng = np.random.default_rng(1234)
    topics = rng.normal(size=(2 * labels, d))
    owner = rng.permutation(2 * labels) % labels  # topic -> label
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, 2 * labels, size=(n, 2))
    two = rng.random(n) < 0.4
    X = topics[picks[:, 0]] * rng.random((n, 1)) + (topics[picks[:, 1]] * rng.random((n, 1))) * two[:, None]
    X += 0.6 * rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.zeros((n, labels), dtype=np.uint8)
    Y[np.arange(n), owner[picks[:, 0]]] = 1
    Y[np.arange(n)[two], owner[picks[two, 1]]] = 1
    return X.astype(np.float32), Y


def retrain_one(n: int, every: bool, M: int = 2048, last_only: bool = False) -> dict:
    """Seconds (wall and this process's CPU) of each session of ``Analytic(M=M)`` on n rows (5 sessions of 6 of
    30 labels, the field's protocol) and of scikit-learn's one-vs-rest logistic regression retrained on every row
    seen so far with every seen label (after each session when ``every``, else after the last only), in one
    process. ``last_only``: the first four sessions are learned as one session (their union, the first session's
    classes at once: the state the last session meets has the same size) and only the last one is timed against
    the retrain on all n rows; a 100k-row stream then fits in minutes."""
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from mlcil.data.dataset import Dataset
    from mlcil.learners import Analytic
    from mlcil.protocols import Protocol, Session

    X, Y = topic_data(n)
    stream = Protocol("B0-C6", order="dataset", test_size=0.0001).build(
        Dataset(X, Y, [f"tag{i}" for i in range(Y.shape[1])], name="topics"))
    sessions = list(stream)
    learner = Analytic(M=M)
    out = {"n": n, "sessions": [], "M": None, "last_only": last_only}
    if last_only:  # the union of the first four sessions, their classes at once (rows in several kept once)
        head = stream.joint_session(len(sessions) - 2)
        learner.learn(Session(head.X, head.Y, head.classes, head.index))
        sessions = sessions[-1:]
    for session in sessions:
        t = session.t
        wall, cpu = time.perf_counter(), time.process_time()
        learner.learn(session)
        cell = {"t": int(t), "rows": int(session.n), "learn_s": time.perf_counter() - wall,
                "learn_cpu": time.process_time() - cpu}
        if every or t == len(stream) - 1:
            joint = stream.joint_session(t)
            wall, cpu = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                OneVsRestClassifier(LogisticRegression(max_iter=100)).fit(joint.X, joint.Y)
            cell.update(seen=int(joint.n), retrain_s=time.perf_counter() - wall, retrain_cpu=time.process_time() - cpu)
        out["sessions"].append(cell)
    out["M"] = int(learner.R_.shape[1])
    out["D"] = int(learner.feature_map.D)
    X1, Y1 = topic_data(100, seed=1)
    first = Analytic(M=M)
    wall, cpu = time.perf_counter(), time.process_time()
    first.learn(Session(X1, Y1[:, :6], np.arange(6), np.arange(100)))
    out["first100_s"], out["first100_cpu"] = time.perf_counter() - wall, time.process_time() - cpu
    return out


def retrain_table(args) -> None:
    rows = []
    for M in map(int, args.M.split(",")):
        for n in map(int, args.rows.split(",")):
            last = args.last_only or n > 20000
            proc = subprocess.run([sys.executable, __file__, "--retrain-one", str(n), "1" if n <= 20000 else "0",
                                   "--M", str(M)] + (["--last-only"] if last else []),
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"done M={M} n={n}", file=sys.stderr, flush=True)
    print(f"\nload average before the table: {os.getloadavg()[0]:.1f} (1 min)")
    print("\n| rows | M | D | session | rows in session | `analytic` learn s (CPU s) | rows seen | "
          "LR one-vs-rest retrain s (CPU s) | ratio, wall (CPU) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for c in r["sessions"]:
            if "retrain_s" in c:
                print(f"| {r['n']:,} | {r['M']} | {r['D']} | {c['t'] + 1}{' (last only)' if r['last_only'] else ''} | "
                      f"{c['rows']:,} | {c['learn_s']:.2f} ({c['learn_cpu']:.2f}) | {c['seen']:,} | "
                      f"{c['retrain_s']:.2f} ({c['retrain_cpu']:.2f}) | {c['retrain_s'] / c['learn_s']:.2f}× "
                      f"({c['retrain_cpu'] / c['learn_cpu']:.2f}×) |")
    print("\nfirst session of 100 rows (6 labels), wall (CPU): " + ", ".join(
        f"M = {r['M']}: {r['first100_s']:.2f} s ({r['first100_cpu']:.2f} s)" for r in rows))


CORE_STAGES = ("projection", "features", "accumulate", "accumulate_w", "solve", "eigh")


def core_compare(args) -> None:
    """--core: the stages of :func:`core_one` for this checkout and (``--compare``) another src/."""
    here = str(Path(__file__).resolve().parents[1] / "src")
    impls = {"new": here} if not args.compare else {"old": args.compare, "new": here}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    results: dict[tuple, dict] = {}
    configs = [(p, d, M) for p in args.precision.split(",") for d in map(int, args.d.split(","))
               for M in map(int, args.M.split(","))]
    for rep in range(args.repeat):
        for precision, d, M in configs:
            for name, src in (impls.items() if rep % 2 == 0 else reversed(impls.items())):  # alternate the order
                out = subprocess.run([sys.executable, __file__, "--core-one", str(args.n), str(d), str(M), precision],
                                     capture_output=True, text=True, check=True, env=dict(env, PYTHONPATH=src))
                r = json.loads(out.stdout.strip().splitlines()[-1])
                key = (precision, d, M, name)
                prev = results.get(key)
                results[key] = r if prev is None else {k: min(v, r[k]) if k in CORE_STAGES else v
                                                       for k, v in prev.items()}
                print(f"rep {rep} {name} d={d} M={M} {precision}: accumulate {r['accumulate']:.2f} s",
                      file=sys.stderr, flush=True)
    import scipy
    print(f"\nRidge core, n = {args.n} rows, 10 classes, include_x, one BLAS thread per process, best of "
          f"{args.repeat} runs x 2; numpy {np.__version__}, scipy {scipy.__version__}"
          + (f"; old = {args.compare}" if args.compare else "") + "\n")
    head = " | ".join(CORE_STAGES)
    if not args.compare:
        print(f"| precision | d | M | {head} |\n|---|---|---|" + "---|" * len(CORE_STAGES))
        for precision, d, M in configs:
            r = results[(precision, d, M, "new")]
            print(f"| {precision} | {d} | {M} | " + " | ".join(f"{r[s]:.3f}" for s in CORE_STAGES) + " |")
        return
    print("seconds old → new (speed new/old; > 100% = faster)\n")
    print(f"| precision | d | M | {head} | W agrees |\n|---|---|---|" + "---|" * (len(CORE_STAGES) + 1))
    for precision, d, M in configs:
        o, n_ = results[(precision, d, M, "old")], results[(precision, d, M, "new")]
        cells = [f"{o[s]:.3f} → {n_[s]:.3f} ({o[s] / n_[s]:.0%})" for s in CORE_STAGES]
        agree = abs(o["W_digest"] - n_["W_digest"]) / max(abs(o["W_digest"]), 1e-300)
        print(f"| {precision} | {d} | {M} | " + " | ".join(cells) + f" | {agree:.0e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--M", default="1024,2048,4096")
    parser.add_argument("--d", default="128,512,1024")
    parser.add_argument("--precision", default="float64,float32")
    parser.add_argument("--one", nargs=4, metavar=("N", "D", "M", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--core", action="store_true", help="time the ridge core's stages alone")
    parser.add_argument("--compare", metavar="SRC", help="with --core: another checkout's src/ to run side by side")
    parser.add_argument("--repeat", type=int, default=3, help="with --core: runs per implementation (best kept)")
    parser.add_argument("--core-one", nargs=4, metavar=("N", "D", "M", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--retrain", action="store_true", help="each session against a logistic retrain")
    parser.add_argument("--rows", default="1000,10000,100000", help="with --retrain: stream sizes")
    parser.add_argument("--last-only", action="store_true",
                        help="with --retrain: time the last session only (the first four learned as one session); "
                             "always on above 20,000 rows")
    parser.add_argument("--retrain-one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.retrain_one:
        print(json.dumps(retrain_one(int(args.retrain_one[0]), args.retrain_one[1] == "1", int(args.M),
                                     args.last_only)))
        return
    if args.retrain and args.M == parser.get_default("M"):
        args.M = "2048"  # --retrain: the default Analytic's M unless --M says otherwise
    if args.retrain:
        retrain_table(args)
        return
    if args.core_one:
        n, d, M, precision = args.core_one
        print(json.dumps(core_one(int(n), int(d), int(M), precision)))
        return
    if args.core:
        core_compare(args)
        return
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
    from threadpoolctl import threadpool_info

    threads = max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
    print(f"\nAnalytic cost, n = {args.n} rows in one session, 10 classes, numpy {np.__version__}, "
          f"{threads} BLAS threads\n")
    print("| precision | d | M | learn ex/s | accumulate ex/s | matmul ratio | matmul GFLOP/s | solve s | state MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['precision']} | {r['d']} | {r['M']} | {r['learn_ex_s']:,.0f} | {r['acc_ex_s']:,.0f} | "
              f"{r['matmul_ratio']:.0%} | {r['matmul_gflops']:.1f} | {r['solve_s']:.2f} | {r['state_mb']:.0f} | "
              f"{r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
