"""The ``mlcil`` command line: ``mlcil bench``, ``datasets``, ``embed``, ``audit`` and ``serve``.

Bad input (unknown dataset, malformed file, unparsable protocol, ...) prints one line
``error: ...`` and exits with code 2; set ``MLCIL_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlcil.errors import MlcilError
from mlcil.version import __version__

#: mlcil.metrics.FIELD_THRESHOLD (the field's CF1/OF1 threshold), written out so that `mlcil --version` and
#: `--help` import no NumPy; tests/test_cli.py checks that the two agree.
FIELD_THRESHOLD = 0.8


#: one default device for every command: the core install has no torch (so no GPU to pick), the minilm
#: text encoder's fast path (ONNX Runtime) and the closed-form learners run on the CPU, and a result does
#: not change with the machine it ran on; a GPU is asked for by name (cuda) or with auto.
DEFAULT_DEVICE = "cpu"
DEVICE_HELP = ("Where torch work runs (text/image encoders, gradient learners): cpu, cuda, cuda:N, or auto "
               "(cuda when torch sees a GPU).")


def _seeds(n_seeds: int | None, values: tuple[int, ...], old: int | None) -> tuple[int, ...]:
    """The seeds of `mlcil bench`: --seed values, or 0..N-1 from --n-seeds (or the deprecated --seeds)."""
    if old is not None:
        click.echo(f"warning: --seeds is deprecated (it counts seeds; `mlcil audit --seed` is a value): use "
                   f"--n-seeds {old} (seeds 0..{old - 1}) or --seed S (repeatable)", err=True)
        if n_seeds is not None and n_seeds != old:
            raise click.UsageError(f"--seeds {old} and --n-seeds {n_seeds} disagree; give --n-seeds only")
        n_seeds = old
    if values:
        if n_seeds is not None:
            raise click.UsageError("give either --seed (values) or --n-seeds (a count), not both")
        return tuple(dict.fromkeys(values))
    return tuple(range(3 if n_seeds is None else n_seeds))


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C, with the one line to print (as mlcil.encoders.pipeline.EmbedInterrupted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Group(click.Group):
    """Turns MlcilError into a one-line message and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MlcilError as exc:
            if os.environ.get("MLCIL_DEBUG"):
                raise
            _fail(str(exc))
        except (KeyboardInterrupt, click.Abort) as exc:  # Ctrl-C: one line on what is kept, exit 130
            click.echo(f"\n{getattr(exc, 'message', None) or 'interrupted'}", err=True)
            sys.exit(130)


class _LearnersOption(click.Option):
    """``--learners``: its help lists the registered learner names, read from the registry when help is
    shown (so that ``import mlcil.cli`` does not import the learners)."""

    def get_help_record(self, ctx):
        from mlcil.learners import REGISTRY

        needs = getattr(REGISTRY, "needs", lambda name: None)
        names = [name + (f" (needs {needs(name)})" if needs(name) else "") for name in sorted(REGISTRY)]
        original = self.help
        self.help = f"{original} Learners: {', '.join(names)}."
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = original


#: ``--ray-address``, shared by the commands that take ``--engine ray`` (bench, embed).
RAY_ADDRESS = click.option(
    "--ray-address", default=None, envvar="MLCIL_RAY_ADDRESS",
    help="With --engine ray: join this cluster ('auto', 'host:port' or 'ray://host:10001') instead of "
         "starting a local one [env: MLCIL_RAY_ADDRESS].")


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
@click.option("--learners", "-l", cls=_LearnersOption, default="joint,analytic", show_default=True,
              help="Comma-separated learner names, each optionally with options "
                   "(e.g. 'joint:M=4096,balance=true'); 'all' = every learner this install can run.")
@click.option("--n-seeds", "-s", "n_seeds", default=None, type=click.IntRange(1),
              help="Run seeds 0..N-1; each seeds the learners and, where used, the class order and the "
                   "train/test split.  [default: 3]")
