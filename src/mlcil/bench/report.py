"""Write a benchmark report: JSON (everything), Markdown (the table), PNG (mAP per session)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mlcil.metrics import DEFAULT_CONVENTION, MetricConvention, get_convention

COLUMNS = [
    ("avg_mAP", "avg mAP", 100.0), ("last_mAP", "last mAP", 100.0), ("last_CF1", "last CF1", 100.0),
    ("last_OF1", "last OF1", 100.0), ("forgetting", "forgetting", 100.0), ("learn_s", "learn s", 1.0),
]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GB"


def _cell(stat: dict, scale: float, n_seeds: int) -> str:
    """mean ± std; "–" when undefined (NaN) in every seed; a trailing "†" when NaN in some
    seeds (the mean is over the others; NAN_NOTE explains it under the table)."""
    mean, std = stat["mean"] * scale, stat["std"] * scale
    if math.isnan(mean):
        return "–"
    digits = 1 if scale == 100.0 else 2
    cell = f"{mean:.{digits}f} ± {std:.{digits}f}" if n_seeds > 1 else f"{mean:.{digits}f}"
    return cell + ("†" if stat.get("n_nan") else "")


NAN_NOTE = ("– = undefined (NaN) in every seed, e.g. OP/OF1 when nothing is predicted under a convention that "
            "returns NaN there (`field`, as KRT and CSC), or not applicable; † = NaN in some seeds, mean ± std over "
            "the others.")


def convention_of(report: dict) -> MetricConvention:
    """The report's metric convention (reports written before conventions existed are `mlcil`)."""
    return get_convention(report["config"].get("metrics", DEFAULT_CONVENTION))


