"""Few-shot curves with and without the name prior: mAP of a new session's classes after k examples each.

For each embedded dataset (``<name>@minilm``, written by ``mlcil embed``): the classes in alphabetical
order are split into a base session (every class but the last ``--new`` ones, all their training data)
and a new session (the last ``--new`` classes). The new session keeps k training examples per new class
(seeded, as ``--few-shot`` does); k = 0 means no example at all, only the names. Each learner learns the
base session once per seed, then, from a copy, the new session:

- *with names*: the new classes' names, embedded by the encoder that embedded the data, enter as
  weighted pseudo-examples (``analytic`` and ``prototype``: option ``prior``; at k = 0 ``learn_names``);
  ``finetune``, which has no prior, gets the names as extra training rows (at k = 0 its only rows);
- *without*: the k examples alone (k = 0: nothing to learn from, so no score).

Metric: mean AP of the new classes (those with a test positive) over the whole test set, against
chance = the mean test prevalence of those classes. Writes ``fewshot.json``, ``fewshot.md`` and
``fewshot.png`` under ``--out``.

    python benchmarks/fewshot.py --datasets hoc@minilm,reuters21578@minilm --seeds 3
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

SHOTS = (0, 1, 2, 5, 10, 20, 50)


def mean(values) -> float:
    """nanmean without the all-NaN warning (NaN then)."""
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def sample_shots(Y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Rows keeping at most k positives per column (the union over columns), sorted."""
    keep: set[int] = set()
    for j in range(Y.shape[1]):
        keep.update(rng.permutation(np.flatnonzero(Y[:, j]))[:k].tolist())
    return np.array(sorted(keep), dtype=np.int64)


def new_class_map(learner, X_test, Y_test: np.ndarray, new: np.ndarray) -> float:
    """Mean AP over the new classes with a test positive, scored on every test row."""
    from mlcil.metrics import average_precision

    cols = [int(np.flatnonzero(learner.classes_ == c)[0]) for c in new]
    ap = average_precision(Y_test[:, new], learner.scores(X_test)[:, cols])
    return float(np.nanmean(ap))


def run_dataset(name: str, args) -> list[dict]:
    from mlcil.data import load_dataset
    from mlcil.encoders import label_name_embeddings
    from mlcil.learners import make_learner
    from mlcil.protocols import Protocol, Session

    ds = load_dataset(name)
    E = label_name_embeddings(ds)
    L = ds.L
    n_new = min(args.new, L - 1) if args.new else max(1, round(L / 5))
    records = []
    for seed in range(args.seeds):
        stream = Protocol(f"B{L - n_new}-C{n_new}", seed=seed).build(ds)
        base, last = stream.sessions[0], stream.sessions[-1]
        new = last.classes
        present = stream.Y_test[:, new].any(axis=0)
        chance = float(stream.Y_test[:, new][:, present].mean(axis=0).mean())
        for spec in args.learners.split(","):
            t0 = time.perf_counter()
            first = make_learner(spec, seed=seed, device=args.device).learn(base)
            base_s = time.perf_counter() - t0
            for k in args.shots:
                rows = sample_shots(last.Y, k, np.random.default_rng(1000 * seed + k)) if k else np.zeros(0, int)
                for prior in (False, True):
                    learner = copy.deepcopy(first)
                    has_prior = "prior" in learner.get_params()
                    if has_prior:
                        learner.prior = args.beta if prior else 0.0
                    t1 = time.perf_counter()
                    X, Y = last.X[rows], last.Y[rows]
                    if prior and not has_prior:  # names as training rows (weight 1)
                        X = np.vstack([X, E[new]]).astype(np.float32)
                        Y = np.vstack([Y, np.eye(len(new), dtype=np.uint8)])
                    if k == 0 and prior and has_prior:
                        learner.learn_names(new, E[new])
                    elif len(Y):
                        learner.learn(Session(X, Y, new, np.arange(len(Y)), 1, E[new] if prior else None))
                    mAP = new_class_map(learner, stream.X_test, stream.Y_test, new) if \
                        set(new.tolist()) <= set(learner.classes_.tolist()) else float("nan")  # k=0: nothing learned
                    records.append({"dataset": name, "seed": seed, "learner": spec, "k": k, "prior": prior,
                                    "new_class_mAP": mAP, "chance": chance, "n_new": int(len(new)),
                                    "n_rows": int(len(rows)), "base_s": base_s, "learn_s": time.perf_counter() - t1})
                    print(f"{name} seed={seed} {spec} k={k} names={prior}: {100 * mAP:.2f} "
                          f"(chance {100 * chance:.1f})", file=sys.stderr, flush=True)
    return records


