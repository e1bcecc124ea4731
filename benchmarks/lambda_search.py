"""How `analytic` chooses λ, compared: 'first' (the default), 'sessions' and 'gcv', with and without the
label memory, on the strategy table's datasets and the sweep's largest analytic-joint gaps.

- 'first': leave-one-out mAP of the first session's rows (λ fixed after it);
- 'sessions': the same curve for every session's own classes on its own rows, summed (class-weighted);
- 'gcv': generalised cross-validation of every session's own rows and given labels, from its statistics
  alone (no row kept), summed, over the λ whose effective degrees of freedom stay at most half the
  session's rows (:data:`mlcil.ridge.GCV_MAX_DOF`). With the label memory and one system for every class
  (α = 1), the continuous GCV minimum of the union's statistics instead (``Joint``'s problem on the rows seen).

Each (dataset, protocol, learner, seed) cell runs in a fresh process with one thread, through the same
code path as `mlcil bench` (:func:`mlcil.bench.runner.run_learner`), and appends one JSON line (last and
average mAP, learn seconds) to ``<out>/results.jsonl``; cells already there are skipped (resumable).

    MLCIL_DATA=../shared/data python benchmarks/lambda_search.py --jobs 2 --out benchmarks/results/lambda_search
    python benchmarks/lambda_search.py --tables --out benchmarks/results/lambda_search     # reprint the tables
    python benchmarks/lambda_search.py --datasets yeast --jobs 2 \
        --specs 'analytic:strategy=pseudo,lambda_search=sessions;analytic:strategy=pseudo,lambda_search=gcv'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

#: (dataset, protocol, classes): the label-absence table's datasets (corel5k with its 50 most frequent
#: classes, scene and emotions under two protocols) and the sweep's datasets with the largest gaps.
CASES = (("tmc2007-500", "B0-C4", None), ("corel5k", "B0-C10", 50), ("enron", "B0-C11", None),
         ("medical", "B0-C9", None), ("scene", "B2-C1", None), ("scene", "B0-C2", None), ("yeast", "B0-C3", None),
         ("birds", "B0-C4", None), ("emotions", "B2-C1", None), ("emotions", "B0-C2", None),
         ("stackex_chess", "B0-C46", None), ("langlog", "B0-C15", None), ("slashdot", "B0-C5", None),
         ("image600", "B0-C1", None))
MEMORY = "analytic:memory=labels"
SPECS = ("joint", "analytic", "analytic:lambda_search=gcv", "analytic:lambda_search=sessions", MEMORY,
         MEMORY + ",lambda_search=gcv")
#: the columns each case runs by default: every spec on the strategy table's datasets; on tmc2007-500 the
#: two 'gcv' ones (the others are in the README's label-absence table); λ searches alone on the sweep's sets.
SWEEP_SETS = {"stackex_chess", "langlog", "slashdot", "image600"}
SHORT = {"joint": "`joint`", "analytic": "`first` (default)", "analytic:lambda_search=gcv": "`gcv`",
         "analytic:lambda_search=sessions": "`sessions`", MEMORY: "memory, `first`",
         MEMORY + ",lambda_search=gcv": "memory, `gcv`"}


def default_specs(dataset: str) -> tuple[str, ...]:
    if dataset == "tmc2007-500":
        return SPECS[2], SPECS[5]
    if dataset in SWEEP_SETS:
        return SPECS[1:4]
    return SPECS


def run_cell(dataset: str, protocol: str, classes: int | None, spec: str, seed: int) -> dict:
    """One cell, in this process: last and average mAP (%) as `mlcil bench` reports them."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # one BLAS thread (the learners run on NumPy/SciPy)
    from mlcil.bench.runner import BenchConfig, run_learner
    from mlcil.data import load_dataset
    from mlcil.protocols import Protocol

    start = time.time()
    stream = Protocol(protocol, seed=seed, n_classes=classes).build(load_dataset(dataset))
    run = run_learner(spec, stream, seed, BenchConfig(protocol=protocol, learners=(spec,), seeds=(seed,),
                                                      n_classes=classes))
    s = run["summary"]
    return {"dataset": dataset, "protocol": protocol, "classes": classes, "spec": spec, "seed": seed,
            "last": 100 * s["last_mAP"], "avg": 100 * s["avg_mAP"], "learn_s": s["learn_s"],
            "wall_s": time.time() - start}


