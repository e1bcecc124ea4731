"""Baselines benchmark (issue: prototypes, LDA, LwF, replay, pseudo-labels, asymmetric loss).

Runs every baseline learner, FineTune, the two joint upper bounds and the Analytic learner
on shared datasets (B0-C2 for fewer than 30 labels, else B0-C10) and prints one Markdown
table of last mAP (mean ± std over seeds), plus the replay buffer sizes. Each dataset's
full report goes under --out.

    MLCIL_DATA=../shared/data python benchmarks/baselines.py --out results/baselines --seeds 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mlcil.bench import BenchConfig, run_benchmark, write_report
from mlcil.bench.report import human_bytes
from mlcil.data import load_dataset

SUITE = ["scene", "emotions", "yeast", "birds", "enron", "medical"]

LEARNERS = ["prototype", "lda", "lwf", "pseudolabel", "replay", "replay:policy=reservoir", "finetune",
            "joint-sgd", "joint", "analytic"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/baselines"))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--datasets", default=",".join(SUITE))
    parser.add_argument("--learners", default=";".join(LEARNERS), help="';'-separated learner specs")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    learners = args.learners.split(";")
    table, state = {}, {}
    for name in args.datasets.split(","):
        start = time.time()
        ds = load_dataset(name)
        config = BenchConfig(protocol="B0-C2" if ds.L < 30 else "B0-C10", learners=tuple(learners),
                             seeds=tuple(range(args.seeds)), device=args.device)
        report = run_benchmark(ds, config, progress=False)
        write_report(report, args.out / name)
        for spec, summary in report["summary"].items():
            last = summary["last_mAP"]
            table.setdefault(spec, {})[name] = f"{100 * last['mean']:.1f} ± {100 * last['std']:.1f}"
            state.setdefault(spec, {})[name] = human_bytes(summary["state_bytes"]["mean"])
        print(f"{name} {config.protocol}: {time.time() - start:.0f} s", flush=True)
    names = args.datasets.split(",")
    print("\n| learner | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for spec in learners:
        print(f"| `{spec}` | " + " | ".join(table[spec].get(n, "") for n in names) + " |")
    print("\nstate bytes (replay: exemplar buffer included)")
    for spec in learners:
        print(f"| `{spec}` | " + " | ".join(state[spec].get(n, "") for n in names) + " |")


if __name__ == "__main__":
    main()
