"""Generate the results page (docs/results.md) and the README's headline block from the committed results.

Every number on the page is read from a JSON file under ``benchmarks/results/`` (the benchmark scripts
write them); none is typed by hand. Re-measuring means re-running a benchmark and then this script:

    python benchmarks/results_page.py            # rewrite docs/results.md and README.md's generated blocks
    python benchmarks/results_page.py --check    # exit 1 if either differs from what would be generated

A result file the page needs but that is missing stops the script with one line naming the file and the
command that makes it. The README's generated blocks sit between ``<!-- results: NAME -->`` (``headline``:
the main job's table; ``setup``: the set-up times) and ``<!-- /results -->``; the rest of the README is
left alone.

``benchmarks/results/setup/setup.json`` holds the set-up times that no benchmark script writes (the
install of the core and CI's install + test suite), each with the command that measured it; a time that
has not been measured at this commit is ``null`` and shown as such.

Re-measuring the README's numbers at a new commit:

    mlcil bench scene --protocol B0-C2 --learners joint,analytic,prototype --n-seeds 3 \
        -o benchmarks/results/headline/scene-B0-C2       # the headline table and the main job's time
    python benchmarks/install.py .                       # "seconds" of `pip install -e .` in setup.json
    .ci/run                                              # prints "ci: install + test suite: N s": setup.json
    python benchmarks/results_page.py
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from mlcil.bench.report import human_bytes  # the reports' own byte format

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "results.md"
README = ROOT / "README.md"

#: the README's headline: the report of the README's main job (set-up command 1)
HEADLINE = "headline/scene-B0-C2/report.json"
HEADLINE_OUT = "benchmarks/results/headline/scene-B0-C2"

#: (report.json under benchmarks/results/, what the dataset is), per group of single-report tables
TEXT_MINILM = [
    ("text/reuters21578@minilm-B0-C18/report.json", "Reuters-21578 news, ModApte R90 topics"),
    ("text/hoc@minilm-B0-C2/report.json", "PubMed abstracts, hallmarks of cancer"),
    ("text/goemotions@minilm-B0-C7/report.json", "Reddit comments, 28 emotions"),
    ("text/se_crypto@minilm-B0-C79/report.json", "Stack Exchange cryptography questions and their tags"),
    ("text/se_cooking@minilm-B0-C148/report.json", "Stack Exchange cooking questions and their tags"),
    ("text/hoc@minilm-B0-C2-all/report.json", "every registered learner on hoc, one seed"),
]
TEXT_TFIDF = [
    ("text/reuters21578-tfidf-svd-dim-256-B0-C18/report.json", "Reuters-21578, TF-IDF + SVD (256-d)"),
    ("text/goemotions-tfidf-svd-dim-256-B0-C7/report.json", "goemotions, TF-IDF + SVD (256-d)"),
]
FEATURES = [
    ("scene-B0-C2/report.json", "image features, 6 labels"),
    ("tmc2007-500-B0-C4/report.json", "text features, 22 labels"),
    ("corel5k-B0-C75/report.json", "image features, 374 labels"),
    ("birds-B0-C4-clip/report.json", "audio features, 19 labels; with and without `clip=3`"),
]
SWEEP = "sweep/sweep.json"
SWEEP_LEARNERS = ["analytic", "joint", "prototype", "finetune"]
ACCURACY = "accuracy/summary.json"
BASELINES = ["scene", "emotions", "yeast", "birds", "medical"]
CONVENTIONS = [("scene", "B0-C2"), ("yeast", "B0-C3"), ("medical", "B0-C9")]
FEWSHOT = ["hoc", "reuters21578", "goemotions", "se_crypto", "se_cooking"]
AUDIT = "audit.json"
REPRODUCIBILITY = "reproducibility/reproducibility.json"
THROUGHPUT = "embed_throughput"
SETUP = "setup/setup.json"
FIRST_RUN = "first_run.json"

#: the command that writes each file (for the error message when one is missing)
MAKERS = {
    SWEEP: "MLCIL_DATA=... python benchmarks/sweep.py --out benchmarks/results/sweep",
    ACCURACY: "MLCIL_DATA=... python benchmarks/accuracy.py --out benchmarks/results/accuracy",
    AUDIT: "MLCIL_DATA=... python benchmarks/audit.py --out benchmarks/results/audit.md",
    REPRODUCIBILITY: "MLCIL_DATA=... python benchmarks/reproducibility.py --out benchmarks/results/reproducibility",
    FIRST_RUN: "MLCIL_DATA=... python benchmarks/first_run.py",
    SETUP: "write it by hand from `python benchmarks/install.py .` and `.ci/run` (see this script's docstring)",
}


class MissingResult(SystemExit):
    pass


def load(rel: str) -> dict:
    """The JSON result file ``benchmarks/results/<rel>``, or exit naming it and the command that makes it."""
    path = RESULTS / rel
    if not path.is_file():
        maker = MAKERS.get(rel) or MAKERS.get(rel.split("/")[0] + "/") or "its benchmark (see docs/results.md)"
        raise MissingResult(f"results_page: missing result file benchmarks/results/{rel}; make it with: {maker}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"results_page: benchmarks/results/{rel} is not valid JSON: {exc}") from None


# ---------------------------------------------------------------- formatting

def pct(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}"


def stat(s: dict, n_seeds: int, digits: int = 1, scale: float = 100.0) -> str:
    if s is None or s.get("mean") is None:
        return "–"
    mean = s["mean"] * scale
    if n_seeds > 1:
        return f"{mean:.{digits}f} ± {s['std'] * scale:.{digits}f}"
    return f"{mean:.{digits}f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def dataset_name(name: str) -> str:
    """Reports written before embedded datasets were named ``<dataset>@<encoder>`` carry the old name."""
    return re.sub(r"-(tfidf-svd-dim-\d+)$", r"@\1", name)


def bench_command(report: dict) -> str:
    """The ``mlcil bench`` command that writes this report (from its recorded configuration)."""
    c, p, ds = report["config"], report["protocol"], report["dataset"]
    parts = ["mlcil bench", dataset_name(ds["name"]), "--protocol", p["spec"], "--learners", ",".join(c["learners"])]
    seeds = list(c["seeds"])
    parts += ["--n-seeds", str(len(seeds))] if seeds == list(range(len(seeds))) else \
        [arg for seed in seeds for arg in ("--seed", str(seed))]
    if p.get("campaign", "field") not in (None, "field"):
        parts += ["--campaign", p["campaign"]]
    if p.get("order", "alphabetical") != "alphabetical":
        parts += ["--order", p["order"]]
    if p.get("n_classes") and p["n_classes"] < ds["L"]:
        parts += ["--classes", str(p["n_classes"])]
    if p.get("few_shot"):
        parts += ["--few-shot", str(p["few_shot"])]
    if c.get("metrics") not in (None, "mlcil"):
        parts += ["--metrics", c["metrics"]]
    if c.get("threshold", 0.8) != 0.8:
        parts += ["--threshold", str(c["threshold"])]
    if c.get("calibration"):
        parts += ["--calibration", c["calibration"]]
    if c.get("device", "cpu") != "cpu":
        parts += ["--device", c["device"]]
    return " ".join(parts)


SUMMARY = [("avg_mAP", "avg mAP"), ("last_mAP", "last mAP"), ("last_CF1", "last CF1"),
           ("last_OF1", "last OF1"), ("forgetting", "forgetting")]


def summary_table(report: dict) -> str:
    """One row per learner: avg/last mAP, last CF1/OF1, forgetting (%), learn s, state (mean ± std)."""
    n = len(report["config"]["seeds"])
    head = ["learner"] + [label for _, label in SUMMARY] + ["learn s", "state"]
    rows = []
    for spec, s in report["summary"].items():
        rows.append([f"`{spec}`"] + [stat(s.get(k), n) for k, _ in SUMMARY]
                    + [stat(s["learn_s"], n, 2, 1.0), human_bytes(s["state_bytes"]["mean"])])
    return table(head, rows)


def report_facts(report: dict) -> str:
    ds, p, c = report["dataset"], report["protocol"], report["config"]
    where = report["versions"].get("machine", "")
    device = c.get("device", "cpu")
    return (f"{ds['n']:,} examples, d = {ds['d']}, L = {ds['L']}; {p['n_sessions']} sessions, "
            f"{p['n_train']:,} train / {p['n_test']:,} test; {len(c['seeds'])} seed(s); device {device}; "
            f"wall time {report['wall_s']:.0f} s ({where})")


def report_section(rel: str, what: str, level: str = "###") -> list[str]:
    report = load(rel)
    folder = "benchmarks/results/" + rel.rsplit("/", 1)[0]
    return [f"{level} {dataset_name(report['dataset']['name'])} {report['protocol']['spec']}: {what}", "",
            "<!-- ci: run by its benchmark; too long for the docs test -->", "```bash",
            bench_command(report) + f" -o {folder}", "```", "",
            report_facts(report) + ".", "", summary_table(report), ""]


# ---------------------------------------------------------------- sections

def headline_block() -> str:
    report = load(HEADLINE)
    return (summary_table(report) + "\n\n"
            f"`{bench_command(report)}`: {report['wall_s']:.0f} s wall time on the machine that wrote "
            f"`{HEADLINE_OUT}/report.json` ({report['versions'].get('machine', '')}, "
            f"mlcil {report['versions'].get('mlcil', '?')}).")


def setup_rows() -> list[list[str]]:
    """(command, wall time, measured by) for the README's set-up commands, the main job's bench second."""
    setup = load(SETUP)
    head = load(HEADLINE)
    rows = []
    for item in setup["commands"]:
        secs = item.get("seconds")
        rows.append([f"`{item['command']}`", "not measured at this commit" if secs is None else f"{secs:.0f} s",
                     item.get("measured_by", "")])
    rows.insert(1, [f"`{bench_command(head)}`", f"{head['wall_s']:.0f} s", f"`{HEADLINE_OUT}/report.json` (`wall_s`)"])
    first = load(FIRST_RUN)
    rows.append([f"`{first['command']}` (real text, after `pip install -e \".[text]\"`)",
                 f"{first['seconds']:.0f} s ({first['texts_embedded']:,} texts embedded at {first['texts_per_s']} texts/s, "
                 f"then {first['bench_s']:.0f} s of benchmark)",
                 "`python benchmarks/first_run.py` (clean embedding cache; `benchmarks/results/first_run.md`)"])
    return rows


def setup_block() -> str:
    """The README's set-up times: one table, each time with what measured it."""
    setup = load(SETUP)
    return (f"Measured on {setup.get('machine', 'the CI machine')}:\n\n"
            + table(["command", "wall time", "measured by"], setup_rows()))


