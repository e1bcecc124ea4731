"""Registry sweep: a few learners on EVERY registered dataset, one seed, about 5 sessions each.

Each (dataset, learner) cell runs in a fresh process (so its peak RSS is its own) under a time limit,
through the same code path as ``mlcil bench``. Per cell: wall time (load + protocol + learning + every
session's evaluation), peak resident memory, last mAP, and the error line when it fails. Raw-text
datasets are embedded first with the default text encoder (cached, not timed in the cell).

    MLCIL_DATA=../shared/data python benchmarks/sweep.py --out benchmarks/results/sweep
    python benchmarks/sweep.py --datasets rcv1sub1,imdb --learners analytic      # a subset
    python benchmarks/sweep.py --datasets se_crypto@minilm --learners analytic   # an already embedded set, as it is

Prints one Markdown table (rows: datasets; columns: learner × {last mAP, s, GB}) and writes sweep.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

LEARNERS = ("analytic", "joint", "prototype", "finetune")
SESSIONS = 5

CELL = r"""
import json, resource, sys, time
import numpy as np
np.seterr(all="ignore")
from mlcil.bench import BenchConfig, run_benchmark
from mlcil.data import load_dataset
name, protocol, learner, encoder = sys.argv[1:5]
start = time.perf_counter()
if encoder:
    from mlcil.encoders import embed_registered
    ds, _ = embed_registered(name, encoder)
else:
    ds = load_dataset(name)
report = run_benchmark(ds, BenchConfig(protocol=protocol, learners=(learner,), seeds=(0,)), progress=False)
run = report["runs"][0]
print("RESULT " + json.dumps({
    "last_mAP": run["summary"]["last_mAP"], "avg_mAP": run["summary"]["avg_mAP"],
    "learn_s": run["summary"]["learn_s"], "state_bytes": run["summary"]["state_bytes"],
    "wall_s": time.perf_counter() - start, "n_sessions": report["protocol"]["n_sessions"],
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "n": report["dataset"]["n"], "d": report["dataset"]["d"], "L": report["dataset"]["L"],
    "scaling": run["params"].get("scaling"), "params": {k: v for k, v in run["params"].items() if k in ("M",)},
}))
"""


def protocol_for(L: int, sessions: int = SESSIONS) -> str:
    """B0-C{⌈L / sessions⌉}: about ``sessions`` sessions of equal size."""
    return f"B0-C{max(1, math.ceil(L / sessions))}"


def embedded_row(name: str) -> dict:
    """A dataset embedded earlier (``<raw name>@<encoder>``, found by ``load_dataset``): swept as it is, never
    re-embedded (e.g. one embedded on another machine)."""
    from mlcil.data import load_dataset

    ds = load_dataset(name)
    return {"name": name, "L": ds.L, "d": ds.d}


def run_cell(name: str, protocol: str, learner: str, encoder: str, timeout: float) -> dict:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", CELL, name, protocol, learner, encoder], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s", "wall_s": time.perf_counter() - start}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": tail[:200], "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sweep"))
    parser.add_argument("--datasets", default=None, help="comma-separated names (default: every registered one)")
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per cell")
    parser.add_argument("--encoder", default="minilm", help="text encoder for raw-text datasets")
    args = parser.parse_args()
    from mlcil.data import list_datasets

    rows = [r for r in list_datasets() if r["where"].startswith(("/", "."))]
    if args.datasets:
        wanted = args.datasets.split(",")
        rows = [r for r in rows if r["name"] in wanted] + [embedded_row(name) for name in wanted if "@" in name]
    learners = args.learners.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sweep.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for row in rows:
        name, L = row["name"], int(row["L"])
        encoder = "" if row["d"] != "raw" else args.encoder
        if encoder:  # embed once before the timed cells (cached on disk)
            subprocess.run([sys.executable, "-c", "import sys; from mlcil.encoders import embed_registered; "
                            "embed_registered(sys.argv[1], sys.argv[2])", name, encoder], check=False)
        protocol = protocol_for(L)
        for learner in learners:
            key = f"{name} {learner}"
            cell = run_cell(name, protocol, learner, encoder, args.timeout)
            cell.update(dataset=name, learner=learner, protocol=protocol, load=os.getloadavg()[0])
            results[key] = cell
            path.write_text(json.dumps(results, indent=1))
            status = cell.get("error") or f"last mAP {100 * cell['last_mAP']:.1f}"
            print(f"{key}: {status} ({cell['wall_s']:.0f} s)", flush=True)
    print_table(results, learners)


def print_table(results: dict, learners: list[str]) -> None:
    names = list(dict.fromkeys(v["dataset"] for v in results.values()))
    print("\n| dataset | n | d | L | protocol | " + " | ".join(f"`{l}` last mAP / s / GB" for l in learners) + " |")
    print("|" + "---|" * (5 + len(learners)))
    for name in names:
        cells, info = [], None
        for l in learners:
            c = results.get(f"{name} {l}")
            if c is None:
                cells.append("–")
            elif "error" in c:
                cells.append(f"fails: {c['error'][:60]}")
            else:
                info = info or c
                cells.append(f"{100 * c['last_mAP']:.1f} / {c['wall_s']:.0f} / {c['peak_rss_bytes'] / 1e9:.1f}")
        proto = next((results[f'{name} {l}']['protocol'] for l in learners if f'{name} {l}' in results), "")
        head = f"{info['n']} | {info['d']} | {info['L']}" if info else "– | – | –"
        print(f"| {name} | {head} | {proto} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
