"""`mlcil bench <dataset> --engine ray` against `--engine local` on shared datasets: the same report?

    MLCIL_DATA=../shared/data python benchmarks/ray_compare.py
    MLCIL_DATA=../shared/data python benchmarks/ray_compare.py --datasets scene:B0-C2 --learners analytic,prototype

Runs the real command line twice per dataset (a fresh process each, so Ray starts its own local
cluster), then compares every number of the two report.json files: per learner the summary
(avg/last mAP, last CF1/OF1, forgetting) and, over every session, the largest absolute difference
of any metric (mAP, CF1, OF1, CP, CR, OP, OR, ECE, tuned and top-k F1). Writes a Markdown table.
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

SUMMARY = ("avg_mAP", "last_mAP", "last_CF1", "last_OF1", "forgetting")
SESSION = ("mAP", "CF1", "OF1", "CP", "CR", "OP", "OR", "ECE", "CF1_tuned", "OF1_tuned", "CF1_topk", "OF1_topk")


def run(dataset: str, protocol: str, learners: str, seeds: int, engine: str, out: Path) -> float:
    cmd = [sys.executable, "-m", "mlcil.cli", "bench", dataset, "-p", protocol, "-l", learners, "-s", str(seeds),
           "--engine", engine, "-q", "-o", str(out)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def max_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for ra, rb in zip(a["runs"], b["runs"]):
        for sa, sb in zip(ra["sessions"], rb["sessions"]):
            for key in SESSION:
                x, y = sa.get(key), sb.get(key)
                if x is None or y is None or (math.isnan(x) and math.isnan(y)):
                    continue
                worst = max(worst, abs(x - y))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="scene:B0-C2,tmc2007-500:B0-C4,rcv1sub1:B0-C20")
    parser.add_argument("--learners", default="analytic,joint,prototype,lda")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("results/ray_compare"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray/compare.md"))
    args = parser.parse_args()

    lines = [
        "# `mlcil bench --engine ray` vs `--engine local`",
        "",
        f"`MLCIL_DATA=../shared/data python benchmarks/ray_compare.py --datasets {args.datasets} "
        f"--learners {args.learners} --seeds {args.seeds}` (load average at the start "
        f"{os.getloadavg()[0]:.1f}). Numbers in % (local / ray); 'max |Δ|' is the largest absolute "
        "difference of any per-session metric in report.json (fractions, not %).",
        "",
        "| dataset | learner | avg mAP | last mAP | last CF1 | last OF1 | forgetting | max abs Δ | local s | ray s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for item in args.datasets.split(","):
        dataset, protocol = item.split(":")
        reports, seconds = {}, {}
        for engine in ("local", "ray"):
            out = args.work / f"{dataset}-{protocol}-{engine}"
            seconds[engine] = run(dataset, protocol, args.learners, args.seeds, engine, out)
            reports[engine] = json.loads((out / "report.json").read_text())
            print(f"{dataset} {engine}: {seconds[engine]:.0f} s", file=sys.stderr, flush=True)
        local, ray = reports["local"], reports["ray"]
        for spec in local["summary"]:
            cells = []
            for key in SUMMARY:
                x, y = local["summary"][spec][key]["mean"], ray["summary"][spec][key]["mean"]
                cells.append(f"{100 * x:.1f} / {100 * y:.1f}")
            sub_a = {"runs": [r for r in local["runs"] if r["learner"] == spec]}
            sub_b = {"runs": [r for r in ray["runs"] if r["learner"] == spec]}
            lines.append(f"| {dataset} {protocol} | `{spec}` | " + " | ".join(cells) +
                         f" | {max_diff(sub_a, sub_b):.1e} | {seconds['local']:.0f} | {seconds['ray']:.0f} |")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
