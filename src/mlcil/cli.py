"""The ``mlcil`` command line: ``mlcil bench``, ``mlcil datasets``, ``mlcil embed``.

Bad input (unknown dataset, malformed file, unparsable protocol, ...) prints one line
``error: ...`` and exits with code 2; set ``MLCIL_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlcil import __version__
from mlcil.errors import MlcilError


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns MlcilError into a one-line message and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MlcilError as exc:
            if os.environ.get("MLCIL_DEBUG"):
                raise
            _fail(str(exc))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlcil")
def main() -> None:
    """mlcil: continual multi-label learning on frozen embeddings.

    Learners that add labels session by session without revisiting old data, the
    field's benchmark protocols and metrics, and a tagging service.
    Datasets are found by name in $MLCIL_DATA/<name>/, the user cache, or downloaded.
    """


@main.command()
@click.argument("dataset")
@click.option("--protocol", "-p", default="B0-C10", show_default=True,
              help="Session split B<base>-C<increment>: B0-C10 = 10 new classes per session; "
                   "B40-C10 = 40 classes first, then 10 per session.")
@click.option("--learners", "-l", default="joint,finetune", show_default=True,
              help="Comma-separated learner names, each optionally with options "
                   "(e.g. 'joint:M=4096,balance=true'); 'all' = every registered learner.")
@click.option("--seeds", "-s", default=3, show_default=True, type=click.IntRange(1),
              help="Number of seeds (0..N-1); each seeds the learners and, where used, the class order "
                   "and the train/test split.")
@click.option("--order", default="alphabetical", show_default=True,
              type=click.Choice(["alphabetical", "dataset", "random"]),
              help="Class order: alphabetical by label name (COCO/VOC convention), the dataset's column "
                   "order, or a seeded permutation.")
@click.option("--classes", "n_classes", type=click.IntRange(1), default=None,
              help="Use only the first N classes of the order (default: all).")
@click.option("--few-shot", type=click.IntRange(1), default=None,
              help="Keep at most K training examples per new class in each session.")
@click.option("--test-size", default=0.3, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Test fraction of the seeded stratified split, for datasets without an official split.")
@click.option("--threshold", default=0.8, show_default=True, type=click.FloatRange(0, 1),
              help="Probability threshold for CP/CR/CF1/OP/OR/OF1 (0.8 as in CSC and MULTI-LANE).")
@click.option("--device", default="cpu", show_default=True, help="Torch device: cpu, cuda or auto.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder for report.json, report.md and map_per_session.png "
                   "[default: results/<dataset>-<protocol>].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="MLCIL_DATA",
              help="Folder holding <name>/ dataset folders [env: MLCIL_DATA].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--encoder", "-e", default=None,
              help="Embed a raw dataset first (as `mlcil embed`, through the embedding cache), e.g. tfidf-svd:dim=256.")
def bench(dataset, protocol, learners, seeds, order, n_classes, few_shot, test_size, threshold, device, out,
          data_dir, quiet, encoder) -> None:
    """Run learners on DATASET under a class-incremental protocol and write a report.

    DATASET is a registered name (see `mlcil datasets`) or a path to a .npz, .arff or
    .jsonl(.gz) file. Reports avg mAP, last mAP, last CF1/OF1, forgetting, learn time and
    state size, mean ± std over seeds.

    Example: mlcil bench scene --protocol B0-C2 --learners joint,finetune --seeds 3
    """
    from mlcil.bench import BenchConfig, markdown_table, run_benchmark, write_report
    from mlcil.data import load_dataset
    from mlcil.learners import resolve_learner_names
    from mlcil.protocols import parse_spec

    parse_spec(protocol)
    specs = resolve_learner_names(learners)
    ds = load_dataset(dataset, data_dir=data_dir) if encoder is None else _embed(dataset, encoder, data_dir, quiet)
    config = BenchConfig(protocol=protocol, learners=tuple(specs), seeds=tuple(range(seeds)), order=order,
                         n_classes=n_classes, few_shot=few_shot, test_size=test_size, threshold=threshold,
                         device=device)
    report = run_benchmark(ds, config, progress=not quiet)
    out = out or Path("results") / f"{ds.name}-{protocol}"
    paths = write_report(report, out)
    click.echo(f"{ds.name} {protocol}: {report['protocol']['n_sessions']} sessions, seeds {seeds}")
    click.echo(markdown_table(report))
    click.echo(f"wrote {paths['md']}, {paths['json']}, {paths['png']}")


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="MLCIL_DATA",
              help="Folder holding <name>/ dataset folders [env: MLCIL_DATA].")
def datasets(data_dir) -> None:
    """List registered datasets: size n, features d, labels L, label cardinality, where found."""
    from mlcil.data import list_datasets

    rows = list_datasets(data_dir=data_dir)
    header = ("name", "domain", "n", "d", "L", "card.", "where")
    table = [header] + [
        (r["name"], r["domain"], _fmt(r.get("n")), _fmt(r.get("d")), _fmt(r.get("L")),
         _fmt(r.get("cardinality"), "{:.3f}"), str(r.get("where", "")))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def _fmt(value, pattern: str = "{}") -> str:
    if value is None:
        return "?"
    return pattern.format(value) if not isinstance(value, str) else value


def _embed(dataset: str, spec: str, data_dir, quiet: bool, root=None, **kwargs):
    """Raw dataset -> embedded Dataset through the default embedding cache (for bench --encoder and embed)."""
    from mlcil.data.raw import load_raw
    from mlcil.encoders import default_cache_dir, embed_dataset, make_encoder, select_device

    cache = kwargs.pop("cache", default_cache_dir())
    device = select_device(kwargs.pop("device", "auto"))  # fail early on a bad device, whatever the encoder
    encoder = make_encoder(spec, device=device, precision=kwargs.pop("precision", "auto"))
    raw = load_raw(dataset, root=root, data_dir=data_dir)
    ds = embed_dataset(raw, encoder, cache_dir=cache, progress=not quiet, **kwargs)
    ds.name = f"{raw.name}-{_slug(spec)}"
    return ds


def _slug(spec: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._]+", "-", spec).strip("-")


@main.command()
@click.argument("dataset")
@click.option("--encoder", "-e", required=True,
              help="Encoder spec: tfidf-svd:dim=256, timm:vit_base_patch16_224.augreg_in21k, "
                   "open_clip:ViT-B-32/laion2b_s34b_b79k[,tower=text], sentence-transformers:all-MiniLM-L6-v2.")
@click.option("--root", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder of the raw files: VOC2007 (or VOCdevkit), COCO 2014 (annotations/, train2014/, val2014/), "
                   "the images of a label file, or a text dataset's folder.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output .npz [default: $MLCIL_CACHE/data/<name>-<encoder>/<name>-<encoder>.npz, "
                   "so that `mlcil bench <name>-<encoder>` finds it].")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1), help="Inputs per forward pass.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0),
              help="DataLoader worker processes decoding images (text encoders use 0).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (CUDA if available).")
@click.option("--precision", default="auto", show_default=True,
              type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="On CUDA: autocast dtype (auto = bf16 where supported, else fp16). CPU runs float32.")
@click.option("--cache", "cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Embedding cache folder [default: $MLCIL_CACHE/embeddings].")
@click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache.")
@click.option("--skip-bad", is_flag=True,
              help="Drop unreadable/truncated images (count logged, ids in the .json) instead of stopping.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="MLCIL_DATA",
              help="Folder holding <name>/ dataset folders [env: MLCIL_DATA].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def embed(dataset, encoder, root, out, batch_size, workers, device, precision, cache, no_cache, skip_bad, data_dir,
          quiet) -> None:
    """Encode raw DATASET with a frozen encoder into an embedded .npz (X, Y, label_names, split).

    DATASET: voc2007 or coco2014 (with --root), reuters21578 (ModApte R90), goemotions (dev merged into
    train), an image label file (.csv/.jsonl with image, labels, split), or a JSON-lines text file.
    Embeddings are cached by (encoder id, input content): re-running never re-encodes, and an
    interrupted run resumes. Encoders that are fitted (tfidf-svd) see the training split only.

    Example: mlcil embed goemotions --encoder tfidf-svd:dim=256 && mlcil bench goemotions-tfidf-svd-dim-256
    """
    import json
    import time

    from mlcil.data import write_npz
    from mlcil.data.registry import data_cache_dir
    from mlcil.encoders import default_cache_dir

    started = time.perf_counter()
    stats: dict = {}
    ds = _embed(dataset, encoder, data_dir, quiet, root=root, device=device, precision=precision,
                cache=None if no_cache else (cache or default_cache_dir()), batch_size=batch_size, workers=workers,
                on_error="skip" if skip_bad else "raise", stats=stats)
    out = out or data_cache_dir() / ds.name / f"{ds.name}.npz"
    write_npz(ds, out)
    info = {"dataset": dataset, "name": ds.name, "encoder_spec": encoder, "encoder_id": ds.meta["encoder"],
            "n": ds.n, "d": ds.d, "L": ds.L, "skipped": ds.meta["skipped"], "ids": ds.meta["ids"],
            "seconds": time.perf_counter() - started, **{k: v for k, v in stats.items()}}
    out.with_suffix(".json").write_text(json.dumps(info, default=str), encoding="utf-8")
    click.echo(f"{ds.name}: n={ds.n} d={ds.d} L={ds.L}; encoded {stats.get('encoded_rows', 0)}, "
               f"from cache {stats.get('cached_rows', 0)}, skipped {len(ds.meta['skipped'])}")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
