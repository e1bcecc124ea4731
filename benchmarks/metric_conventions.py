"""How much each rule of the MLCIL codebases' metrics moves mlcil's numbers (README, "Metric conventions").

For each dataset × learner (one seed, the run `mlcil bench` makes), the protocol is run once and
after every session the same scores and probabilities are read under mlcil's convention, under
the codebases' (``field``: KRT and CSC), and under mlcil's with one rule of ``field`` switched on
at a time, so that each effect is measured alone:

- mAP: classes without a positive test example counted as AP 0; tied scores ranked in numpy's
  sort order instead of as a group;
- F1 family at the threshold: ``p > thr`` instead of ``>=``; CF1 as the mean of per-class F1
  instead of the harmonic mean of CP and CR; NaN when nothing is predicted (counted in sessions).

A third table measures the same effects on synthetic score matrices like those of issue 16 (200
examples × 12 classes, float32 probabilities: continuous, rounded to 0.1, 15% of them exactly 0.8,
two classes without a positive, two classes never above 0.8), mean over --synthetic-seeds seeds.

Prints the Markdown tables and writes them to --out. Values in %.

    MLCIL_DATA=../shared/data python benchmarks/metric_conventions.py --out benchmarks/results/metric_conventions.md
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from mlcil.data import load_dataset
from mlcil.learners import make_learner
from mlcil.metrics import CONVENTIONS, MetricConvention
from mlcil.protocols import Protocol

MLCIL, FIELD = CONVENTIONS["mlcil"], CONVENTIONS["field"]


def variant(**change) -> MetricConvention:
    """mlcil's convention with the given rules changed."""
    rules = dict(ties=MLCIL.ties, no_positive=MLCIL.no_positive, strict=MLCIL.strict, cf1=MLCIL.cf1,
                 undefined=MLCIL.undefined) | change
    return MetricConvention("variant", follows="", **rules)


VARIANTS = {
    "mlcil": MLCIL,
    "ap0": variant(no_positive="zero"),          # classes without a positive counted as AP 0
    "ties": variant(ties="row-order"),           # ties in sort order (classes without a positive still excluded)
    "strict": variant(strict=True),              # p > thr
    "meanf1": variant(cf1="mean-f1"),            # CF1 = mean of per-class F1 (p >= thr)
    "field": FIELD,
}


def run(dataset: str, protocol: str, spec: str, threshold: float, data_dir) -> dict:
    """Per-session metrics of every variant for one learner on one stream (seed 0)."""
    ds = load_dataset(dataset, data_dir=data_dir)
    stream = Protocol(protocol, order="alphabetical", seed=0).build(ds)
    learner = make_learner(spec, seed=0)
    per_session = []
    for t, session in enumerate(stream):
        learner.learn(stream.joint_session(t) if learner.needs_full_labels else session)
        rows = stream.test_rows(t)
        Y = stream.Y_test[:, learner.classes_][rows]
        S, P = learner.scores(stream.X_test)[rows], learner.proba(stream.X_test)[rows]
        out = {"no_positive": int((Y.sum(0) == 0).sum()), "n_classes": int(Y.shape[1]),
               "at_threshold": int((P == threshold).sum()),
               "tied_columns": int(sum(len(np.unique(S[:, c])) < len(S) for c in range(S.shape[1])))}
        for name, conv in VARIANTS.items():
            out[name] = {"mAP": conv.mean_average_precision(Y, S)[0],
                         **conv.threshold_metrics(Y, conv.decide(P, threshold))}
        per_session.append(out)
    return {"dataset": dataset, "protocol": protocol, "learner": spec, "sessions": per_session}


def pct(v: float) -> str:
    return "NaN" if math.isnan(v) else f"{100 * v:.2f}"


def delta(a: float, b: float) -> str:
    return "NaN" if math.isnan(a) or math.isnan(b) else f"{100 * (b - a):+.2f}"