def setup_section() -> list[str]:
    setup = load(SETUP)
    rows = setup_rows()
    return ["## Set-up times", "",
            f"The README's two set-up commands, on {setup.get('machine', 'the CI machine')}. "
            "Each time comes from the file or command in the last column.", "",
            table(["command", "wall time", "measured by"], rows), ""]


def sweep_section() -> list[str]:
    sweep = load(SWEEP)
    by_ds: dict[str, dict] = {}
    for cell in sweep.values():
        by_ds.setdefault(cell["dataset"], {})[cell["learner"]] = cell
    head = ["dataset", "n", "d", "L", "protocol"] + [f"`{name}` last mAP · s · GB" for name in SWEEP_LEARNERS]
    rows = []
    for name, cells in by_ds.items():
        any_cell = next(iter(cells.values()))
        row = [name, f"{any_cell['n']:,}", f"{any_cell['d']:,}", str(any_cell["L"]), any_cell["protocol"]]
        for learner in SWEEP_LEARNERS:
            c = cells.get(learner)
            row.append("–" if c is None else
                       f"{pct(c['last_mAP'])} · {c['wall_s']:.0f} · {c['peak_rss_bytes'] / 1e9:.1f}")
        rows.append(row)
    return ["## Every registered dataset (sweep)", "",
            "Every dataset of `mlcil datasets` under a protocol of about five equal sessions (B0-C⌈L/5⌉, "
            "alphabetical order), seed 0, each (dataset, learner) cell in a fresh process: last mAP (%) · wall "
            "seconds (loading, protocol, learning and every session's evaluation) · peak resident GB. One seed: "
            "differences under a point are noise.", "",
            "<!-- ci: run by its benchmark; hours on two cores -->", "```bash",
            "MLCIL_DATA=/path/to/data python benchmarks/sweep.py --out benchmarks/results/sweep", "```", "",
            table(head, rows), ""]