def key(rec: dict) -> tuple:
    return rec["dataset"], rec["protocol"], rec["spec"], int(rec["seed"])


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def tables(records: list[dict]) -> str:
    """Two Markdown tables (last mAP mean ± std over seeds; average mAP), rows = cases, columns = SPECS and
    then any other spec the records hold."""
    cells: dict[tuple, dict[str, list]] = {}
    for r in records:
        cells.setdefault((r["dataset"], r["protocol"]), {}).setdefault(r["spec"], []).append(r)
    specs = SPECS + tuple(sorted({r["spec"] for r in records} - set(SPECS)))
    out = []
    for metric, title in (("last", "last mAP (%), mean ± std over seeds"), ("avg", "average mAP over sessions (%)")):
        out.append(f"{title}; best λ search per row (without memory) in bold\n")
        out.append("| dataset | " + " | ".join(SHORT.get(s, f"`{s}`") for s in specs) + " |")
        out.append("|---|" + "---|" * len(specs))
        order = {(d, p): i for i, (d, p, _) in enumerate(CASES)}
        for (dataset, protocol), by_spec in sorted(cells.items(), key=lambda kv: order.get(kv[0], len(order))):
            means = {s: np.mean([r[metric] for r in by_spec[s]]) for s in specs if s in by_spec}
            searches = [s for s in SPECS[1:4] if s in means]
            best = max(searches, key=lambda s: means[s]) if searches else None
            row = []
            for s in specs:
                if s not in by_spec:
                    row.append("–")
                    continue
                v = [r[metric] for r in by_spec[s]]
                text = f"{np.mean(v):.1f} ± {np.std(v):.1f}" if metric == "last" else f"{np.mean(v):.1f}"
                row.append(f"**{text}**" if s == best and len(searches) > 1 else text)
            out.append(f"| {dataset} {protocol} | " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lambda_search"))
    parser.add_argument("--datasets", default=None, help="comma-separated subset of the cases' datasets")
    parser.add_argument("--specs", default=None, help="';'-separated learner specs (default: per case, see SPECS); "
                        "specs other than SPECS get columns of their own")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="cells run at once")
    parser.add_argument("--tables", action="store_true", help="only reprint the tables from results.jsonl")
    parser.add_argument("--cell", nargs=5, metavar=("DATASET", "PROTOCOL", "CLASSES", "SPEC", "SEED"),
                        help=argparse.SUPPRESS)  # internal: run one cell in this process
    args = parser.parse_args()
    results = args.out / "results.jsonl"
    if args.cell:
        dataset, protocol, classes, spec, seed = args.cell
        rec = run_cell(dataset, protocol, None if classes == "-" else int(classes), spec, int(seed))
        with open(results, "a") as f:  # one short line per cell: appends from parallel cells do not interleave
            f.write(json.dumps(rec) + "\n")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.tables:
        wanted = None if args.datasets is None else set(args.datasets.split(","))
        unknown = (wanted or set()) - {c[0] for c in CASES}
        if unknown:
            parser.error(f"--datasets: unknown {sorted(unknown)}; cases: {sorted({c[0] for c in CASES})}")
        done = {key(r) for r in load(results)}
        todo = [(d, p, c, spec, seed) for d, p, c in CASES if wanted is None or d in wanted
                for spec in (args.specs.split(";") if args.specs else default_specs(d)) for seed in range(args.seeds)
                if (d, p, spec, seed) not in done]
        print(f"{len(todo)} cells to run, {args.jobs} at a time", file=sys.stderr, flush=True)
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

        def launch(cell) -> None:
            d, p, c, spec, seed = cell
            cmd = [sys.executable, __file__, "--out", str(args.out), "--cell", d, p, "-" if c is None else str(c),
                   spec, str(seed)]
            done_ = subprocess.run(cmd, env=env, capture_output=True, text=True)
            status = "ok" if done_.returncode == 0 else f"FAILED: {done_.stderr.strip().splitlines()[-1:]}"
            print(f"{d} {p} {spec} seed {seed}: {status}", file=sys.stderr, flush=True)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(launch, todo))
    text = tables(load(results))
    (args.out / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
