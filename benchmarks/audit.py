"""Label-error audit quality and speed: closed-form leave-one-out vs 5-fold logistic regression.

Plants synthetic annotation errors in every session of a protocol (each positive dropped with
probability 5%, each negative flipped with probability 1%, seeded) and audits each session
with cleanlab's multi-label scores fed with out-of-sample probabilities from
(a) the Analytic learner's exact leave-one-out (``mlcil audit --method loo``) or
(b) 5-fold cross-validated one-vs-rest logistic regression (``--method kfold --learner logistic``),
the usual recipe. Reports precision@k (k = rows with a planted error), precision and recall of
the flagged rows, and seconds, summed over sessions, both measured side by side in one run.

    MLCIL_DATA=../shared/data python benchmarks/audit.py --out benchmarks/results/audit.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mlcil.bench.audit import audit_stream
from mlcil.data import load_dataset
from mlcil.protocols import Protocol

SUITE = [("scene", "B2-C1", None), ("yeast", "B0-C3", None), ("emotions", "B2-C1", None),
         ("birds", "B0-C4", None), ("enron", "B0-C11", None), ("medical", "B0-C9", None),
         ("tmc2007-500", "B0-C4", None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(s[0] for s in SUITE))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--drop", type=float, default=0.05)
    parser.add_argument("--flip", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=None, help="write the table (and a .json beside it)")
    args = parser.parse_args()
    wanted = args.datasets.split(",")
    methods = [("(a) LOO + cleanlab", "analytic", "loo"), ("(b) 5-fold logistic + cleanlab", "logistic", "kfold")]
    rows, raw = [], {}
    for name, protocol, n_classes in [s for s in SUITE if s[0] in wanted]:
        ds = load_dataset(name)
        for label, learner, method in methods:
            acc = {"pak": [], "fp": [], "fr": [], "oos": 0.0, "learn": 0.0, "clean": 0.0, "errors": 0, "rows": 0}
            for seed in range(args.seeds):
                stream = Protocol(protocol, seed=seed, n_classes=n_classes).build(ds)
                start = time.perf_counter()
                records = audit_stream(stream, learner=learner, method=method, noise=(args.drop, args.flip), seed=seed)
                for r in records:
                    q = r["quality"]
                    acc["pak"].append(q["precision_at_k"])
                    acc["fp"].append(q["flag_precision"])
                    acc["fr"].append(q["flag_recall"])
                    acc["oos"] += r["oos_s"]
                    acc["learn"] += r["learn_s"]
                    acc["clean"] += r["result"].seconds
                    acc["errors"] += q["n_errors"]
                    acc["rows"] += q["n_rows"]
                print(f"{name} {label} seed {seed}: {time.perf_counter() - start:.1f} s", flush=True)
            raw[f"{name}/{method}"] = acc
            rows.append((name, protocol, label, acc))
    lines = ["| dataset (protocol) | audit | rows | planted | P@k | flag precision | flag recall | "
             "out-of-sample s | + learn s | cleanlab s |", "|" + "---|" * 10]
    for name, protocol, label, a in rows:
        lines.append(f"| {name} ({protocol}) | {label} | {a['rows']} | {a['errors']} | {100 * np.nanmean(a['pak']):.1f} | "
                     f"{100 * np.nanmean(a['fp']):.1f} | {100 * np.nanmean(a['fr']):.1f} | {a['oos']:.2f} | "
                     f"{a['learn']:.2f} | {a['clean']:.2f} |")
    ratio = ["", "Speed-up of the out-of-sample step, (b) / (a): " + ", ".join(
        f"{name} {raw[f'{name}/kfold']['oos'] / max(raw[f'{name}/loo']['oos'], 1e-9):.0f}×"
        f" ({raw[f'{name}/kfold']['oos'] / max(raw[f'{name}/loo']['oos'] + raw[f'{name}/loo']['learn'], 1e-9):.1f}×"
        " counting the learning)" for name in dict.fromkeys(r[0] for r in rows))]
    text = "\n".join(lines + ratio)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(
            {k: {**v, "pak": v["pak"], "fp": v["fp"], "fr": v["fr"]} for k, v in raw.items()}, indent=1,
            default=float))


if __name__ == "__main__":
    main()