def accuracy_section() -> list[str]:
    summary = load(ACCURACY)
    specs: list[str] = []
    for campaign in summary.values():
        for learners in campaign.values():
            for spec in learners:
                if spec not in specs:
                    specs.append(spec)
    out = ["## Label absence: strategies and protocols", "",
           "`analytic`'s label-absence strategies beside `joint` (every row with every label it was given) and "
           "`replay` (20 examples per class), under the field's protocol and the campaign protocol "
           "(`--campaign disjoint`); mean ± std over 3 seeds, %. What the strategies are: "
           "[label absence](concepts/protocols.md#label-absence). Measured with `analytic`'s defaults of "
           "the time (λ chosen on the first session, no winsorising), before today's `lambda_search='gcv'` "
           "and `clip='auto'`; the `pseudo_calibration=platt` column is an option removed since, kept as "
           "measured.", "",
           "<!-- ci: run by its benchmark; hours on two cores -->", "```bash",
           "MLCIL_DATA=/path/to/data python benchmarks/accuracy.py --out benchmarks/results/accuracy", "```", ""]
    for key, title in (("last_mAP", "Last mAP"), ("avg_mAP", "Average mAP over the sessions")):
        rows = []
        for dataset in summary["field"]:
            for campaign in ("field", "disjoint"):
                learners = summary.get(campaign, {}).get(dataset, {})
                rows.append([dataset, campaign] + [stat(learners[s][key], 3) if s in learners else "–"
                                                   for s in specs])
        out += [f"{title}:", "", table(["dataset (domain, protocol, sessions)", "protocol"]
                                        + [f"`{s}`" for s in specs], rows), ""]
    return out


