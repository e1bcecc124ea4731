"""Throughput of the full embedding pipeline vs the bare encoder forward, measured in the same run.

*pipeline*: ``mlcil.encoders.embed_inputs`` as ``mlcil embed`` runs it: content hashing, the embedding
cache (a fresh, empty one each repeat, so every row is encoded and every chunk written), the torch
DataLoader (worker processes decode images), batching, the progress bar.
*forward*: the encoder alone on the same batches, inputs already loaded (texts in memory; images
decoded and transformed beforehand, so only ``collate`` + ``forward`` are timed).
Ratio = pipeline examples/s / forward examples/s (goal >= 80%). Repeats alternate the two and the
median is reported. *Forward share* = time inside ``encoder.forward`` / wall time, within each pipeline
run (less sensitive to other load on the machine than the ratio of two separate runs).

With ``--compare-sort`` each repeat also runs the pipeline with texts in input order
(``sort_by_length=False``), so the gain of length-sorted batches is measured side by side.

Text (offline encoder, fitted on the training split first; fit time reported apart):
    MLCIL_DATA=../shared/data python benchmarks/embed_throughput.py --dataset goemotions --encoder tfidf-svd:dim=256
    MLCIL_DATA=../shared/data python benchmarks/embed_throughput.py --dataset goemotions --encoder minilm \\
        --device cpu --limit 2048 --batch-size 64 --compare-sort
Images (random weights, synthetic 256x256 JPEGs written to a temp folder):
    python benchmarks/embed_throughput.py --images 512 --encoder timm:vit_tiny_patch16_224,pretrained=false
    python benchmarks/embed_throughput.py --images 4096 --encoder timm:vit_base_patch16_224,pretrained=false \\
        --device cuda --batch-size 256 --workers 8           # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_images(folder: Path, n: int, size: int = 256, seed: int = 0) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        img = np.roll(base, shift=i * 7, axis=(0, 1)) // (1 + i % 3)  # distinct content per file
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(img.astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def bare_forward(encoder, inputs, batch_size: int) -> float:
    """Seconds for collate + forward over preloaded inputs, batch by batch."""
    loaded = [encoder.load(x) for x in inputs]
    start = time.perf_counter()
    for i in range(0, len(loaded), batch_size):
        encoder.forward(encoder.collate(loaded[i:i + batch_size]))
    sync(encoder)
    return time.perf_counter() - start


def sync(encoder) -> None:
    import torch

    if getattr(encoder, "device_", "cpu").startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="tfidf-svd:dim=256")
    parser.add_argument("--dataset", default=None, help="raw text/image dataset for load_raw (e.g. goemotions)")
    parser.add_argument("--images", type=int, default=0, help="use N synthetic JPEGs instead of a dataset")
    parser.add_argument("--limit", type=int, default=None, help="use the first N inputs only")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="autocast dtype: auto, float32, bfloat16, float16")
    parser.add_argument("--compare-sort", action="store_true",
                        help="also time the pipeline with texts in input order (no length sorting)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sample taken with --limit")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "embed_throughput")
    args = parser.parse_args(argv)

    import torch

    from mlcil.encoders import embed_inputs, make_encoder, select_device

    tmp = Path(tempfile.mkdtemp(prefix="mlcil-throughput-"))
    encoder = make_encoder(args.encoder, device=select_device(args.device), precision=args.precision)
    fit_s = 0.0
    if args.images:
        inputs, source = synthetic_images(tmp / "images", args.images), f"{args.images} synthetic 256x256 JPEGs"
    else:
        from mlcil.data import load_raw

        ds = load_raw(args.dataset or "goemotions")
        inputs, source = ds.X, f"{ds.name} ({ds.n:,} texts)"
        if encoder.needs_fit:
            start = time.perf_counter()
            encoder.fit([ds.X[i] for i in np.flatnonzero(ds.split == "train")])
            fit_s = time.perf_counter() - start
    if args.limit and args.limit < len(inputs):  # a seeded random sample: the file order may be sorted by topic
        pick = np.sort(np.random.default_rng(args.seed).choice(len(inputs), size=args.limit, replace=False))
        inputs = [inputs[i] for i in pick]
        source = source.replace("(", f"({args.limit:,} of ", 1) if "texts" in source else source
    n = len(inputs)
    encoder.forward(encoder.collate([encoder.load(x) for x in inputs[: min(8, n)]]))  # warm-up (lazy build, kernels)

    forward_s, pipeline_s, inner, unsorted_s = [], [], [], []
    for r in range(args.repeats):
        forward_s.append(bare_forward(encoder, inputs, args.batch_size))
        stats: dict = {}
        start = time.perf_counter()
        embed_inputs(inputs, encoder, cache_dir=tmp / f"cache{r}", batch_size=args.batch_size, workers=args.workers,
                     progress=True, stats=stats)
        sync(encoder)
        pipeline_s.append(time.perf_counter() - start)
        inner.append(stats)
        if args.compare_sort:
            start = time.perf_counter()
            embed_inputs(inputs, encoder, cache_dir=tmp / f"unsorted{r}", batch_size=args.batch_size,
                         workers=args.workers, progress=True, sort_by_length=False)
            sync(encoder)
            unsorted_s.append(time.perf_counter() - start)
    f, p = statistics.median(forward_s), statistics.median(pipeline_s)
    result = {
        "encoder": args.encoder, "encoder_id": encoder.id, "inputs": source, "n": n, "batch_size": args.batch_size,
        "workers": args.workers if encoder.modality == "image" else 0, "device": encoder.device_
        if hasattr(encoder, "device_") else "cpu", "repeats": args.repeats,
        "forward_s": forward_s, "pipeline_s": pipeline_s, "fit_s": fit_s,
        "forward_ex_per_s": n / f, "pipeline_ex_per_s": n / p, "ratio": f / p,
        # inside each pipeline run: share of its wall time spent in encoder.forward (overhead = the rest)
        "forward_share": statistics.median(s["forward_s"] / t for s, t in zip(inner, pipeline_s)),
        "pipeline_stats": inner, "precision": args.precision,
        "unsorted_pipeline_s": unsorted_s,
        "unsorted_pipeline_ex_per_s": n / statistics.median(unsorted_s) if unsorted_s else None,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
    }
    tag = f"{args.encoder}-{'images' if args.images else (args.dataset or 'goemotions')}-{result['device']}"
    tag += f"-{args.precision}" if args.precision != "auto" else ""
    label = "".join(c if c.isalnum() or c in "._-" else "-" for c in tag)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{label}.json").write_text(json.dumps(result, indent=1, default=str))
    rows = [
        "| encoder | inputs | device | batch | workers | forward ex/s | pipeline ex/s | pipeline / forward "
        "| forward share of pipeline time |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| `{args.encoder}`{' ' + args.precision if args.precision != 'auto' else ''} | {source} | {result['device']} | "
        f"{args.batch_size} | {result['workers']} | "
        f"{rate(result['forward_ex_per_s'])} | {rate(result['pipeline_ex_per_s'])} | {100 * result['ratio']:.0f}% "
        f"| {100 * result['forward_share']:.0f}% |",
    ]
    if unsorted_s:
        gain = result["pipeline_ex_per_s"] / result["unsorted_pipeline_ex_per_s"] - 1
        rows += ["", "| batches | pipeline ex/s |", "|---|---|",
                 f"| sorted by length within each cache chunk (default) | {rate(result['pipeline_ex_per_s'])} |",
                 f"| input order | {rate(result['unsorted_pipeline_ex_per_s'])} |",
                 f"| gain of sorting | {100 * gain:+.0f}% |"]
    table = "\n".join(rows)
    (args.out / f"{label}.md").write_text(table + "\n")
    print(table)
    if fit_s:
        print(f"(fit on the training split, not in the rates: {fit_s:.1f} s)")
    print(f"wrote {args.out / label}.json and .md", file=sys.stderr)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