def markdown_table(report: dict) -> str:
    """The summary table: one row per learner, mean ± std over seeds (metrics in %)."""
    n_seeds = len(report["config"]["seeds"])
    head = ["learner"] + [label for _, label, _ in COLUMNS] + ["state"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for spec, stats in report["summary"].items():
        cells = [f"`{spec}`"] + [_cell(stats[key], scale, n_seeds) for key, _, scale in COLUMNS]
        cells.append(human_bytes(stats["state_bytes"]["mean"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


DECISION_COLUMNS = [
    ("last_CF1", "CF1 @thr"), ("last_OF1", "OF1 @thr"), ("last_CF1_tuned", "CF1 tuned"),
    ("last_OF1_tuned", "OF1 tuned"), ("last_CF1_topk", "CF1 top-k"), ("last_OF1_topk", "OF1 top-k"),
    ("last_ECE", "ECE"),
]


def decisions_table(report: dict) -> str:
    """Last-session decisions three ways (global threshold, tuned per-class thresholds, top-k)
    and the expected calibration error, one row per learner (%, mean ± std over seeds)."""
    n_seeds = len(report["config"]["seeds"])
    head = ["learner"] + [label for _, label in DECISION_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for spec, stats in report["summary"].items():
        cells = [f"`{spec}`"] + [_cell(stats[key], 100.0, n_seeds) if key in stats else "–"
                                 for key, _ in DECISION_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    ds, pr = report["dataset"], report["protocol"]
    seeds = report["config"]["seeds"]
    split = "official split" if pr["official_split"] else f"stratified split (test {report['config']['test_size']:.0%})"
    lines = [
        f"# {ds['name']} — {pr['spec']}",
        "",
        f"{ds['n']} examples, d={ds['d']}, L={ds['L']} (cardinality {ds['cardinality']:.2f}); "
        f"{pr['n_sessions']} sessions over {pr['n_classes']} classes, {pr['order']} order; {split}: "
        f"{pr['n_train']} train / {pr['n_test']} test; seeds {', '.join(map(str, seeds))}; "
        f"CF1/OF1 at threshold {report['config']['threshold']}.",
        "",
        f"Metric convention {convention_of(report).describe()} (README, \"Metric conventions\").",
        "",
        markdown_table(report),
        "",
        "mAP, CF1, OF1 and forgetting in %; forgetting on the full test set (docs/concepts/metrics.md); learn s = total "
        "learning time over all sessions; state = learner state after the last session." + _nan_note(report),
        "",
        "## Decisions after the last session (%)",
        "",
        decisions_table(report),
        "",
        f"@thr = global threshold {report['config']['threshold']} on `proba`; tuned = per-class thresholds "
        "maximising F1 on held-out (or leave-one-out) training rows of each class's session, never test rows "
        "(– where the learner has none); top-k = the k best-scoring classes per example, k = label "
        "cardinality of the training sessions, rounded; ECE = expected calibration error of `proba` "
        "over all (example, seen class) pairs, 15 bins.",
        "",
        "## mAP after each session (mean over seeds, %)",
        "",
    ]
    n = pr["n_sessions"]
    ece_title = "## Expected calibration error of `proba` after each session (mean over seeds, %)"
    for metric, title in (("mAP", None), ("ECE", ece_title)):
        if title:
            lines += ["", title, ""]
        lines.append("| learner | " + " | ".join(f"t={t + 1}" for t in range(n)) + " |")
        lines.append("|" + "---|" * (n + 1))
        for spec, stats in report["summary"].items():
            curve = stats.get(f"{metric}_per_session", {"mean": [float("nan")] * n})["mean"]
            lines.append(f"| `{spec}` | " + " | ".join(f"{100 * v:.1f}" for v in curve) + " |")
    if convention_of(report).name != DEFAULT_CONVENTION:
        lines += ["", "## Every metric convention (%)", "", conventions_table(report), "",
                  "The same scores and probabilities, read under each registered convention (README, \"Metric "
                  "conventions\"); CP … OF1 after the last session at the global threshold. " + NAN_NOTE]
    lines += ["", f"{versions_line(report['versions'])}; wall time {report['wall_s']:.1f} s."]
    return "\n".join(lines) + "\n"


def versions_line(versions: dict) -> str:
    """``mlcil 0.1.0, torch 2.4.1, Linux x86_64``; ``without torch`` when the report's machine had none
    (``versions['torch']`` None or absent)."""
    torch = versions.get("torch")
    return (f"mlcil {versions.get('mlcil') or 'unknown'}, " + (f"torch {torch}" if torch else "without torch")
            + f", {versions.get('machine', 'unknown machine')}")


CONVENTION_COLUMNS = [("avg_mAP", "avg mAP"), ("last_mAP", "last mAP"), ("last_CP", "CP"), ("last_CR", "CR"),
                      ("last_CF1", "CF1"), ("last_OP", "OP"), ("last_OR", "OR"), ("last_OF1", "OF1")]


def conventions_table(report: dict) -> str:
    """One row per learner and metric convention: avg/last mAP and the last session's F1 family (%)."""
    n_seeds = len(report["config"]["seeds"])
    head = ["learner", "convention"] + [label for _, label in CONVENTION_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for spec, stats in report["summary"].items():
        for name, conv_stats in stats.get("conventions", {}).items():
            cells = [f"`{spec}`", f"`{name}`"] + [_cell(conv_stats[key], 100.0, n_seeds) for key, _ in CONVENTION_COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _nan_note(report: dict) -> str:
    """NAN_NOTE, when a cell of the summary table needs it (a NaN mean or a † cell)."""
    for stats in report["summary"].values():
        for key, _, _ in COLUMNS:
            if math.isnan(stats[key]["mean"]) or stats[key].get("n_nan"):
                return " " + NAN_NOTE
    return ""


def plot(report: dict, path: Path) -> Path:
    """mAP after each session, one line per learner (mean over seeds, band = ±1 std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for spec, stats in report["summary"].items():
        mean = 100 * np.array(stats["mAP_per_session"]["mean"])
        std = 100 * np.array(stats["mAP_per_session"]["std"])
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, marker="o", label=spec)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("session")
    ax.set_ylabel("mAP (%) on seen classes")
    ax.set_title(f"{report['dataset']['name']} {report['protocol']['spec']}")
    ax.set_xticks(np.arange(1, report["protocol"]["n_sessions"] + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and map_per_session.png into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md", "png": out / "map_per_session.png"}
    paths["json"].write_text(json.dumps(strict_json(report), indent=1, default=_json_default, allow_nan=False) + "\n")
    paths["md"].write_text(markdown(report))
    plot(report, paths["png"])
    return paths


def strict_json(value):
    """The report with NaN/inf floats replaced by None, so report.json is strict JSON."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