def baselines_section() -> list[str]:
    reports = {name: load(f"baselines/{name}/report.json") for name in BASELINES}
    first = reports[BASELINES[0]]
    learners = list(first["summary"])
    head = ["learner"] + [f"{n} {r['protocol']['spec']}" for n, r in reports.items()] + ["learn s (sum)", "state (max)"]
    rows = []
    for spec in learners:
        row = [f"`{spec}`"]
        for r in reports.values():
            row.append(stat(r["summary"][spec]["last_mAP"], len(r["config"]["seeds"])))
        row.append(f"{sum(r['summary'][spec]['learn_s']['mean'] for r in reports.values()):.1f}")
        row.append(human_bytes(max(r["summary"][spec]["state_bytes"]["mean"] for r in reports.values())))
        rows.append(row)
    device = first["config"].get("device", "cpu")
    return ["## Baselines side by side", "",
            f"Every registered learner on five datasets (`mlcil bench <dataset> --learners all`, through "
            f"`benchmarks/baselines.py`, device {device}): last mAP (%), mean ± std over "
            f"{len(first['config']['seeds'])} seeds; learn seconds summed over the five datasets, state the "
            "largest of the five (exemplar buffers included).", "",
            "<!-- ci: run by its benchmark; needs torch and minutes per dataset -->", "```bash",
            f"python benchmarks/baselines.py --seeds {len(first['config']['seeds'])} --device {device}", "```", "",
            table(head, rows), ""]