def tables(results: list[dict]) -> str:
    head_map = ("| dataset | learner | classes w/o test positive (last) | last mAP `mlcil` | Δ AP 0 w/o positive | "
                "Δ ties in sort order | last mAP `field` | avg mAP `mlcil` | avg mAP `field` |")
    lines = [head_map, "|" + "---|" * 9]
    for r in results:
        last = r["sessions"][-1]
        avg = {k: float(np.mean([s[k]["mAP"] for s in r["sessions"]])) for k in ("mlcil", "field")}
        lines.append(f"| {r['dataset']} {r['protocol']} | `{r['learner']}` | {last['no_positive']} of "
                     f"{last['n_classes']} | {pct(last['mlcil']['mAP'])} | {delta(last['mlcil']['mAP'], last['ap0']['mAP'])} | "
                     f"{delta(last['mlcil']['mAP'], last['ties']['mAP'])} | {pct(last['field']['mAP'])} | "
                     f"{pct(avg['mlcil'])} | {pct(avg['field'])} |")
    lines += ["", "| dataset | learner | probabilities = thr (last) | last CF1 `mlcil` | Δ p > thr | Δ mean of F1 | "
                  "last CF1 `field` | last CR `mlcil` | Δ CR p > thr | last OF1 `mlcil` | Δ OF1 p > thr | last OF1 `field` | "
                  "sessions with OP NaN (`field`) |", "|" + "---|" * 13]
    for r in results:
        last = r["sessions"][-1]
        m = last["mlcil"]
        n_nan = sum(math.isnan(s["field"]["OP"]) for s in r["sessions"])
        lines.append(f"| {r['dataset']} {r['protocol']} | `{r['learner']}` | {last['at_threshold']} | {pct(m['CF1'])} | "
                     f"{delta(m['CF1'], last['strict']['CF1'])} | {delta(m['CF1'], last['meanf1']['CF1'])} | "
                     f"{pct(last['field']['CF1'])} | {pct(m['CR'])} | {delta(m['CR'], last['strict']['CR'])} | "
                     f"{pct(m['OF1'])} | {delta(m['OF1'], last['strict']['OF1'])} | {pct(last['field']['OF1'])} | "
                     f"{n_nan} of {len(r['sessions'])} |")
    return "\n".join(lines) + "\n"


def synthetic_case(kind: str, seed: int, n: int = 200, c: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Labels and float32 probabilities (scores for mAP too, as the codebases rank sigmoid outputs)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.25).astype(np.uint8)
    p = np.clip(0.45 * y + 0.6 * rng.random((n, c)), 0, 1)
    if kind == "rounded to 0.1":
        p = np.round(p, 1)
    elif kind == "15% at 0.8":
        p[rng.random((n, c)) < 0.15] = 0.8
    elif kind == "2 classes w/o positive":
        y[:, [2, 7]] = 0
    elif kind == "2 classes never predicted":
        p[:, [1, 5]] *= 0.5
    return y, p.astype(np.float32)


def synthetic_table(seeds: int, threshold: float) -> str:
    kinds = ["continuous", "rounded to 0.1", "15% at 0.8", "2 classes w/o positive", "2 classes never predicted"]
    lines = ["| scores | mAP `mlcil` | Δ AP 0 w/o positive | Δ ties in sort order | mAP `field` | CF1 `mlcil` | "
             "Δ p > thr | Δ mean of F1 | CF1 `field` | Δ CR p > thr | Δ OF1 p > thr |", "|" + "---|" * 11]
    for kind in kinds:
        rows = []
        for seed in range(seeds):
            y, p = synthetic_case(kind, seed)
            r = {name: {"mAP": conv.mean_average_precision(y, p)[0],
                        **conv.threshold_metrics(y, conv.decide(p, threshold))} for name, conv in VARIANTS.items()}
            rows.append(r)
        m = {name: {k: float(np.mean([r[name][k] for r in rows])) for k in rows[0][name]} for name in VARIANTS}
        lines.append(f"| {kind} | {pct(m['mlcil']['mAP'])} | {delta(m['mlcil']['mAP'], m['ap0']['mAP'])} | "
                     f"{delta(m['mlcil']['mAP'], m['ties']['mAP'])} | {pct(m['field']['mAP'])} | {pct(m['mlcil']['CF1'])} | "
                     f"{delta(m['mlcil']['CF1'], m['strict']['CF1'])} | {delta(m['mlcil']['CF1'], m['meanf1']['CF1'])} | "
                     f"{pct(m['field']['CF1'])} | {delta(m['mlcil']['CR'], m['strict']['CR'])} | "
                     f"{delta(m['mlcil']['OF1'], m['strict']['OF1'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="scene:B0-C2,yeast:B0-C3,medical:B0-C9",
                        help="dataset:protocol pairs, comma-separated")
    parser.add_argument("--learners", default="analytic,joint,analytic:calibration=isotonic")
    parser.add_argument("--synthetic-seeds", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the tables to this .md file")
    args = parser.parse_args()
    started = time.time()
    results = []
    for item in args.runs.split(","):
        dataset, protocol = item.split(":")
        for spec in args.learners.split(","):
            results.append(run(dataset, protocol, spec, args.threshold, args.data_dir))
            print(f"{dataset} {protocol} {spec}: done ({time.time() - started:.0f} s)", flush=True)
    text = tables(results) + "\n" + synthetic_table(args.synthetic_seeds, args.threshold)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"`python benchmarks/metric_conventions.py --runs {args.runs} --learners {args.learners} "
                            f"--threshold {args.threshold} --synthetic-seeds {args.synthetic_seeds}`: learners with "
                            f"seed 0; synthetic rows mean over seeds 0-{args.synthetic_seeds - 1} (%; Δ = that rule "
                            f"alone, switched on in mlcil's convention)\n\n" + text)


if __name__ == "__main__":
    main()
