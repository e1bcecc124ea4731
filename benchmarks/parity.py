"""Re-run cells of committed benchmark reports with the current code and compare, learner by learner.

For a change that must not move any result (e.g. the ridge core moving from torch to NumPy), this
reruns the given learners of a committed ``report.json`` under its own configuration (dataset,
protocol, seeds, campaign, class count) and prints last and average mAP then and now, per seed, with
the largest difference. The README's reproducibility tolerance is 0.01 mAP points.

    MLCIL_DATA=../shared/data python benchmarks/parity.py \\
        benchmarks/results/accuracy/emotions-B2-C1-field/report.json --learners joint,analytic:strategy=weighted
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mlcil import BenchConfig, load_dataset, run_benchmark


def per_seed(report: dict, spec: str) -> dict[int, tuple[float, float]]:
    out = {}
    for run in report["runs"]:
        if run["learner"] == spec:
            maps = [s["mAP"] for s in run["sessions"]]
            out[int(run["seed"])] = (maps[-1], float(np.mean(maps)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="a committed report.json")
    parser.add_argument("--learners", required=True, help="comma-separated learner specs as written in the report "
                        "(use ';' between specs that contain commas)")
    parser.add_argument("--seeds", type=int, default=None, help="rerun only the first N seeds of the report")
    args = parser.parse_args()
    old = json.loads(args.report.read_text())
    specs = args.learners.split(";") if ";" in args.learners else args.learners.split(",")
    cfg, proto = old["config"], old["protocol"]
    seeds = tuple(cfg["seeds"][: args.seeds] if args.seeds else cfg["seeds"])
    config = BenchConfig(protocol=proto["spec"], learners=tuple(specs), seeds=seeds, order=proto["order"],
                         n_classes=proto["n_classes"] if proto["n_classes"] != old["dataset"]["L"] else None,
                         few_shot=proto.get("few_shot"), test_size=cfg["test_size"], threshold=cfg["threshold"],
                         campaign=proto.get("campaign", "field"))
    new = run_benchmark(load_dataset(old["dataset"]["name"]), config, progress=False)
    print(f"{old['dataset']['name']} {proto['spec']} {proto.get('campaign', 'field')}, seeds {list(seeds)}")
    print("| learner | seed | last mAP then | now | avg mAP then | now | max abs diff (points) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in specs:
        then, now = per_seed(old, spec), per_seed(new, spec)
        for seed in seeds:
            a, b = then[seed], now[seed]
            diff = 100 * max(abs(a[0] - b[0]), abs(a[1] - b[1]))
            print(f"| {spec} | {seed} | {100 * a[0]:.3f} | {100 * b[0]:.3f} | {100 * a[1]:.3f} | {100 * b[1]:.3f} | "
                  f"{diff:.4f} |")


if __name__ == "__main__":
    main()
