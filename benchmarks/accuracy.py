"""Label absence benchmark (issue 12): every `analytic` strategy, with and without label memory, on the field's
protocol and on the campaign protocol, against the tuned `joint` upper bound and `replay` (20 exemplars per class).

For each of 8 shared datasets (five domains, 5–6 sessions) and each campaign ('field': an example appears in every
session whose classes it carries; 'disjoint': in exactly one of them, drawn per seed), runs `mlcil bench`
programmatically with 3 seeds and writes the full report under --out/<dataset>-<protocol>-<campaign>/ (skipped when
it exists: the run resumes). Prints Markdown tables: last mAP, avg mAP and bytes kept for the examples seen (label memory
or exemplar buffer), mean ± std over seeds, and the gap of every learner to `joint`.

    MLCIL_DATA=../shared/data nice -n 10 python benchmarks/accuracy.py --out benchmarks/results/accuracy
    python benchmarks/accuracy.py --out benchmarks/results/accuracy --tables   # tables only, from the reports
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mlcil.bench import BenchConfig, run_benchmark, write_report
from mlcil.bench.report import human_bytes, strict_json
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

STRATEGIES = ("negative", "known", "weighted", "pseudo")
LEARNERS = (
    ["joint", "replay"]
    + [f"analytic:strategy={s}" + (",memory=labels" if memory else "") for s in STRATEGIES for memory in (False, True)]
)
#: run on the field's protocol only: the λ re-chosen after every session (the Platt pseudo-label rule measured
#: in benchmarks/results/accuracy was removed in issue 27)
BEFORE = ["analytic:strategy=weighted,lambda_search=sessions"]  # an expert option (the default is lambda_search="gcv")
CAMPAIGNS = ("field", "disjoint")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/accuracy"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(d for d, *_ in SUITE))
    parser.add_argument("--campaigns", default=",".join(CAMPAIGNS))
    parser.add_argument("--learners", default=None, help="';'-separated learner specs [default: every strategy with "
                        "and without memory, joint, replay; on the field's protocol also the pre-issue-12 variants]")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (on a shared 2-core machine one thread is ~3x faster than two)")
    parser.add_argument("--tables", action="store_true", help="only print the tables of the reports under --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wanted, campaigns = args.datasets.split(","), args.campaigns.split(",")
    for name, protocol, n_classes, domain in SUITE:
        for campaign in campaigns:
            folder = args.out / f"{name}-{protocol}-{campaign}"
            if name not in wanted or args.tables or (folder / "report.json").exists():
                continue
            start = time.time()
            learners = args.learners.split(";") if args.learners else LEARNERS + (BEFORE if campaign == "field" else [])
            config = BenchConfig(protocol=protocol, learners=tuple(learners), seeds=tuple(range(args.seeds)),
                                 n_classes=n_classes, campaign=campaign)
            report = run_benchmark(load_dataset(name), config, progress=False)
            write_report(report, folder)
            print(f"{name} {campaign}: {time.time() - start:.0f} s", flush=True)
    summary = collect(args.out, wanted, campaigns)
    (args.out / "summary.json").write_text(json.dumps(strict_json(summary), indent=1, allow_nan=False))
    for campaign in campaigns:
        print_tables(summary, campaign, args.learners.split(";") if args.learners else LEARNERS + BEFORE)


def collect(out: Path, wanted: list[str], campaigns: list[str]) -> dict:
    """{campaign: {'dataset (domain, protocol, T)': report summary}} from the reports on disk."""
    summary: dict[str, dict] = {}
    for name, protocol, _, domain in SUITE:
        for campaign in campaigns:
            path = out / f"{name}-{protocol}-{campaign}" / "report.json"
            if name in wanted and path.exists():
                report = json.loads(path.read_text())
                key = f"{name} ({domain}, {protocol}, {report['protocol']['n_sessions']})"
                summary.setdefault(campaign, {})[key] = report["summary"]
    return summary


def value(stats: dict, metric: str, key: str = "mean") -> float:
    """A summary statistic; NaN where the report stored None (strict JSON)."""
    v = stats[metric][key]
    return float("nan") if v is None else float(v)


def cell(stats: dict, metric: str) -> str:
    return f"{100 * value(stats, metric):.1f} ± {100 * value(stats, metric, 'std'):.1f}"


def print_tables(summary: dict, campaign: str, learners: list[str]) -> None:
    rows = summary.get(campaign, {})
    if not rows:
        return
    shown = [l for l in learners if all(l in s for s in rows.values())]
    incremental = [l for l in shown if not l.startswith("joint")]
    for metric, title in (("last_mAP", "last mAP"), ("avg_mAP", "avg mAP")):
        print(f"\n{campaign}: {title} (%), mean ± std over seeds; best incremental learner in bold\n")
        print("| dataset (domain, protocol, T) | " + " | ".join(f"`{l}`" for l in shown) + " |")
        print("|" + "---|" * (len(shown) + 1))
        for key, s in rows.items():
            best = max(incremental, key=lambda l: np.nan_to_num(value(s[l], metric), nan=-1.0))
            cells = [f"**{cell(s[l], metric)}**" if l == best else cell(s[l], metric) for l in shown]
            print(f"| {key} | " + " | ".join(cells) + " |")
    print(f"\n{campaign}: gap to `joint` (last mAP points)\n")
    print("| dataset | " + " | ".join(f"`{l}`" for l in incremental) + " |")
    print("|" + "---|" * (len(incremental) + 1))
    for key, s in rows.items():
        top = value(s["joint"], "last_mAP") if "joint" in s else np.nan
        print(f"| {key.split(' ')[0]} | " + " | ".join(f"{100 * (value(s[l], 'last_mAP') - top):+.1f}"
                                                       for l in incremental) + " |")
    print(f"\n{campaign}: bytes kept after the last session for the examples seen (label memory or "
          "exemplar buffer, in all; mean over seeds)\n")
    kept = [l for l in shown if any(value(s[l], "memory_bytes") > 0 for s in rows.values())]
    print("| dataset | " + " | ".join(f"`{l}`" for l in kept) + " |")
    print("|" + "---|" * (len(kept) + 1))
    for key, s in rows.items():
        print(f"| {key.split(' ')[0]} | " + " | ".join(human_bytes(value(s[l], "memory_bytes")) for l in kept) + " |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