def conventions_section() -> list[str]:
    rows = []
    for name, spec in CONVENTIONS:
        reps = {conv: load(f"metric_conventions/{name}-{spec}-{conv}/report.json") for conv in ("mlcil", "field")}
        for learner in reps["mlcil"]["summary"]:
            row = [f"{name} {spec}", f"`{learner}`"]
            for key in ("avg_mAP", "last_mAP", "last_CF1", "last_OF1"):
                for conv in ("mlcil", "field"):
                    row.append(stat(reps[conv]["summary"][learner][key], 1, 2))
            rows.append(row)
    head = ["dataset", "learner"] + [f"{m} `{c}`" for m in ("avg mAP", "last mAP", "last CF1", "last OF1")
                                     for c in ("mlcil", "field")]
    return ["## Metric conventions measured", "",
            "The same runs read under mlcil's convention and the field's (KRT, CSC); seed 0, %. What differs: "
            "[metric conventions](concepts/metrics.md).", "",
            "<!-- ci: run by its benchmark; minutes per dataset -->", "```bash",
            "mlcil bench DATASET -p PROTOCOL -l analytic,joint -s 1 --metrics M "
            "-o benchmarks/results/metric_conventions/DATASET-PROTOCOL-M", "```", "",
            table(head, rows), ""]


def fewshot_section() -> list[str]:
    out = ["## Few-shot and zero-shot new classes", "",
           "After a base session with every other class, the last fifth of the classes (alphabetical) arrive "
           "with k training examples each (k = 0: their names only); mAP (%) of the new classes on the whole "
           "test set, mean ± std over seeds; *names* = the label names as a prior "
           "([zero-shot cold start](encoders.md#zero-shot-cold-start-from-a-labels-name)).", "",
           "<!-- ci: run by its benchmark; needs the embedded text sets -->", "```bash",
           "python benchmarks/fewshot.py --datasets hoc@minilm --seeds 3", "```", ""]
    for name in FEWSHOT:
        data = load(f"fewshot/{name}/fewshot.json")
        recs = data["records"]
        shots = data["args"]["shots"]
        ds = recs[0]["dataset"]
        chance = sum(r["chance"] for r in recs) / len(recs)
        groups: dict[tuple[str, bool], dict[int, list[float]]] = {}
        for r in recs:
            groups.setdefault((r["learner"], bool(r["prior"])), {}).setdefault(r["k"], []).append(r["new_class_mAP"])
        rows = []
        for (learner, prior), by_k in groups.items():
            row = [f"`{learner}`", "yes" if prior else "no"]
            for k in shots:
                vals = [v for v in by_k.get(k, []) if v is not None and not math.isnan(v)]
                if not vals:
                    row.append("—")
                    continue
                mean = sum(vals) / len(vals)
                std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
                row.append(f"{100 * mean:.1f} ± {100 * std:.1f}")
            rows.append(row)
        out += [f"{ds}: {recs[0]['n_new']} new classes, chance {100 * chance:.1f} "
                f"({data['args']['seeds']} seeds; `benchmarks/results/fewshot/{name}/`):", "",
                table(["learner", "names"] + [f"k={k}" for k in shots], rows), ""]
    return out


def audit_section() -> list[str]:
    audit = load(AUDIT)
    label = {"loo": "(a) exact leave-one-out + cleanlab", "kfold": "(b) 5-fold logistic + cleanlab"}
    rows = []
    for key, r in audit.items():
        name, method = key.split("/")
        def mean(xs: list) -> float:  # over the sessions where the value is defined
            ok = [x for x in xs if x is not None and not math.isnan(x)]
            return sum(ok) / len(ok) if ok else float("nan")

        rows.append([name, label.get(method, method), f"{r['rows']:,}", f"{r['errors']:,}", pct(mean(r["pak"])),
                     pct(mean(r["fp"])), pct(mean(r["fr"])), f"{r['oos']:.2f}", f"{r['learn']:.2f}",
                     f"{r['clean']:.2f}"])
    return ["## Label-error audit", "",
            "Errors planted in every session (5% of positives dropped, 1% of negatives flipped, seed 0), then "
            "each session audited two ways; P@k = precision of the k lowest-quality rows (k = rows with a planted "
            "error), flag precision / recall of the rows cleanlab flags, mean over sessions (%; flag precision over "
            "the sessions where cleanlab flags a row); seconds summed over sessions. Details: "
            "[the audit](decisions.md#the-label-error-audit).", "",
            "<!-- ci: run by its benchmark; minutes per dataset -->", "```bash",
            "MLCIL_DATA=/path/to/data python benchmarks/audit.py --out benchmarks/results/audit.md", "```", "",
            table(["dataset", "audit", "rows", "planted", "P@k", "flag precision", "flag recall",
                   "out-of-sample s", "+ learn s", "cleanlab s"], rows), ""]