def summarize(records: list[dict], shots) -> tuple[str, dict]:
    table: dict = {}
    for r in records:
        key = (r["dataset"], r["learner"], r["prior"])
        table.setdefault(key, {}).setdefault(r["k"], []).append(r["new_class_mAP"])
    lines = ["| dataset (new classes, chance) | learner | names | " + " | ".join(f"k={k}" for k in shots) + " |",
             "|---|---|---|" + "---|" * len(shots)]
    chance = {r["dataset"]: (r["n_new"], r["chance"]) for r in records}
    for (dataset, learner, prior), by_k in table.items():
        cells = []
        for k in shots:
            vals = np.array(by_k.get(k, [np.nan]), dtype=float)
            cells.append("—" if np.isnan(vals).all() else
                         f"{100 * mean(vals):.1f}" + (f" ± {100 * np.nanstd(vals):.1f}" if len(vals) > 1 else ""))
        n_new, ch = chance[dataset]
        lines.append(f"| {dataset} ({n_new}, {100 * ch:.1f}) | `{learner}` | {'yes' if prior else 'no'} | "
                     + " | ".join(cells) + " |")
    checks = {}
    for (dataset, learner, prior), by_k in table.items():
        if not prior:
            continue
        off = table.get((dataset, learner, False), {})
        drops = [100 * (mean(off[k]) - mean(by_k[k])) for k in shots if k >= 20 and k in off]
        checks[f"{dataset} {learner}"] = {
            "k0_mAP": 100 * mean(by_k.get(0, [np.nan])), "chance": 100 * chance[dataset][1],
            "largest_drop_k_ge_20": max(drops) if drops else None}
    return "\n".join(lines), checks


def plot(records: list[dict], shots, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    learners = list(dict.fromkeys(r["learner"] for r in records))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False)
    x = np.arange(len(shots))
    for ax, dataset in zip(axes[0], datasets):
        for i, learner in enumerate(learners):
            for prior, style in ((True, "-"), (False, "--")):
                ys = [mean([r["new_class_mAP"] for r in records if r["dataset"] == dataset and
                            r["learner"] == learner and r["prior"] == prior and r["k"] == k] or [np.nan])
                      for k in shots]
                ax.plot(x, 100 * np.array(ys), style, color=f"C{i}", marker="o", markersize=3,
                        label=f"{learner}{' + names' if prior else ''}")
        ch = next(r["chance"] for r in records if r["dataset"] == dataset)
        ax.axhline(100 * ch, color="grey", lw=0.8, ls=":", label="chance")
        ax.set_xticks(x, [str(k) for k in shots])
        ax.set_xlabel("examples per new class (k)")
        ax.set_title(dataset, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mAP of the new classes (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="hoc@minilm,reuters21578@minilm,goemotions@minilm,se_crypto@minilm,"
                                              "se_cooking@minilm")
    parser.add_argument("--learners", default="analytic,prototype,finetune")
    parser.add_argument("--shots", default=",".join(map(str, SHOTS)))
    parser.add_argument("--new", type=int, default=None, help="new classes (default: a fifth of the labels)")
    parser.add_argument("--beta", type=float, default=1.0, help="weight of a name (the learners' prior)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="learners' torch device (cpu, cuda, auto)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fewshot")
    args = parser.parse_args(argv)
    args.shots = [int(k) for k in args.shots.split(",")]
    records = []
    for name in args.datasets.split(","):
        records += run_dataset(name, args)
    table, checks = summarize(records, args.shots)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "records": records, "checks": checks}
    (args.out / "fewshot.json").write_text(json.dumps(result, indent=1))
    (args.out / "fewshot.md").write_text(table + "\n")
    plot(records, args.shots, args.out / "fewshot.png")
    print(table)
    print(json.dumps(checks, indent=1))
    return result


if __name__ == "__main__":
    main()
