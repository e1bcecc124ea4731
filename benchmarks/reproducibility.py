"""How far results move across processes, thread counts and BLAS/SIMD kernels.

Runs the same small bench (default: scene B0-C2 and medical B0-C9; learners analytic, joint,
finetune, prototype, lda; seed 0) in one fresh subprocess per configuration:

- ``MKL_CBWR`` unset / COMPATIBLE / AVX2 / AVX512 (torch's MKL: matrix products, Cholesky,
  eigendecomposition), each with 1 and 2 torch threads;
- ``ATEN_CPU_CAPABILITY=avx2`` (torch's own vectorised kernels: sums, elementwise ops) and
  ``OPENBLAS_CORETYPE=Zen`` (numpy's and scipy's OpenBLAS), one at a time;
- an "AMD-like" configuration with all three set to what an AVX2-only AMD EPYC picks, 2 threads.

For each configuration, dataset and learner it compares, after every session, the scores on
the protocol's test rows with those of the first configuration: max |Δscore| / max |score|,
max |Δproba| and max |ΔmAP| (points), and whether every score is bit-for-bit equal. Prints
Markdown tables (per configuration, and the worst case per learner) and writes them to --out.

    MLCIL_DATA=../shared/data python benchmarks/reproducibility.py --out benchmarks/results/reproducibility

``--work DIR`` keeps each configuration's raw outputs (scores, probabilities, mAP) so that an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SUITE = "scene:B0-C2,medical:B0-C9"
LEARNERS = "analytic,joint,finetune,prototype,lda"
#: (label, environment, torch threads); the first is the reference.
CONFIGS: list[tuple[str, dict[str, str], int]] = [
    ("default, 1 thread", {}, 1),
    ("default, 2 threads", {}, 2),
    *[(f"MKL_CBWR={mode}, {n} thread{'s' if n > 1 else ''}", {"MKL_CBWR": mode}, n)
      for mode in ("COMPATIBLE", "AVX2", "AVX512") for n in (1, 2)],
    ("ATEN_CPU_CAPABILITY=avx2, 1 thread", {"ATEN_CPU_CAPABILITY": "avx2"}, 1),
    ("OPENBLAS_CORETYPE=Zen, 1 thread", {"OPENBLAS_CORETYPE": "Zen"}, 1),
    ("AMD-like (all three AVX2/Zen), 2 threads",
     {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Zen"}, 2),
]
KERNEL_VARS = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE")


# ---- child: one configuration --------------------------------------------------------------
def run_child(suite: str, learners: str, threads: int, out: Path) -> None:
    """Learn every (dataset, learner) stream; save per-session test scores, probabilities and mAP."""
    import threadpoolctl
    import torch

    from mlcil.data import load_dataset
    from mlcil.learners import make_learner
    from mlcil.metrics import mean_average_precision
    from mlcil.protocols import Protocol

    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(threads)
    arrays: dict[str, np.ndarray] = {}
    info = {"torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "blas": [(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
                     for i in threadpoolctl.threadpool_info()], "seconds": {}}
    for item in suite.split(","):
        name, protocol = item.split(":")
        stream = Protocol(protocol).build(load_dataset(name))
        for spec in learners.split(","):
            learner = make_learner(spec, seed=0)
            start = time.perf_counter()
            for t, session in enumerate(stream):
                learner.learn(stream.joint_session(t) if learner.needs_full_labels else session)
                rows = stream.test_rows(t)
                X = stream.X_test[rows]
                S = learner.scores(X)
                P = learner.proba(X)
                Y = stream.Y_test[rows][:, learner.classes_]
                key = f"{name}|{spec}|{t}"
                arrays[key + "|S"], arrays[key + "|P"] = S, P
                arrays[key + "|mAP"] = np.array(mean_average_precision(Y, S)[0])
            info["seconds"][f"{name}|{spec}"] = time.perf_counter() - start
    arrays["__info__"] = np.array(json.dumps(info))
    np.savez(out, **arrays)


# ---- parent: every configuration, then the comparison ----------------------------------------
def run_config(env_extra: dict[str, str], threads: int, suite: str, learners: str, out: Path,
               timeout: float | None) -> dict[str, np.ndarray]:
    """One configuration in a fresh subprocess; its outputs are kept in ``out`` and reused if present."""
    if out.exists():
        with np.load(out) as z:
            return {k: z[k] for k in z.files}
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_VARS}
    env.update(env_extra)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    partial = out.with_name(out.stem + ".partial.npz")
    cmd = [sys.executable, __file__, "--child", "--suite", suite, "--learners", learners,
           "--threads", str(threads), "--child-out", str(partial)]
    subprocess.run(cmd, env=env, check=True, timeout=timeout)
    os.replace(partial, out)
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def compare(ref: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[tuple[str, str], dict]:
    """Per (dataset, learner): worst relative Δscore, |Δproba|, |ΔmAP| (points) over sessions."""
    out: dict[tuple[str, str], dict] = {}
    for key in ref:
        if not key.endswith("|S"):
            continue
        name, spec, t, _ = key.split("|")
        base = key[:-2]
        S0, S1 = ref[key].astype(np.float64), other[key].astype(np.float64)
        P0, P1 = ref[base + "|P"].astype(np.float64), other[base + "|P"].astype(np.float64)
        cell = out.setdefault((name, spec), {"score": 0.0, "proba": 0.0, "map": 0.0, "identical": True})
        cell["score"] = max(cell["score"], float(np.abs(S1 - S0).max() / max(np.abs(S0).max(), 1e-300)))
        cell["proba"] = max(cell["proba"], float(np.abs(P1 - P0).max()))
        cell["map"] = max(cell["map"], 100 * abs(float(other[base + "|mAP"]) - float(ref[base + "|mAP"])))
        cell["identical"] &= bool(np.array_equal(S0, S1) and np.array_equal(P0, P1))
    return out


def fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default=SUITE, help="dataset:protocol,... (default %(default)s)")
    parser.add_argument("--learners", default=LEARNERS, help="learner specs, comma-separated (default %(default)s)")
    parser.add_argument("--configs", default=None, help="indices into the configuration list, e.g. 0,1,2")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per configuration (default: none)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep each configuration's raw outputs here and reuse them on a rerun (resume)")
    parser.add_argument("--out", type=Path, default=None, help="folder for reproducibility.md / .json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.suite, args.learners, args.threads, args.child_out)
        return {}
    configs = CONFIGS if args.configs is None else [CONFIGS[int(i)] for i in args.configs.split(",")]
    results, infos = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ref = None
        for i, (label, env, threads) in enumerate(configs):
            start = time.perf_counter()
            key = hashlib.sha256(json.dumps([args.suite, args.learners, env, threads]).encode()).hexdigest()[:16]
            data = run_config(env, threads, args.suite, args.learners, work / f"{key}.npz", args.timeout)
            info = json.loads(str(data.pop("__info__")))
            info.update(label=label, env=env, threads=threads, wall_s=time.perf_counter() - start)
            infos.append(info)
            print(f"[{i + 1}/{len(configs)}] {label}: {info['wall_s']:.0f} s, torch {info['cpu_capability']}, "
                  f"BLAS {info['blas']}, learn s {json.dumps({k: round(v, 1) for k, v in info['seconds'].items()})}",
                  file=sys.stderr, flush=True)
            if ref is None:
                ref = data
                continue
            results.append((label, compare(ref, data)))
    learners = args.learners.split(",")
    lines = [f"Reference: {configs[0][0]}. Suite {args.suite}, seed 0. Cells: max |Δscore| / max |score| · "
             "max |Δproba| · max |ΔmAP| (points), over datasets and sessions; = means bit-for-bit equal.", "",
             "| configuration | " + " | ".join(f"`{s}`" for s in learners) + " |",
             "|---|" + "---|" * len(learners)]
    worst: dict[str, dict] = {s: {"score": 0.0, "proba": 0.0, "map": 0.0, "identical": True} for s in learners}
    for label, cells in results:
        row = []
        for spec in learners:
            mine = [c for (name, s), c in cells.items() if s == spec]
            agg = {k: max(c[k] for c in mine) for k in ("score", "proba", "map")}
            agg["identical"] = all(c["identical"] for c in mine)
            for k in ("score", "proba", "map"):
                worst[spec][k] = max(worst[spec][k], agg[k])
            worst[spec]["identical"] &= agg["identical"]
            row.append("=" if agg["identical"] else f"{fmt(agg['score'])} · {fmt(agg['proba'])} · {fmt(agg['map'])}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines += ["", "| learner | max rel. Δscore | max abs. Δproba | max ΔmAP (points) | bit-for-bit everywhere |",
              "|---|---|---|---|---|"]
    for spec in learners:
        w = worst[spec]
        lines.append(f"| `{spec}` | {fmt(w['score'])} | {fmt(w['proba'])} | {fmt(w['map'])} | "
                     f"{'yes' if w['identical'] else 'no'} |")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "reproducibility.md").write_text(text + "\n", encoding="utf-8")
        payload = {"suite": args.suite, "learners": learners, "configs": infos,
                   "results": [{"config": label, "cells": [{"dataset": n, "learner": s, **c} for (n, s), c in cells.items()]}
                               for label, cells in results],
                   "worst": worst}
        (args.out / "reproducibility.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return worst


if __name__ == "__main__":
    main()