def reproducibility_section() -> list[str]:
    data = load(REPRODUCIBILITY)
    learners = data["learners"]
    rows = []
    for res in data["results"]:
        worst: dict[str, dict] = {}
        for cell in res["cells"]:
            w = worst.setdefault(cell["learner"], {"score": 0.0, "proba": 0.0, "map": 0.0, "identical": True})
            for k in ("score", "proba", "map"):
                w[k] = max(w[k], cell[k])
            w["identical"] = w["identical"] and cell["identical"]
        row = [res["config"]]
        for learner in learners:
            w = worst.get(learner)
            if w is None:
                row.append("–")
            elif w["identical"]:
                row.append("=")
            else:
                row.append(" · ".join("0" if w[k] == 0 else f"{w[k]:.1e}" for k in ("score", "proba", "map")))
        rows.append(row)
    return ["## Reproducibility across threads and kernels", "",
            f"{data['suite']}, seed 0, default parameters, each configuration in a fresh process, compared with "
            f"the first configuration ({data['configs'][0]['label']}). Cells: max |Δscore| / max |score| · "
            "max |Δproba| · max |ΔmAP| (points); = means bit-for-bit equal. "
            "[Reproducibility](reproducibility.md) states the tolerance the tests use.", "",
            "<!-- ci: run by its benchmark; minutes -->", "```bash",
            "MLCIL_DATA=/path/to/data python benchmarks/reproducibility.py --out benchmarks/results/reproducibility",
            "```", "", table(["configuration"] + [f"`{x}`" for x in learners], rows), ""]


def throughput_section() -> list[str]:
    files = sorted((RESULTS / THROUGHPUT).glob("*.json"))
    if not files:
        raise MissingResult(f"results_page: no result file in benchmarks/results/{THROUGHPUT}/; make one with: "
                            "python benchmarks/embed_throughput.py")
    rows = []
    for f in files:
        r = json.loads(f.read_text())
        device = r["device"]
        gpu = (r.get("machine") or {}).get("cuda")
        if device == "cuda" and gpu:
            device = f"cuda ({gpu})"
        precision = r.get("precision")
        encoder = f"`{r['encoder']}`" + (f" {precision}" if precision not in (None, "auto") else "")
        rows.append([encoder, r["inputs"], device, str(r["batch_size"]), str(r["workers"]),
                     f"{r['forward_ex_per_s']:,.1f}", f"{r['pipeline_ex_per_s']:,.1f}", f"{100 * r['ratio']:.0f}%",
                     f"{100 * r['forward_share']:.0f}%"])
    return ["## Embedding throughput", "",
            "The whole `mlcil embed` pipeline (hashing, cache, data loading, batching) against the bare encoder "
            "forward on the same batches, side by side in one run (median of the repeats); *forward share* = time "
            "inside the forward pass / pipeline wall time. Files: `benchmarks/results/embed_throughput/`.", "",
            "<!-- ci: run by its benchmark; minutes, and the GPU rows need a GPU -->", "```bash",
            "MLCIL_DATA=/path/to/data python benchmarks/embed_throughput.py --dataset goemotions "
            "--encoder tfidf-svd:dim=256",
            "```", "",
            table(["encoder", "inputs", "device", "batch", "workers", "forward ex/s", "pipeline ex/s",
                   "pipeline / forward", "forward share"], rows), ""]


#: folders whose reports are summarised by a section of their own (or by the decisions page)
SUMMARISED = ("accuracy/", "baselines/", "decisions/", "metric_conventions/")


