"""The field's own methods (L3A, KRT, CSC) side by side with mlcil's learners, one protocol, token features.

Two steps. ``prepare`` embeds a seeded subsample of each real-text set with MiniLM, pooled embedding
and per-token states from the same pass (the text truncated to ``--tokens`` word pieces, so every
learner sees the same truncated text), and writes ``<name>@minilm-t<T>-n<N>`` datasets with their
tokens beside them (under ``--out``, default ``$MLCIL_CACHE/data``-like ``~/.cache/mlcil/field_methods``):

    MLCIL_DATA=/path/to/data HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/field_methods.py prepare --n 1000 --tokens 32

``tables`` rewrites the table from the reports already there. ``run`` benchmarks every learner on each prepared set under the protocol of the README's text tables,
3 seeds, and writes one report per cell (``benchmarks/results/field_methods/<set>/<learner>.json``; a
``.timeout`` file where the cell ran over its limit) and the
table (``benchmarks/results/field_methods/tables.md``): last and average mAP under the ``mlcil`` and
``field`` conventions, CF1/OF1 (``mlcil`` at 0.8; ``l3a`` at 0.525, the threshold its own convention
records), forgetting, learn seconds and state bytes, and what each method keeps. Where a learner's
defaults cannot fit the 10-minute cell, ``REDUCED`` names the stated configuration run instead (``csc`` on
the two Stack Exchange sets):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/field_methods.py run --n 1000 --tokens 32 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "field_methods"
#: (raw set, protocol of the README's text tables)
SETS = [("hoc", "B0-C2"), ("reuters21578", "B0-C18"), ("goemotions", "B0-C7"), ("se_crypto", "B0-C79"),
        ("se_cooking", "B0-C148")]
LEARNERS = ["l3a", "krt", "csc", "analytic", "joint", "prototype", "lda", "finetune", "lwf", "pseudolabel", "replay"]
#: what each learner keeps between sessions (besides its weights)
KEEPS = {
    "l3a": "statistics (H×H Gram, H×C)", "krt": "weights + old heads (exemplar-free)",
    "csc": "weights + label graph (exemplar-free)", "analytic": "statistics (Gram per session)",
    "joint": "all data (upper bound)", "prototype": "statistics (class sums)", "lda": "statistics (means, covariance)",
    "finetune": "weights", "lwf": "weights + old model", "pseudolabel": "weights + old model",
    "replay": "weights + exemplars", "joint-sgd": "all data (upper bound)",
}
USES_TOKENS = {"krt", "csc"}
#: reduced configurations where the learner's defaults cannot fit the 10-minute cell on the 2-core machine
#: (csc's graph costs n·C²·D per batch: over the limit on se_crypto's 392 classes, measured; se_cooking has more)
REDUCED = {"se_crypto": {"csc": ["csc:epochs=2,dim=32", "csc:epochs=5,dim=32"]},
           "se_cooking": {"csc": ["csc:epochs=2,dim=32"]}}
#: CF1/OF1 threshold per learner where its own convention records one (L3A reports F1 at 0.525); else 0.8
THRESHOLDS = {"l3a": 0.525}
DEFAULT_THRESHOLD = 0.8
#: the summary paragraph of tables.md, written from the committed numbers (empty: none)
SUMMARY = (
    "On every set the closed-form learners on the pooled embedding lead last mAP: `analytic` is first or "
    "within 2.3 points of the first (hoc: `joint` 54.0 against 51.7; goemotions: `prototype` 32.9 against 31.7). "
    "`l3a` at its defaults (raw input, γ = 1000, 4,096 units) is 2.0 to 6.4 points below `analytic` (goemotions "
    "29.7 against 31.7, reuters21578 45.2 against 51.6) and forgets at most 0.5 points. The token "
    "learners, exemplar-free on frozen MiniLM token states, are below every closed-form learner on every set: "
    "4.1 (`krt`, goemotions) to 27.3 (`csc`, reuters21578) points below `analytic` on the three small sets, around "
    "the gradient baselines there (from 9.6 below `lwf`, `csc` on reuters21578, to 5.4 above, `krt` on goemotions); on the Stack Exchange sets (392 and 740 classes, "
    "a few positives per class and session) they stay near the floor: `krt` 8.4 and 5.0, `csc` 3.3 and 2.5 in "
    "its reduced configuration (3.8 with 5 epochs on se_crypto), below `replay` and `lwf`. The field's "
    "re-benchmark order L3A > KRT > CSC holds on four sets; on hoc `csc` (31.9) passes `krt` (28.3). "
    "`krt` forgets 5 to 10 points on the small sets, `csc` at most 2.4. At 0.525, `l3a`'s CF1/OF1 are non-zero "
    "only on hoc (11.1 / 25.7): on the other sets σ of its scores stays below 0.525 (docs/learners/l3a.md: γ = 1000 "
    "on raw unit-norm embeddings regularises strongly), so its F1 there is 0 at either threshold; `krt` and "
    "`csc` decide almost nothing at 0.8 on the Stack Exchange sets (CF1 at most 0.2)."
)


def specs_for(name: str, learners: str) -> list[str]:
    """The learner specs run on set ``name``: a reduced configuration replaces the default where one is set."""
    return [r for spec in learners.split(",") for r in REDUCED.get(name, {}).get(spec, [spec])]


def stem_of(spec: str) -> str:
    return spec.replace(":", "_").replace(",", "_").replace("=", "-")


def default_out() -> Path:
    return Path(os.environ.get("MLCIL_FIELD_DATA", Path.home() / ".cache" / "mlcil" / "field_methods"))


def set_name(name: str, n: int, tokens: int) -> str:
    return f"{name}@minilm-t{tokens}-n{n}"


def prepare(args) -> None:
    import torch

    from mlcil.data.npz import write_npz
    from mlcil.data.raw import load_raw
    from mlcil.encoders import make_encoder
    from mlcil.encoders.tokens import check_token_budget, embed_tokens

    torch.set_num_threads(1)
    encoder = make_encoder("minilm", device="cpu")
    for name, _ in SETS:
        if name not in args.datasets.split(","):
            continue
        out = Path(args.out) / set_name(name, args.n, args.tokens) / f"{set_name(name, args.n, args.tokens)}.npz"
        if out.exists():
            print(f"{out} exists", flush=True)
            continue
        raw = load_raw(name)
        rows = np.sort(np.random.default_rng(0).choice(raw.n, size=min(args.n, raw.n), replace=False))
        sub = raw.subset(rows)
        sub.meta["ids"] = [raw.meta.get("ids", list(range(raw.n)))[i] for i in rows]
        check_token_budget(sub.n, args.tokens, encoder.dim, out_dir=out.parent)
        start = time.perf_counter()
        ds = embed_tokens(sub, encoder, max_tokens=args.tokens, batch_size=32)
        ds.name = set_name(name, args.n, args.tokens)
        ds.meta.update(subsample={"of": raw.n, "rows": int(sub.n), "seed": 0})
        write_npz(ds, out)
        print(f"{ds.name}: n={ds.n} L={ds.L} T={ds.T.shape} in {time.perf_counter() - start:.0f} s -> {out}",
              flush=True)


def _cell(path: str, protocol: str, spec: str, seeds: int, out: str) -> None:
    """One (set, learner) cell, in a child process: every seed, the report written to ``out``."""
    import torch

    from mlcil.bench import BenchConfig, run_benchmark
    from mlcil.bench.report import strict_json
    from mlcil.data.npz import read_npz

    torch.set_num_threads(1)
    ds = read_npz(path)
    start = time.perf_counter()
    threshold = THRESHOLDS.get(spec.split(":")[0], DEFAULT_THRESHOLD)
    report = run_benchmark(ds, BenchConfig(protocol=protocol, learners=(spec,), seeds=tuple(range(seeds)),
                                           threshold=threshold), progress=False)
    report["wall_s"] = time.perf_counter() - start
    report["tokens"] = {"T": list(ds.T.shape) if ds.T is not None else None, **ds.meta.get("tokens", {})}
    report["subsample"] = ds.meta.get("subsample")
    from mlcil.data.dataset import token_features
    from mlcil.protocols import Protocol

    stream = Protocol(protocol, seed=0).build(ds)  # the token learners read tokens only if the sessions carry them
    report["tokens_reach_learners"] = bool(token_features(stream.sessions[0]) is not None
                                           and token_features(stream.X_test) is not None)
    Path(out).write_text(json.dumps(strict_json(report), indent=1), encoding="utf-8")


def run(args) -> None:
    import multiprocessing as mp

    RESULTS.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")
    for name, protocol in SETS:
        if name not in args.datasets.split(","):
            continue
        ds_name = set_name(name, args.n, args.tokens)
        path = Path(args.out) / ds_name / f"{ds_name}.npz"
        folder = RESULTS / ds_name
        folder.mkdir(exist_ok=True)
        for spec in specs_for(name, args.learners):
            out = folder / f"{stem_of(spec)}.json"
            if out.exists():
                continue
            start = time.perf_counter()
            child = ctx.Process(target=_cell, args=(str(path), protocol, spec, args.seeds, str(out)))
            child.start()
            child.join(args.cell_limit)
            if child.is_alive():
                child.terminate()
                child.join()
                out.with_suffix(".timeout").write_text(f"over {args.cell_limit} s\n", encoding="utf-8")
                print(f"{ds_name} {spec}: over the cell limit of {args.cell_limit} s", flush=True)
                continue
            print(f"{ds_name} {protocol} {spec}: {time.perf_counter() - start:.0f} s (exit {child.exitcode})",
                  flush=True)
    write_tables(args)


def _fmt(stat: dict | None, scale: float = 100.0) -> str:
    if not stat or not np.isfinite(stat.get("mean", np.nan)):
        return "–"
    return f"{scale * stat['mean']:.1f} ± {scale * stat['std']:.1f}"


def write_tables(args) -> Path:
    """benchmarks/results/field_methods/tables.md from every cell's report."""
    from mlcil.bench.report import human_bytes

    reduced = [(spec, name) for name, specs in REDUCED.items() for alts in specs.values() for spec in alts]
    lines = ["# The field's methods side by side (reduced size)", "",
             f"Each set: a seeded subsample of {args.n} rows of the raw texts (seed 0; the set's own train/test split),",
             f"embedded by MiniLM truncated to {args.tokens} word pieces: the pooled embedding and the {args.tokens} "
             "token states (float16, with a mask)",
             "come from the same pass, so every learner sees the same truncated text. "
             "Protocol: the README's text protocols; seeds 0-"
             f"{args.seeds - 1}, mean ± std. mAP in %, `mlcil` and `field` conventions; CF1/OF1 under `mlcil` at "
             f"{DEFAULT_THRESHOLD}, except `l3a` at {THRESHOLDS['l3a']} (the threshold its own convention, `l3a`, "
             "records: L3A reports F1 there; its rows say `@0.525`); "
             "forgetting in AP points (`mlcil`); learn s = all sessions of one seed; state = bytes after the last session.",
             "Made by:", "",
             f"    MLCIL_DATA=/path/to/data HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/field_methods.py prepare "
             f"--n {args.n} --tokens {args.tokens}",
             f"    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/field_methods.py run --n {args.n} "
             f"--tokens {args.tokens} --seeds {args.seeds}", "",
             "on the shared 2-core machine (no GPU, other jobs running beside it), one cell (set × learner, all seeds) "
             "at a time in a child process, each limited to 10 minutes.", "",
             "Reduced configurations (stated, not the learners' defaults): "
             + "; ".join(f"`{spec}` on {name}" for spec, name in reduced)
             + ". `csc`'s graph costs n·C²·D per batch (the sample-specific relation over every pair of the C "
             "classes seen): with its defaults (20 epochs, dim 128) it ran over the 10-minute cell on se_crypto "
             "(392 classes), and se_cooking has more classes; at width 128 even 2 epochs took about "
             "200 s per seed there (one seed measured), so the reduced runs train at width 32 (`dim=32`) for 2 "
             "epochs (both sets) and 5 (se_crypto): they say what `csc` reaches within the cell, not what it "
             "reaches trained as on the other sets (20 epochs, width 128).", "",
             "Reading it: the `field` convention counts a class without a test positive as AP 0; a 1,000-row "
             "subsample leaves many of reuters21578's (and the Stack Exchange sets') classes without one, "
             "which is why its mAP is lower there. `krt` and `csc` run exemplar-free (`memory=0`, "
             "not their papers' setting) and read the token features (checked per set: the sessions and the "
             "test rows carry them); the other learners read the pooled embedding of the same pass.", ""]
    if SUMMARY:
        lines += ["## What the numbers show", "", SUMMARY, ""]
    for name, protocol in SETS:
        ds_name = set_name(name, args.n, args.tokens)
        folder = RESULTS / ds_name
        if not folder.is_dir():
            lines += [f"## {name} {protocol}: not run yet", ""]
            continue
        rows = []
        specs = specs_for(name, args.learners)
        missing = [spec for spec in specs if not any((folder / f"{stem_of(spec)}{ext}").exists()
                                                     for ext in (".json", ".timeout"))]
        shown = list(specs)
        for default, alts in REDUCED.get(name, {}).items():  # the default's own attempt, where one was made
            if (folder / f"{stem_of(default)}.timeout").exists() and default in args.learners.split(","):
                shown.insert(shown.index(alts[0]), default)
        for spec in shown:
            path = folder / f"{stem_of(spec)}.json"
            if not path.exists():
                if (folder / f"{stem_of(spec)}.timeout").exists():
                    rows.append(f"| `{spec}` | over 10 min | | | | | | | | | |")
                continue
            rep = json.loads(path.read_text(encoding="utf-8"))
            st = rep["summary"][spec]
            conv = st["conventions"]
            base = spec.split(":")[0]
            keeps = KEEPS.get(base, "")
            if base in USES_TOKENS:
                keeps += "; reads tokens"
            thr = rep["config"]["threshold"]
            at = "" if thr == DEFAULT_THRESHOLD else f" @{thr:g}"
            rows.append(f"| `{spec}` | {_fmt(st['last_mAP'])} | {_fmt(st['avg_mAP'])} | {_fmt(conv['field']['last_mAP'])} | "
                        f"{_fmt(conv['field']['avg_mAP'])} | {_fmt(st['last_CF1'])}{at} | {_fmt(st['last_OF1'])}{at} | "
                        f"{_fmt(st['forgetting'])} | {st['learn_s']['mean']:.1f} | {human_bytes(st['state_bytes']['mean'])} | "
                        f"{keeps} |")
        if not rows:
            continue
        lines += [f"## {name} {protocol} ({ds_name})", "",
                  "| learner | last mAP | avg mAP | last mAP (field) | avg mAP (field) | CF1 | OF1 | forgetting | learn s | "
                  "state | keeps |", "|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
        if missing:
            lines += [f"Not run yet: {', '.join(f'`{m}`' for m in missing)}.", ""]
    out = RESULTS / "tables.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    for step in ("prepare", "run", "tables"):
        p = sub.add_parser(step)
        p.add_argument("--n", type=int, default=1000, help="rows subsampled per set (seed 0)")
        p.add_argument("--tokens", type=int, default=32, help="tokens kept per text (the text is truncated to them)")
        p.add_argument("--datasets", default=",".join(n for n, _ in SETS))
        p.add_argument("--out", default=str(default_out()), help="where prepared sets live")
        if step in ("run", "tables"):
            p.add_argument("--seeds", type=int, default=3)
            p.add_argument("--learners", default=",".join(LEARNERS))
            p.add_argument("--cell-limit", type=int, default=600, help="seconds per (set, learner) cell, all seeds")
    args = parser.parse_args()
    {"prepare": prepare, "run": run, "tables": write_tables}[args.step](args)


if __name__ == "__main__":
    main()
