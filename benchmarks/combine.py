"""Combine several report.json files into one Markdown table: last mAP per dataset
(mean ± std over seeds), total learn seconds and the largest state, per learner.

    python benchmarks/combine.py benchmarks/results/baselines/*/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlcil.bench.report import human_bytes


def main(paths: list[str]) -> None:
    reports = [json.loads(Path(p).read_text()) for p in paths]
    names = [f"{r['dataset']['name']} {r['protocol']['spec']}" for r in reports]
    learners = list(dict.fromkeys(spec for r in reports for spec in r["summary"]))
    print("| learner | " + " | ".join(names) + " | learn s (sum) | state (max) |")
    print("|---|" + "---|" * (len(names) + 2))
    for spec in learners:
        cells, learn, state = [], 0.0, 0.0
        for r in reports:
            s = r["summary"].get(spec)
            if s is None:
                cells.append("–")
                continue
            cells.append(f"{100 * s['last_mAP']['mean']:.1f} ± {100 * s['last_mAP']['std']:.1f}")
            learn += s["learn_s"]["mean"]
            state = max(state, s["state_bytes"]["mean"])
        print(f"| `{spec}` | " + " | ".join(cells) + f" | {learn:.1f} | {human_bytes(state)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