def other_reports_section() -> list[str]:
    """Every other ``report.json`` under benchmarks/results/, so that a new benchmark report shows up here."""
    used = {HEADLINE} | {rel for rel, _ in TEXT_MINILM + TEXT_TFIDF + FEATURES}
    rest = sorted(str(p.relative_to(RESULTS)) for p in RESULTS.rglob("report.json"))
    rest = [rel for rel in rest if rel not in used and not rel.startswith(SUMMARISED)]
    if not rest:
        return []
    out = ["## Other benchmark reports", ""]
    for rel in rest:
        out += report_section(rel, "`benchmarks/results/" + rel.rsplit("/", 1)[0] + "/`")
    return out


def page() -> str:
    out = ["# Results", "",
           "<!-- generated by benchmarks/results_page.py from benchmarks/results/**/*.json: do not edit by hand -->",
           "",
           "Every table on this page is generated by `python benchmarks/results_page.py` from the JSON files that "
           "the benchmarks committed under `benchmarks/results/`; `python benchmarks/results_page.py --check` "
           "(run by `tests/test_docs.py`) fails when this page or the README's headline table is out of date. "
           "Unless a table says otherwise: metric convention `mlcil` (see [metric conventions]"
           "(concepts/metrics.md)); mAP, CF1, OF1 and forgetting in %, mean ± std over the seeds; CF1/OF1 at "
           "threshold 0.8 on calibrated probabilities; forgetting on the full test set; learn s = learning time "
           "over all sessions; state = the learner's state after the last session. Times were taken on shared "
           "machines (the report's machine line says which) and are only comparable within one table.", ""]
    out += setup_section()
    out += ["## The headline", ""] + report_section(HEADLINE, "the README's main job", "###")[2:]
    out += ["## Real text, sentence embeddings", "",
            "Raw texts embedded once by the packaged all-MiniLM-L6-v2 (`minilm`, the default text encoder; "
            "`mlcil embed DATASET`), then benchmarked. Reports in `benchmarks/results/text/`.", ""]
    for rel, what in TEXT_MINILM:
        out += report_section(rel, what)
    out += ["## Real text, TF-IDF", "",
            "The same texts through the offline `tfidf-svd:dim=256` encoder (fitted on the training split only).",
            ""]
    for rel, what in TEXT_TFIDF:
        out += report_section(rel, what)
    out += ["## Hand-crafted features (Mulan/MEKA)", ""]
    for rel, what in FEATURES:
        out += report_section(rel, what)
    out += other_reports_section()
    out += sweep_section()
    out += accuracy_section()
    out += baselines_section()
    out += conventions_section()
    out += fewshot_section()
    out += audit_section()
    out += reproducibility_section()
    out += throughput_section()
    return "\n".join(out).rstrip() + "\n"


BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def readme(text: str) -> str:
    """README.md with every ``<!-- results: NAME -->`` block regenerated (``headline``, ``setup``)."""
    blocks = {"headline": headline_block, "setup": setup_block}
    names = [m.group("name") for m in BLOCK.finditer(text)]
    if "headline" not in names:
        raise SystemExit("results_page: README.md has no '<!-- results: headline -->' … '<!-- /results -->' block")
    unknown = set(names) - set(blocks)
    if unknown:
        raise SystemExit(f"results_page: README.md names unknown results block(s) {sorted(unknown)}; "
                         f"known: {sorted(blocks)}")
    return BLOCK.sub(lambda m: m.group(1) + blocks[m.group("name")]() + "\n" + m.group(4), text)


def outputs() -> dict[Path, str]:
    """What the script writes: {path: text}."""
    return {PAGE: page(), README: readme(README.read_text())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if docs/results.md or README.md differs from what would be written")
    args = parser.parse_args(argv)
    try:
        wanted = outputs()
    except MissingResult as exc:
        print(exc.code, file=sys.stderr)
        return 2
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"results_page: {p.relative_to(ROOT)} is out of date: run python benchmarks/results_page.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(wanted[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