@click.option("--seed", "seed_values", multiple=True, type=click.IntRange(0),
              help="Run this seed (a value, as `mlcil audit --seed`); repeat for several: --seed 0 --seed 7. "
                   "Instead of --n-seeds.")
@click.option("--seeds", "old_seeds", default=None, type=click.IntRange(1), hidden=True,
              help="Deprecated: the number of seeds; use --n-seeds.")
@click.option("--order", default="alphabetical", show_default=True,
              type=click.Choice(["alphabetical", "dataset", "random"]),
              help="Class order: alphabetical by label name (COCO/VOC convention), the dataset's column "
                   "order, or a seeded permutation.")
@click.option("--classes", "n_classes", type=click.IntRange(1), default=None,
              help="Use only the first N classes of the order (default: all).")
@click.option("--few-shot", type=click.IntRange(1), default=None,
              help="Keep at most K training examples per new class in each session.")
@click.option("--campaign", default="field", show_default=True, type=click.Choice(["field", "disjoint"]),
              help="Who annotates what: 'field' = the field's protocol (an example appears in every session whose "
                   "classes it carries); 'disjoint' = the campaign protocol (each example is annotated in exactly "
                   "one of those sessions, drawn per seed; its other labels are never given).")
@click.option("--test-size", default=0.3, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Test fraction of the seeded stratified split, for datasets without an official split.")
@click.option("--threshold", default=FIELD_THRESHOLD, show_default=True, type=click.FloatRange(0, 1),
              help="Probability threshold for CP/CR/CF1/OP/OR/OF1 (0.8 as in KRT, CSC and MULTI-LANE; "
                   "L3A reports 0.525).")
@click.option("--calibration", type=click.Choice(["platt", "isotonic"]), default=None,
              help="Calibrate every learner's proba per class: the Analytic family on leave-one-out scores, "
                   "others on --holdout rows of each session (which they then do not learn). Default: each "
                   "learner's own proba.")
@click.option("--holdout", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Fraction of each session held out for --calibration (learners without leave-one-out).")
@click.option("--top-k", type=click.IntRange(1), default=None,
              help="k of the top-k decision [default: label cardinality of the training sessions, rounded].")
@click.option("--metrics", "metrics", default="mlcil", show_default=True,
              type=click.Choice(["mlcil", "field", "multilane", "l3a"]),
              help="Metric convention the tables show: mlcil (order-free AP, classes without a test positive "
                   "excluded, p >= threshold, CF1 = harmonic mean of CP and CR); field (KRT and CSC: AP over "
                   "their sort order, such classes counted as AP 0, p > threshold, CF1 = mean of per-class F1, "
                   "NaN where undefined); multilane; l3a. report.json stores every convention.")
@click.option("--device", default=DEFAULT_DEVICE, show_default=True, help=DEVICE_HELP)
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder for report.json, report.md and map_per_session.png "
                   "[default: results/<dataset>-<protocol>].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="MLCIL_DATA",
              help="Folder holding <name>/ dataset folders [env: MLCIL_DATA].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--encoder", "-e", default=None,
              help="Embed a raw dataset first (as `mlcil embed`, through the embedding cache), e.g. minilm or "
                   "tfidf-svd:dim=256 [default for raw texts: minilm].")
@click.option("--prior", type=click.Choice(["none", "names"]), default="none", show_default=True,
              help="names: embed every label's name with the encoder that embedded the data and hand each "
                   "session its new classes' name embeddings; learners with a name prior (analytic, prototype: "
                   "option prior=β, default 1) add them as weighted pseudo-examples.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the work runs: this process, or a Ray cluster (pip install 'mlcil[ray]'; additive "
                   "learners only: analytic, joint, prototype, lda).")
@RAY_ADDRESS
def bench(dataset, protocol, learners, n_seeds, seed_values, old_seeds, order, n_classes, few_shot, test_size, threshold, calibration, holdout,
          top_k, metrics, device, out, data_dir, quiet, encoder, prior, engine, ray_address, campaign) -> None:
    """Run learners on DATASET under a class-incremental protocol and write a report.

    DATASET is a registered name (see `mlcil datasets`) or a path to a .npz, .arff or
    .jsonl(.gz) file. Reports avg mAP, last mAP, last CF1/OF1, forgetting, learn time and
    state size, mean ± std over seeds, and the last session's decisions three ways (global
    threshold, tuned per-class thresholds, top-k) with the calibration error (ECE).

    Example: mlcil bench scene --protocol B0-C2 --learners joint,analytic,prototype --n-seeds 3
    """
    from mlcil.bench import BenchConfig, markdown_table, run_benchmark, write_report
    from mlcil.data import load_dataset
    from mlcil.encoders import embed_registered, label_name_embeddings
    from mlcil.learners import resolve_learner_names
    from mlcil.protocols import parse_spec

    seeds = _seeds(n_seeds, seed_values, old_seeds)
    parse_spec(protocol)
    specs = resolve_learner_names(learners)
    stats: dict = {}
    with _make_engine(engine, ray_address, quiet, specs) as engine:
        text_encoder = None
        local = {} if not engine.local else {"stats": stats}
        if encoder is None:
            ds = load_dataset(dataset, data_dir=data_dir)
            if ds.is_raw:  # raw texts: embed with the default text encoder (through its view and the cache)
                from mlcil.data.raw import text_view

                ds.meta["modality"] = "text"
                ds, text_encoder = embed_registered(dataset, None, data_dir=data_dir, raw=text_view(ds),
                                                    engine=engine, progress=not quiet, notify=_notifier(quiet),
                                                    device=device, **local)
        else:
            ds, text_encoder = embed_registered(dataset, encoder, data_dir=data_dir, engine=engine,
                                                progress=not quiet, notify=_notifier(quiet), device=device, **local)
        if text_encoder is not None and stats and not quiet:
            encoded, seconds = stats.get("encoded_rows", 0), stats.get("encode_s", 0.0)
            rate = f" in {seconds:.0f} s ({encoded / seconds:.1f} texts/s)" if encoded and seconds > 0 else ""
            click.echo(f"{ds.name}: embedded {encoded:,} inputs{rate}, {stats.get('cached_rows', 0):,} from the "
                       f"cache", err=True)
        if prior == "names":
            try:
                ds.meta["label_embeddings"] = label_name_embeddings(ds, text_encoder)
            except MlcilError as exc:
                raise MlcilError(f"--prior names: {str(exc).removeprefix('label names: ')}") from None
        config = BenchConfig(protocol=protocol, learners=tuple(specs), seeds=seeds, order=order,
                             n_classes=n_classes, few_shot=few_shot, test_size=test_size, threshold=threshold,
                             device=device, calibration=calibration, holdout=holdout, top_k=top_k, metrics=metrics,
                             engine=engine, campaign=campaign)
        try:
            report = run_benchmark(ds, config, progress=not quiet)
        except KeyboardInterrupt:
            raise _Interrupted("interrupted during the benchmark: no report written; the embeddings are cached "
                               "(a rerun does not embed again)" if text_encoder is not None or encoder is not None
                               else "interrupted during the benchmark: no report written") from None
    out = out or Path("results") / (f"{ds.name}-{protocol}" + ("" if campaign == "field" else f"-{campaign}"))
    paths = write_report(report, out)
    click.echo(f"{ds.name} {protocol}: {report['protocol']['n_sessions']} sessions, seeds "
               f"{', '.join(map(str, seeds))}"
               + (f", metric convention {metrics}" if metrics != "mlcil" else ""))
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



def _lam(value):
    """--lam: 'auto' or a positive number."""
    if value is None or value == "auto":
        return value
    try:
        lam = float(value)
    except ValueError:
        raise click.BadParameter(f"expected 'auto' or a number > 0, got {value!r}") from None
    if not (lam > 0 and lam < float("inf")):
        raise click.BadParameter(f"expected 'auto' or a finite number > 0, got {value!r}")
    return lam


@main.command()
@click.option("--db", default="sqlite:///tagger.db", show_default=True, envvar="MLCIL_SERVE_DB",
              help="sqlite:///path.db (created if absent) or postgresql://user@host:port/dbname [env: MLCIL_SERVE_DB].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port to listen on.")
@click.option("--keys", "keys_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="MLCIL_SERVE_KEYS_FILE",
              help="File of '<sha256 of key> <read|write|admin> [name]' lines; $MLCIL_SERVE_KEYS adds more. "
                   "No key at all = auth disabled.")
@click.option("--generate-key", type=click.Choice(["read", "write", "admin"]), default=None,
              help="Print a new random key and its keys-file line, then exit.")
@click.option("--dim", type=click.IntRange(1), default=None,
              help="Embedding dimension (new database; default: set by the first teach).")
@click.option("--features", "M", type=click.IntRange(1), default=None,
              help="Random features M (new database; default 1024).")
@click.option("--lam", default=None, callback=lambda ctx, param, value: _lam(value),
              help="Ridge λ, or 'auto' to choose it by leave-one-out as the library does (new database; default auto).")
@click.option("--seed", type=int, default=None, help="Seed of the random features (new database; default 0).")
@click.option("--include-x", type=click.Choice(["auto", "true", "false"]), default=None,
              help="Also use the scaled input as features (new database; default auto: when d <= 1024).")
@click.option("--scaling", type=click.Choice(["l2", "none"]), default=None,
              help="Input scaling of the feature map (new database; default l2).")
@click.option("--max-batch", type=click.IntRange(1, 65536), default=1024, show_default=True,
              help="Most examples (or vectors) per request.")
@click.option("--max-body-mb", type=click.FloatRange(0, 1024, min_open=True), default=16.0, show_default=True,
              help="Largest request body in MiB.")
@click.option("--cors", multiple=True, help="Allowed CORS origin (repeatable; default: CORS off).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="Torch threads per operation (requests already run in parallel; more threads thrash "
                   "on a busy machine).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes sharing the port and the database (each builds its own model copy).")
@click.option("--refresh-interval", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Seconds between model rebuilds while writes arrive (bounds staleness and CPU).")
@click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the model as an Analytic learner file (Learner.load reads it), then exit.")
@click.option("--encoder", "-e", default=None,
              help="Encoder for raw inputs (examples with 'input', predictions with 'inputs'), e.g. minilm (the packaged "
                   "text model, offline). A text encoder also embeds each new label's name and description as its "
                   "name example, so the label is scored before its first example. Default: vectors only.")
@click.option("--max-input-chars", type=click.IntRange(1), default=2048, show_default=True,
              help="Most characters of one raw input given to the encoder (413 above).")
@click.option("--max-request-chars", type=click.IntRange(1), default=32768, show_default=True,
              help="Most characters of all raw inputs of one request (413 above).")
def serve(db, host, port, keys_file, generate_key, dim, M, lam, seed, include_x, scaling, max_batch, max_body_mb,
          cors, threads, workers, refresh_interval, export_path, encoder, max_input_chars, max_request_chars) -> None:
    """Run the tagging service: create labels, teach, predict, forget over HTTP (docs at /docs).

    Example: mlcil serve --db sqlite:///tagger.db --port 8000
    """
    import json
    import os

    from mlcil.serve.auth import KeyRing, generate_key as new_key, hash_key

    if generate_key:
        key = new_key()
        click.echo(f"key (shown once, give it to the client): {key}")
        click.echo(f"keys-file line: {hash_key(key)} {generate_key}")
        return
    import uvicorn

    from mlcil.serve.options import OptionError
    from mlcil.serve.service import Options, Policy, TaggingService
    from mlcil.serve.store import Store

    from mlcil.serve.app import limit_threads

    limit_threads(threads)
    if encoder is not None:  # a bad spec or a missing package fails here, before the server starts
        from mlcil.encoders import make_encoder

        probe = make_encoder(encoder, device="cpu")
        click.echo(f"encoder {probe.id} ({probe.modality}, d={probe.dim})", err=True)
    keys = KeyRing.load(keys_file)
    options = Options(d=dim, M=M, seed=seed, lam=lam, scaling=scaling,
                      include_x=None if include_x is None else {"auto": "auto", "true": True,
                                                                "false": False}[include_x])
    policy = {"refresh_interval": refresh_interval}
    store = Store(db)
    created = store.created
    try:
        service = TaggingService(store, options, policy=Policy(background=False, **policy))  # checks flags vs database
    except OptionError as exc:
        raise MlcilError(_serve_option_message(exc, db)) from None
    o, state = service.options, service.model
    if export_path is not None:
        from mlcil.serve.errors import ServiceError

        try:
            service.export_learner().save(export_path)
        except ServiceError as exc:
            service.close()
            raise click.ClickException(f"--export: {exc}") from exc
        click.echo(f"wrote {export_path} (version {service.model.version})", err=True)
        service.close()
        return
    service.close()
    click.echo(f"mlcil serve: {'created a new' if created else 'opened the'} {store.dialect} database "
               f"(model version {state.version}), d={o.d}, M={o.M}, λ={o.lam}, seed={o.seed}, scaling={o.scaling}; "
               f"{workers} worker(s); http://{host}:{port}/docs", err=True)
    if not keys:
        click.echo("WARNING: auth disabled: no API keys configured (--keys FILE or $MLCIL_SERVE_KEYS); anyone who "
                   f"can reach {host}:{port} can teach and forget. Create keys with --generate-key admin.", err=True)
    else:
        click.echo(f"auth enabled: {len(keys.keys)} API key(s)", err=True)
    os.environ["MLCIL_SERVE_CONFIG"] = json.dumps({
        "db": db, "threads": threads, "keys_file": str(keys_file) if keys_file else None,
        "max_body_bytes": int(max_body_mb * 1024 * 1024), "max_batch": max_batch, "cors": list(cors),
        "policy": policy, "encoder": encoder,
        "max_input_chars": max_input_chars, "max_request_chars": max_request_chars})
    uvicorn.run("mlcil.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False, timeout_graceful_shutdown=10)


#: the `serve` flag of each service option (a mlcil.serve.options.Options field)
SERVE_FLAGS = {"d": "--dim", "M": "--features", "seed": "--seed", "lam": "--lam", "include_x": "--include-x",
               "scaling": "--scaling"}


def _serve_option_message(exc, db: str) -> str:
    """A refused service option (mlcil.serve.options.OptionError) in the words of the `serve` flags."""
    flag = SERVE_FLAGS.get(exc.option, exc.option)
    if exc.contradicts:
        return (f"{flag} {exc.value} contradicts the database {db}, created with {exc.option} = {exc.stored}; "
                f"start without {flag} (or with {flag} {exc.stored}), or use a new database")
    return f"{flag}: expected {exc.expected}, got {exc.value!r}"


def _notifier(quiet: bool):
    """Where a library's one-line notices go: stderr, or nowhere with --quiet."""
    return None if quiet else (lambda message: click.echo(message, err=True))


def _make_engine(engine: str, address: str | None, quiet: bool, learners=()):
    """The engine of ``--engine``: the local one, or a RayEngine (its cluster starts on first use).
    Learners that cannot be distributed are refused before anything starts."""
    from mlcil.engines import LocalEngine, RayEngine

    if engine == "local":
        if address:
            raise MlcilError("--ray-address needs --engine ray")
        return LocalEngine()
    from mlcil.learners import make_learner

    for spec in learners:
        learner = make_learner(spec)
        if not learner.distributable:
            raise MlcilError(f"--engine ray: {learner.name} cannot be distributed: its training is sequential "
                             "gradient descent; run it with --engine local")
    return RayEngine(address=address, progress=not quiet)


@main.command()
@click.argument("dataset")
@click.option("--encoder", "-e", default=None,
              help="Encoder spec [default: minilm for texts, effnet-lite0 for images, both packaged and offline]: "
                   "minilm (on CPU through ONNX Runtime when installed; minilm,quantize=int8 for int8, faster, "
                   "approximate; minilm,backend=torch for sentence-transformers), effnet-lite0, tfidf-svd:dim=256, timm:vit_base_patch16_224.augreg_in21k, "
                   "open_clip:ViT-B-32/laion2b_s34b_b79k[,tower=text], sentence-transformers:NAME_OR_FOLDER.")
@click.option("--root", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder of the raw files: VOC2007 (or VOCdevkit), COCO 2014 (annotations/, train2014/, val2014/), "
                   "the images of a label file, or a text dataset's folder.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output .npz [default: $MLCIL_CACHE/data/<name>@<encoder>/<name>@<encoder>.npz, "
                   "so that `mlcil bench <name>@<encoder>` finds it, e.g. goemotions@minilm].")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1), help="Inputs per forward pass.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0),
              help="DataLoader worker processes decoding images (text encoders use 0).")
@click.option("--device", default=DEFAULT_DEVICE, show_default=True, help=DEVICE_HELP)
@click.option("--precision", default="auto", show_default=True,
              type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="Autocast dtype of the forward pass: auto = bf16 (else fp16) on CUDA, float32 on CPU; bfloat16 "
                   "also on CPU (fast where the CPU has AMX/AVX512-BF16). Part of the encoder id.")
@click.option("--cache", "cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Embedding cache folder [default: $MLCIL_CACHE/embeddings].")
@click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache.")
@click.option("--skip-bad", is_flag=True,
              help="Drop unreadable/truncated images (count logged, ids in the .json) instead of stopping.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="MLCIL_DATA",
              help="Folder holding <name>/ dataset folders [env: MLCIL_DATA].")
@click.option("--tokens", type=click.IntRange(1, 512), default=None, metavar="N",
              help="Also cache per-token (text) or per-patch (image) features of the same encoder: the first N "
                   "tokens, float16 with a mask, beside the .npz (<name>.tokens.npy, <name>.tokens-mask.npy); "
                   "krt and csc read them. Memory and disk are checked first ($MLCIL_TOKEN_BUDGET, default 4 GiB).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the work runs: this process, or a Ray cluster (pip install 'mlcil[ray]'; encoder "
                   "actors, no embedding cache).")
@RAY_ADDRESS
def embed(dataset, encoder, root, out, batch_size, workers, device, precision, cache, no_cache, skip_bad, data_dir,
          tokens, quiet, engine, ray_address) -> None:
    """Encode raw DATASET with a frozen encoder into an embedded .npz (X, Y, label_names, split).

    DATASET: voc2007 or coco2014 (with --root), reuters21578 (ModApte R90), goemotions (dev merged into
    train), se_cooking, se_crypto, hoc (a seeded split), an image label file (.csv/.jsonl with image,
    labels, split), or a JSON-lines text file. Embeddings are cached by (encoder id, input content):
    re-running never re-encodes, and an interrupted run resumes. Encoders that are fitted (tfidf-svd)
    see the training split only. The result is named <dataset>@<encoder>, its full encoder id inside.

    Example: mlcil embed goemotions -e minilm && mlcil bench goemotions@minilm -p B0-C7
    """
    import json
    import time

    from mlcil.data import write_npz
    from mlcil.data.registry import data_cache_dir
    from mlcil.encoders import embed_registered

    if tokens and engine != "local":
        raise click.UsageError("--tokens runs in this process: use it with --engine local")
    started = time.perf_counter()
    stats: dict = {}
    with _make_engine(engine, ray_address, quiet) as engine:
        ds, model = embed_registered(dataset, encoder, data_dir=data_dir, root=root, cache_dir=cache,
                                 use_cache=not no_cache, device=device, precision=precision, engine=engine,
                                 progress=not quiet, notify=_notifier(quiet), batch_size=batch_size,
                                 workers=workers, on_error="skip" if skip_bad else "raise", stats=stats)
    out = out or data_cache_dir() / ds.name / f"{ds.name}.npz"
    if tokens:
        from mlcil.encoders.tokens import attach_tokens

        ds = attach_tokens(ds, dataset, model, tokens, data_dir=data_dir, root=root, batch_size=batch_size,
                           out_dir=out.parent)
    write_npz(ds, out)
    info = {"dataset": dataset, "name": ds.name, "encoder_spec": encoder, "encoder_id": ds.meta["encoder"],
            "n": ds.n, "d": ds.d, "L": ds.L, "skipped": ds.meta["skipped"], "ids": ds.meta["ids"],
            "tokens": ds.meta.get("tokens"), "seconds": time.perf_counter() - started,
            **{k: v for k, v in stats.items()}}
    out.with_suffix(".json").write_text(json.dumps(info, default=str), encoding="utf-8")
    click.echo(f"{ds.name}: n={ds.n} d={ds.d} L={ds.L}; encoded {stats.get('encoded_rows', 0)}, "
               f"from cache {stats.get('cached_rows', 0)}, skipped {len(ds.meta['skipped'])}")
    click.echo(f"wrote {out}")


@main.command()
@click.argument("dataset")
@click.option("--protocol", "-p", default="B0-C10", show_default=True, help="Session split, as for `mlcil bench`.")
@click.option("--learner", "-l", default="analytic", show_default=True,
              help="Learner spec. With --method loo an Analytic-family learner (exact leave-one-out); with "
                   "--method kfold any learner, or 'logistic' (one-vs-rest logistic regression).")
@click.option("--method", type=click.Choice(["loo", "kfold"]), default="loo", show_default=True,
              help="Out-of-sample probabilities: closed-form leave-one-out (no retraining) or k-fold.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2), help="k of --method kfold.")
@click.option("--noise", default=None, metavar="DROP,FLIP",
              help="Plant synthetic errors first (e.g. 0.05,0.01: drop 5% of positives, flip 1% of "
                   "negatives; seeded) and report precision/recall of the audit against them.")
@click.option("--seed", default=0, show_default=True, help="Seeds the learner, the split and the noise.")
@click.option("--order", default="alphabetical", show_default=True,
              type=click.Choice(["alphabetical", "dataset", "random"]), help="Class order.")
@click.option("--classes", "n_classes", type=click.IntRange(1), default=None, help="Use only the first N classes.")
@click.option("--top", type=click.IntRange(1), default=None, help="Write only the N most suspicious rows per session.")
@click.option("--device", default=DEFAULT_DEVICE, show_default=True, help=DEVICE_HELP)
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: results/audit-<dataset>-<protocol>].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, envvar="MLCIL_DATA",
              help="Folder holding <name>/ dataset folders [env: MLCIL_DATA].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def audit(dataset, protocol, learner, method, folds, noise, seed, order, n_classes, top, device, out, data_dir,
          quiet) -> None:
    """Rank each session's examples by how likely their given labels contain an error.

    Out-of-sample probabilities (exact leave-one-out of the Analytic learner, or k-fold
    cross-validation) go to cleanlab's multi-label label-quality scores and issue finder.
    Writes session_<t>.csv (rows from most to least suspicious: dataset row, quality, flagged,
    given labels, suspected missing and wrong tags) and audit.json (per-session summary).

    Example: mlcil audit yeast --protocol B0-C3 --noise 0.05,0.01
    """
    import csv
    import json

    import numpy as np

    from mlcil.bench.report import strict_json
    from mlcil.data import load_dataset
    from mlcil.bench.audit import audit_stream
    from mlcil.protocols import Protocol

    planted_noise = None
    if noise is not None:
        try:
            drop, flip = (float(v) for v in noise.split(","))
        except ValueError:
            _fail(f"--noise: expected DROP,FLIP as two fractions, e.g. 0.05,0.01; got {noise!r}")
        if not (0 <= drop <= 1 and 0 <= flip <= 1):
            _fail(f"--noise: fractions must be in [0, 1], got {noise!r}")
        planted_noise = (drop, flip)
    ds = load_dataset(dataset, data_dir=data_dir)
    stream = Protocol(protocol, order=order, seed=seed, n_classes=n_classes).build(ds)
    records = audit_stream(stream, learner=learner, method=method, noise=planted_noise, seed=seed, folds=folds,
                           device=device, progress=not quiet)
    out = out or Path("results") / f"audit-{ds.name}-{protocol}"
    out.mkdir(parents=True, exist_ok=True)
    names = np.asarray(ds.label_names)
    summary = []
    for rec in records:
        res, Y, cls = rec["result"], rec["Y"], rec["classes"]
        rows = res.ranking if top is None else res.ranking[:top]
        missing, wrong = res.missing(Y), res.wrong(Y)
        with open(out / f"session_{rec['t']}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            head = ["rank", "row", "quality", "flagged", "given", "suspect_missing", "suspect_wrong"]
            writer.writerow(head + (["planted"] if rec["planted"] is not None else []))
            for rank, i in enumerate(rows):
                cells = [rank + 1, int(rec["index"][i]), f"{res.quality[i]:.6f}", int(res.flagged[i]),
                         ";".join(names[cls[Y[i].astype(bool)]]), ";".join(names[cls[missing[i]]]),
                         ";".join(names[cls[wrong[i]]])]
                writer.writerow(cells + ([int(rec["planted"][i])] if rec["planted"] is not None else []))
        summary.append({"t": rec["t"], "classes": names[cls].tolist(), "n": int(len(Y)),
                        "n_flagged": int(res.flagged.sum()), "out_of_sample_s": rec["oos_s"],
                        "learn_s": rec["learn_s"], "cleanlab_s": res.seconds, "quality": rec["quality"]})
    report = {"dataset": ds.name, "protocol": protocol, "learner": learner, "method": method,
              "folds": folds if method == "kfold" else None, "noise": planted_noise, "seed": seed,
              "sessions": summary}
    (out / "audit.json").write_text(json.dumps(strict_json(report), indent=2))
    click.echo(f"{ds.name} {protocol}: audited {len(records)} sessions with {learner} ({method})")
    click.echo("| t | rows | flagged | out-of-sample s | cleanlab s |" + (" P@k | flag recall |" if planted_noise else ""))
    click.echo("|---|---|---|---|---|" + ("---|---|" if planted_noise else ""))
    for row in summary:
        line = (f"| {row['t'] + 1} | {row['n']} | {row['n_flagged']} | {row['out_of_sample_s']:.3f} | "
                f"{row['cleanlab_s']:.3f} |")
        if row["quality"]:
            line += f" {100 * row['quality']['precision_at_k']:.1f} | {100 * row['quality']['flag_recall']:.1f} |"
        click.echo(line)
    click.echo(f"wrote {out}/session_<t>.csv and {out / 'audit.json'}")


# Last, after every command is registered: `python -m mlcil.cli` runs this file as __main__, and a
# guard placed above a command's definition would start the CLI without that command.
if __name__ == "__main__":
    main()
