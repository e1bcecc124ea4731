"""The ``mlcil`` command line: ``mlcil bench``, ``mlcil datasets``.

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
@click.option("--calibration", type=click.Choice(["platt", "isotonic"]), default=None,
              help="Calibrate every learner's proba per class: the Analytic family on leave-one-out scores, "
                   "others on --holdout rows of each session (which they then do not learn). Default: each "
                   "learner's own proba.")
@click.option("--holdout", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Fraction of each session held out for --calibration (learners without leave-one-out).")
@click.option("--top-k", type=click.IntRange(1), default=None,
              help="k of the top-k decision [default: label cardinality of the training sessions, rounded].")
@click.option("--device", default="cpu", show_default=True, help="Torch device: cpu, cuda or auto.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder for report.json, report.md and map_per_session.png "
                   "[default: results/<dataset>-<protocol>].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="MLCIL_DATA",
              help="Folder holding <name>/ dataset folders [env: MLCIL_DATA].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def bench(dataset, protocol, learners, seeds, order, n_classes, few_shot, test_size, threshold, calibration, holdout,
          top_k, device, out, data_dir, quiet) -> None:
    """Run learners on DATASET under a class-incremental protocol and write a report.

    DATASET is a registered name (see `mlcil datasets`) or a path to a .npz, .arff or
    .jsonl(.gz) file. Reports avg mAP, last mAP, last CF1/OF1, forgetting, learn time and
    state size, mean ± std over seeds, and the last session's decisions three ways (global
    threshold, tuned per-class thresholds, top-k) with the calibration error (ECE).

    Example: mlcil bench scene --protocol B0-C2 --learners joint,finetune --seeds 3
    """
    from mlcil.bench import BenchConfig, markdown_table, run_benchmark, write_report
    from mlcil.data import load_dataset
    from mlcil.learners import resolve_learner_names
    from mlcil.protocols import parse_spec

    parse_spec(protocol)
    specs = resolve_learner_names(learners)
    ds = load_dataset(dataset, data_dir=data_dir)
    config = BenchConfig(protocol=protocol, learners=tuple(specs), seeds=tuple(range(seeds)), order=order,
                         n_classes=n_classes, few_shot=few_shot, test_size=test_size, threshold=threshold,
                         device=device, calibration=calibration, holdout=holdout, top_k=top_k)
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


if __name__ == "__main__":
    main()
