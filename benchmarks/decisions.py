"""Decisions: what calibration and tuned thresholds buy over the field's fixed 0.8.

For every learner on shared datasets (B0-C2 below 30 labels, else B0-C10), two runs side by side:
- native: each learner's own ``proba`` (sigmoid of a head's logits, Platt on training rows for
  prototypes/LDA, leave-one-out Platt for the Analytic family), decided at 0.8;
- calibrated (``mlcil bench --calibration platt``): the Analytic family calibrates on exact
  leave-one-out scores; every other learner is wrapped in ``Calibrated``, which holds out 20% of
  each session to fit per-class Platt scaling and F1-optimal thresholds (the wrapped learner
  does not learn those rows). Decided three ways: 0.8, tuned per-class thresholds, top-k
  (k = training label cardinality, rounded).
Last-session CF1 / OF1 / ECE in %, mean over seeds; full reports under --out.

    MLCIL_DATA=../shared/data python benchmarks/decisions.py --seeds 2 --out benchmarks/results/decisions
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mlcil.bench import BenchConfig, run_benchmark, write_report
from mlcil.data import load_dataset

SUITE = ["scene", "emotions", "yeast", "birds", "medical"]
LEARNERS = ["analytic", "joint", "prototype", "lda", "finetune", "lwf", "pseudolabel", "replay", "joint-sgd"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/decisions"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--datasets", default=",".join(SUITE))
    parser.add_argument("--learners", default=";".join(LEARNERS), help="';'-separated learner specs")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    learners = args.learners.split(";")
    lines = ["| dataset | learner | last mAP | CF1 native 0.8 | CF1 0.8 | CF1 tuned | CF1 top-k | OF1 native 0.8 | "
             "OF1 0.8 | OF1 tuned | OF1 top-k | ECE native | ECE |", "|" + "---|" * 13]
    for name in args.datasets.split(","):
        start = time.time()
        ds = load_dataset(name)
        reports = {}
        for mode in (None, "platt"):
            config = BenchConfig(protocol="B0-C2" if ds.L < 30 else "B0-C10", learners=tuple(learners),
                                 seeds=tuple(range(args.seeds)), device=args.device, calibration=mode)
            reports[mode] = run_benchmark(ds, config, progress=False)
            write_report(reports[mode], args.out / f"{name}-{mode or 'native'}")
        for spec in learners:
            nat, cal = reports[None]["summary"][spec], reports["platt"]["summary"][spec]

            def pct(stats, key):
                value = stats[key]["mean"]
                return "–" if not np.isfinite(value) else f"{100 * value:.1f}"

            lines.append(f"| {name} | `{spec}` | {pct(cal, 'last_mAP')} | {pct(nat, 'last_CF1')} | "
                         f"{pct(cal, 'last_CF1')} | {pct(cal, 'last_CF1_tuned')} | {pct(cal, 'last_CF1_topk')} | "
                         f"{pct(nat, 'last_OF1')} | {pct(cal, 'last_OF1')} | {pct(cal, 'last_OF1_tuned')} | "
                         f"{pct(cal, 'last_OF1_topk')} | {pct(nat, 'last_ECE')} | {pct(cal, 'last_ECE')} |")
        print(f"{name}: {time.time() - start:.0f} s", flush=True)
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decisions.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
