"""Accuracy benchmark of the Analytic learner's label-absence strategies (issue: analytic learner).

Runs `mlcil bench` programmatically on shared datasets of several domains with 4–8-session
protocols and 3 seeds: every Analytic strategy vs the tuned Joint upper bound vs FineTune.
Prints one Markdown table (last mAP, mean ± std over seeds) and the gap to Joint, and writes
each dataset's full report under --out.

    MLCIL_DATA=../shared/data python benchmarks/accuracy.py --out results/accuracy
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mlcil.bench import BenchConfig, run_benchmark, write_report
from mlcil.bench.report import strict_json
from mlcil.data import load_dataset

#: (dataset, protocol, n_classes or None, domain)
SUITE = [
    ("scene", "B2-C1", None, "image"),
    ("corel5k", "B0-C10", 50, "image"),
    ("yeast", "B0-C3", None, "biology"),
    ("emotions", "B2-C1", None, "music"),
    ("birds", "B0-C4", None, "audio"),
    ("tmc2007-500", "B0-C4", None, "text"),
    ("enron", "B0-C11", None, "text"),
    ("medical", "B0-C9", None, "text"),
]

LEARNERS = [
    "joint", "joint:balance=true",
    "analytic:strategy=negative", "analytic:strategy=known", "analytic:strategy=weighted",
    "analytic:strategy=weighted,balance=true", "analytic:strategy=pseudo", "finetune",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/accuracy"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(d for d, *_ in SUITE))
    parser.add_argument("--learners", default=";".join(LEARNERS), help="';'-separated learner specs")
    parser.add_argument("--M", type=int, default=None, help="override M for every ridge learner")
    args = parser.parse_args()
    learners = args.learners.split(";")
    if args.M:
        learners = [s + ("," if ":" in s else ":") + f"M={args.M}" if s.startswith(("joint", "analytic")) else s
                    for s in learners]
    wanted = args.datasets.split(",")
    rows = {}
    for name, protocol, n_classes, domain in SUITE:
        if name not in wanted:
            continue
        start = time.time()
        ds = load_dataset(name)
        config = BenchConfig(protocol=protocol, learners=tuple(learners), seeds=tuple(range(args.seeds)),
                             n_classes=n_classes)
        report = run_benchmark(ds, config, progress=True)
        write_report(report, args.out / f"{name}-{protocol}")
        rows[(name, protocol, domain, report["protocol"]["n_sessions"])] = report["summary"]
        print(f"{name}: {time.time() - start:.0f} s", flush=True)
    (args.out / "summary.json").write_text(
        json.dumps(strict_json({f"{k[0]} {k[1]}": v for k, v in rows.items()}), indent=1, allow_nan=False))
    print_table(rows, learners)


def print_table(rows: dict, learners: list[str]) -> None:
    head = "| dataset (domain, protocol, T) | " + " | ".join(f"`{l}`" for l in learners) + " |"
    print("\nlast mAP (%), mean ± std over seeds; best incremental learner in bold\n")
    print(head)
    print("|" + "---|" * (len(learners) + 1))
    for (name, protocol, domain, T), summary in rows.items():
        means = {l: 100 * summary[l]["last_mAP"]["mean"] for l in learners}
        incremental = [l for l in learners if not l.startswith("joint")]
        best = max(incremental, key=means.get)
        cells = []
        for l in learners:
            cell = f"{means[l]:.1f} ± {100 * summary[l]['last_mAP']['std']:.1f}"
            cells.append(f"**{cell}**" if l == best else cell)
        print(f"| {name} ({domain}, {protocol}, {T}) | " + " | ".join(cells) + " |")
    joint = [l for l in learners if l.startswith("joint")]
    if joint:
        print("\ngap to the best joint (last mAP points, negative = below the upper bound)\n")
        print("| dataset | " + " | ".join(f"`{l}`" for l in learners if not l.startswith("joint")) + " |")
        print("|" + "---|" * (len([l for l in learners if not l.startswith("joint")]) + 1))
        for (name, protocol, domain, T), summary in rows.items():
            top = max(100 * summary[l]["last_mAP"]["mean"] for l in joint)
            gaps = [f"{100 * summary[l]['last_mAP']['mean'] - top:+.1f}" for l in learners if not l.startswith("joint")]
            print(f"| {name} | " + " | ".join(gaps) + " |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
