"""Parity and speed of the minilm backends against today's embeddings (sentence-transformers on torch).

For each dataset (its benchmark view, as ``mlcil bench`` embeds it; optionally a seeded subset of
rows), every backend embeds the same texts in the same length-sorted batches, one after the other
in one process: texts/s of each, the cosine of each vector with the torch backend's (min / median /
count below 0.999), and the last and average mAP of a learner (``analytic``, seed 0, the dataset's
protocol) on each backend's embeddings, with the difference to torch's in points.

    MLCIL_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/embed_parity.py \\
        --datasets hoc:B0-C2,reuters21578:B0-C18 --max-rows 0,1500 --threads 1

Writes benchmarks/results/embed_parity.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

BACKENDS = {"torch": "minilm,backend=torch,device=cpu", "onnx": "minilm,backend=onnx,quantize=none",
            "onnx-int8": "minilm,backend=onnx,quantize=int8"}


def subset(ds, rows: int, seed: int = 0):
    """A seeded subset of ``rows`` rows of a raw Dataset (0 = all), split kept."""
    from mlcil.data.dataset import Dataset

    if not rows or rows >= ds.n:
        return ds
    keep = np.sort(np.random.default_rng(seed).choice(ds.n, rows, replace=False))
    return Dataset([ds.X[i] for i in keep], ds.Y[keep], list(ds.label_names),
                   None if ds.split is None else ds.split[keep], ds.name, dict(ds.meta))


def make(backend: str, threads: int):
    from mlcil.encoders import make_encoder

    spec = BACKENDS[backend] + (f",threads={threads}" if backend != "torch" and threads else "")
    return make_encoder(spec, device="cpu", precision="float32")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="hoc:B0-C2,reuters21578:B0-C18",
                        help="comma-separated NAME:PROTOCOL")
    parser.add_argument("--max-rows", default="0", help="rows per dataset (comma-separated, one per dataset; 0 = all)")
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--learner", default="analytic")
    parser.add_argument("--threads", type=int, default=1, help="threads of every backend (torch and ONNX Runtime)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/embed_parity"))
    parser.add_argument("--append", action="store_true", help="keep the datasets already in the --out .json")
    args = parser.parse_args(argv)

    import torch

    from mlcil.bench import BenchConfig, run_benchmark
    from mlcil.data.dataset import Dataset
    from mlcil.data.raw import load_raw
    from mlcil.encoders import embed_inputs

    torch.set_num_threads(args.threads)
    backends = args.backends.split(",")
    assert backends[0] == "torch", "the first backend is the reference (torch)"
    limits = [int(x) for x in args.max_rows.split(",")]
    results = []
    if args.append and args.out.with_suffix(".json").is_file():
        done = {item.partition(":")[0] for item in args.datasets.split(",")}
        results = [r for r in json.loads(args.out.with_suffix(".json").read_text())["results"]
                   if r["dataset"] not in done]
    for k, item in enumerate(args.datasets.split(",")):
        name, _, protocol = item.partition(":")
        view = subset(load_raw(name), limits[min(k, len(limits) - 1)])  # load_raw gives the benchmark view
        encoders = {b: make(b, args.threads) for b in backends}
        for enc in encoders.values():
            enc.encode(["warm up"])
        Z, row = {}, {"dataset": name, "protocol": protocol, "n": view.n, "backends": {}}
        for b, enc in encoders.items():
            t0 = time.perf_counter()
            Z[b], bad = embed_inputs(view.X, enc, cache_dir=None, batch_size=args.batch_size, progress=False)
            seconds = time.perf_counter() - t0
            ds = Dataset(Z[b], view.Y, list(view.label_names), view.split, f"{name}@{b}", {})
            report = run_benchmark(ds, BenchConfig(protocol=protocol, learners=(args.learner,), seeds=(0,)),
                                   progress=False)
            s = report["summary"][args.learner]
            cos = np.sum(Z[b] * Z["torch"], axis=1) / np.maximum(
                np.linalg.norm(Z[b], axis=1) * np.linalg.norm(Z["torch"], axis=1), 1e-12)
            row["backends"][b] = {"encoder_id": enc.id, "seconds": seconds, "texts_per_s": view.n / seconds,
                                  "cos_min": float(cos.min()), "cos_median": float(np.median(cos)),
                                  "cos_below_0.999": int((cos < 0.999).sum()),
                                  "last_mAP": 100 * s["last_mAP"]["mean"], "avg_mAP": 100 * s["avg_mAP"]["mean"]}
            print(name, b, json.dumps({k: v for k, v in row["backends"][b].items() if k != "encoder_id"}), flush=True)
        ref = row["backends"]["torch"]
        for b in backends:
            r = row["backends"][b]
            r["speedup"] = r["texts_per_s"] / ref["texts_per_s"]
            r["last_mAP_diff"] = r["last_mAP"] - ref["last_mAP"]
            r["parity"] = bool(abs(r["last_mAP_diff"]) <= 0.3)
        results.append(row)
    out = {"learner": args.learner, "seed": 0, "threads": args.threads, "batch_size": args.batch_size,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average at the end "
                      f"{os.getloadavg()[0]:.1f}", "python": sys.version.split()[0], "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    lines = [f"Backends of `minilm` against today's (sentence-transformers on torch, float32), `{args.learner}` seed 0, "
             f"{args.threads} thread(s), batches of {args.batch_size} sorted by length; {out['machine']}. "
             "Texts/s were measured one backend after the other in one process on a shared machine: read the "
             "speed-up as a ratio.", "",
             "| dataset | rows | backend | texts/s | speed-up | cos min | cos median | cos < 0.999 | last mAP | "
             "Δ last mAP | avg mAP | parity (abs Δ ≤ 0.3) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in results:
        for b, r in row["backends"].items():
            lines.append(f"| {row['dataset']} {row['protocol']} | {row['n']:,} | `{b}` | {r['texts_per_s']:.1f} | "
                         f"{r['speedup']:.2f}× | {r['cos_min']:.6f} | {r['cos_median']:.6f} | {r['cos_below_0.999']} | "
                         f"{r['last_mAP']:.2f} | {r['last_mAP_diff']:+.2f} | {r['avg_mAP']:.2f} | "
                         f"{'yes' if r['parity'] else 'no'} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
