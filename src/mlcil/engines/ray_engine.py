"""The Ray engine: statistics accumulated over a cluster, embeddings computed by Ray Data actors.

Accumulation (:meth:`RayEngine.accumulate`): the rows are split into k blocks (block id 0..k-1);
one Ray task per block evaluates a pure function of the block (e.g. the ridge statistics
G_b = Σ φφᵀ, B_b = Σ φyᵀ of its rows); a binary tree of Ray tasks adds neighbouring results,
(0+1), (2+3), ..., then their sums, so the order of additions is fixed by block id and the
depth is ⌈log₂ k⌉; the driver receives the root and solves. Each partial result carries the ids of
the blocks it sums, and an addition refuses two results that share a block, so a block is never
counted twice; the root must hold every id exactly once. A worker that dies mid-task is replaced
and its task re-run by Ray (``max_retries``): the task is a pure function of its inputs, so the
re-run returns the same value and the sum is unchanged.

Embedding (:meth:`RayEngine.embed`): Ray Data ``map_batches`` over the inputs with a pool of
actors, each holding one encoder (built once per actor from its spec, on a GPU when the cluster
has them); rows come back with their index and are put in place on the driver.

Ray's own output is quiet by default: its log level is WARNING, workers' output is not forwarded,
Ray Data's progress bars are off; progress is shown by mlcil's tqdm bars. The ``ray`` package is
an optional dependency: ``pip install 'mlcil[ray]'``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcil.engines.base import Engine, add, block_of, split_rows
from mlcil.errors import MlcilError
from mlcil.ridge.features import FeatureMap
from mlcil.ridge.stats import Stats

#: ``blocks=None``: one block per CPU of the cluster, but no block smaller than this many rows.
MIN_BLOCK_ROWS = 1024
#: ``mlcil embed --engine ray``: rows per Ray Data block handed to the actors (in batches).
EMBED_BLOCK_BATCHES = 8


def import_ray(private: bool = False):
    """The ``ray`` module, or a clear error naming the extra to install.

    ``private``: about to start a private single-machine cluster; when ray is not imported yet, its
    processes then address each other on 127.0.0.1 instead of this machine's network address (Ray
    reads this once, at import: a process that later joins a remote cluster must not pass here first).
    """
    if private and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's switch for "local only"
    try:
        import ray
    except ImportError:
        raise MlcilError("engine 'ray' needs the ray package: pip install 'mlcil[ray]'") from None
    return ray


# ---- what travels between processes -------------------------------------------------------------
@dataclass(frozen=True)
class ArrayStats:
    """:class:`~mlcil.ridge.Stats` as numpy arrays (zero-copy through Ray's object store)."""

    G: np.ndarray
    B: np.ndarray
    n: int

    def __add__(self, other: "ArrayStats") -> "ArrayStats":
        if self.G.shape != other.G.shape or self.B.shape != other.B.shape:
            raise MlcilError(f"statistics: cannot add shapes G {other.G.shape}, B {other.B.shape} "
                             f"and G {self.G.shape}, B {self.B.shape}")
        return ArrayStats(self.G + other.G, self.B + other.B, self.n + other.n)


def pack(value: Any) -> Any:
    """Results as plain numpy (Stats -> :class:`ArrayStats`; a torch tensor, from a function computing on
    a GPU, -> ndarray), recursively through tuples."""
    if isinstance(value, Stats):
        return ArrayStats(np.asarray(value.G), np.asarray(value.B), int(value.n))
    torch = sys.modules.get("torch")  # only a function that used torch can return a tensor
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, tuple):
        return tuple(pack(v) for v in value)
    return value


def unpack(value: Any) -> Any:
    """Inverse of :func:`pack` (arrays copied out of the read-only object store buffers)."""
    if isinstance(value, ArrayStats):
        return Stats(np.array(value.G), np.array(value.B), int(value.n))
    if isinstance(value, np.ndarray):
        return np.array(value)
    if isinstance(value, tuple):
        return tuple(unpack(v) for v in value)
    return value


def run_block(fn: Callable[..., Any], block_id: int, device: str, args: tuple, X, *rows) -> tuple[tuple[int, ...], Any]:
    """One block's task: ((block_id,), fn(X, *rows, *args)) with its results packed as numpy.

    Pure: the same inputs give the same output, so a retried task changes nothing.
    """
    if device != "cpu":
        args = tuple(a.to(device) if isinstance(a, FeatureMap) else a for a in args)
    return (int(block_id),), pack(fn(X, *rows, *args))


def add_parts(a: tuple[tuple[int, ...], Any], b: tuple[tuple[int, ...], Any]) -> tuple[tuple[int, ...], Any]:
    """One node of the reduction tree: (ids of a + ids of b, value a + value b); a block counted
    on both sides is an error."""
    twice = set(a[0]) & set(b[0])
    if twice:
        raise MlcilError(f"reduction: blocks {sorted(twice)} would be counted twice")
    return a[0] + b[0], add(a[1], b[1])


# ---- embedding actors ---------------------------------------------------------------------------
def bad_rows(errors: dict[int, str], on_error: str) -> np.ndarray:
    """Sorted indices of the inputs that could not be loaded; with ``on_error='raise'`` an error naming
    the first of them instead."""
    bad = np.asarray(sorted(errors), dtype=np.int64)
    if len(bad) and on_error == "raise":
        first = int(bad[0])
        raise MlcilError(f"input {first}: {errors[first]} ({len(bad)} bad input(s); use --skip-bad to drop them)")
    return bad


class EncodeActor:
    """Ray Data actor holding one encoder: built once (``make_encoder(spec)``), or a fitted encoder
    shipped from the driver (TF-IDF) through the object store (``shipped`` = [its ObjectRef], so that a
    restarted actor fetches it again)."""

    def __init__(self, spec: str, shipped: list | None = None, device: str = "cpu", precision: str = "auto",
                 encoder: Any = None) -> None:
        if encoder is not None:  # in this process (tests)
            pass
        elif shipped:
            import ray

            encoder = ray.get(shipped[0])
        else:
            from mlcil.encoders import make_encoder

            encoder = make_encoder(spec, device=device, precision=precision)
        self.encoder = encoder
        self.encoder_id = encoder.id

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from mlcil.encoders.base import InputError

        inputs = [x.item() if isinstance(x, np.generic) else x for x in batch["input"]]
        n = len(inputs)
        errors = [""] * n
        try:
            Z = self.encoder.encode(inputs)
        except InputError:  # find the bad inputs one by one; the others are encoded together
            good = []
            for i, x in enumerate(inputs):
                try:
                    self.encoder.load(x)
                    good.append(i)
                except InputError as exc:
                    errors[i] = str(exc) or "could not be loaded"
            Z = np.zeros((n, self.encoder.dim), dtype=np.float32)
            if good:
                Z[good] = self.encoder.encode([inputs[i] for i in good])
        return {"row": np.asarray(batch["row"], dtype=np.int64), "embedding": np.asarray(Z, dtype=np.float32),
                "error": np.asarray(errors, dtype=object), "encoder_id": np.asarray([self.encoder_id] * n, dtype=object)}


# ---- the engine ---------------------------------------------------------------------------------
class RayEngine(Engine):
    """Run the additive passes of learning, and embedding, on a Ray cluster.

    Args:
        address: None starts a private local cluster on this machine (its processes talk over
            127.0.0.1 when ray was not imported before), or reuses the one this process already started; 'auto' or 'host:port' joins a running
            cluster (``ray start --head``); 'ray://host:10001' connects through Ray Client.
        blocks: rows are split into this many blocks (or these block sizes); None = one block per
            CPU of the cluster, no block under :data:`MIN_BLOCK_ROWS` rows.
        num_cpus: CPUs of a local cluster (None = all of this machine's).
        gpus_per_task: GPUs each accumulation task asks for (0 = CPU tasks); with > 0 the feature
            map runs on the task's GPU.
        actors: encoder actors for :meth:`embed` (None = one per GPU of the cluster, else one per CPU).
        object_store_memory: bytes of a local cluster's object store (None = Ray's default).
        max_retries: times Ray re-runs a task whose worker died.
        progress: mlcil's progress bars (tqdm).
        quiet: Ray's log level WARNING and no worker output on this terminal; False shows both.

    Nothing starts until the first use. ``close()`` (or ``with RayEngine() as engine:``) shuts down
    a cluster this engine started; a joined cluster is left running.
    """

    name = "ray"
    local = False
    _started_by: "RayEngine | None" = None  # the engine that called ray.init in this process

    def __init__(self, address: str | None = None, blocks: int | Sequence[int] | None = None,
                 num_cpus: int | None = None, gpus_per_task: float = 0.0, actors: int | None = None,
                 object_store_memory: int | None = None, max_retries: int = 3, progress: bool = True,
                 quiet: bool = True) -> None:
        self.address = address
        self.blocks = blocks
        self.num_cpus = num_cpus
        self.gpus_per_task = gpus_per_task
        self.actors = actors
        self.object_store_memory = object_store_memory
        self.max_retries = max_retries
        self.progress = progress
        self.quiet = quiet
        self._remote: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address!r}, blocks={self.blocks!r})"

    # ---- cluster ---------------------------------------------------------------------------------
    def start(self):
        """Connect to (or start) the cluster; returns the ``ray`` module. Called by every operation."""
        ray = import_ray(private=self.address is None)
        if ray.is_initialized():
            return ray
        if self.quiet:
            for name in ("ray", "ray.data", "ray.train", "ray.tune"):
                logging.getLogger(name).setLevel(logging.WARNING)
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=not self.quiet,
                                      logging_level=logging.WARNING if self.quiet else logging.INFO)
        if self.address is None:
            # 'local' never joins a cluster someone else started on this machine
            kwargs.update(address="local", num_cpus=self.num_cpus, object_store_memory=self.object_store_memory)
        else:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise MlcilError(f"engine ray: could not start or join a cluster at {self.address or 'local'} ({exc})") \
                from None
        RayEngine._started_by = self
        self._configure_data(ray)
        return ray

    def _configure_data(self, ray) -> None:
        try:
            import ray.data
        except ImportError:  # ray without its data extra: accumulation works, embedding says what is missing
            return
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # mlcil's own bar counts the rows
        if self.quiet:  # Ray Data's console handler says only errors (its log file keeps everything)
            for handler in logging.getLogger("ray.data").handlers:
                if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__:
                    handler.setLevel(logging.ERROR)

    def close(self) -> None:
        """Shut the cluster down if this engine started it."""
        if RayEngine._started_by is self:
            import ray

            ray.shutdown()
            RayEngine._started_by = None
        self._remote.clear()

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (CPU, GPU, memory, ...)."""
        return dict(self.start().cluster_resources())

    def describe(self) -> dict:
        out = {"name": self.name, "address": self.address or "local", "blocks": self.blocks}
        ray = import_ray()
        if ray.is_initialized():
            res = ray.cluster_resources()
            out.update(nodes=len([n for n in ray.nodes() if n.get("Alive")]), cpus=res.get("CPU", 0),
                       gpus=res.get("GPU", 0), ray=ray.__version__)
        return out

    def _tasks(self, ray):
        if not self._remote:
            self._remote["block"] = ray.remote(run_block)
            self._remote["add"] = ray.remote(add_parts)
        return self._remote["block"], self._remote["add"]

    def n_blocks(self, n: int) -> int | Sequence[int]:
        """How the n rows are split (see ``blocks``)."""
        if self.blocks is not None:
            return self.blocks
        cpus = int(self.resources().get("CPU", 1))
        return max(1, min(cpus, math.ceil(n / MIN_BLOCK_ROWS)))

    # ---- accumulation --------------------------------------------------------------------------
    def accumulate(self, fn: Callable[..., Any], X, *rows, args: tuple = (), desc: str = "accumulate") -> Any:
        """Σ over blocks b of ``fn(X[b], *(r[b] for r in rows), *args)``: one Ray task per block, a tree
        of Ray tasks adding neighbours in block order; returns the root (arrays and Stats as NumPy)."""
        from tqdm.auto import tqdm

        ray = self.start()
        n = X.shape[0]
        for r in rows:
            if r is not None and r.shape[0] != n:
                raise MlcilError(f"engine: every per-row array needs {n} rows (as X), got shape {r.shape}")
        bounds = split_rows(n, self.n_blocks(n))
        block_task, add_task = self._tasks(ray)
        device = "cuda" if self.gpus_per_task else "cpu"
        block_task = block_task.options(num_cpus=1, num_gpus=self.gpus_per_task, max_retries=self.max_retries,
                                        retry_exceptions=False)
        args_ref = ray.put(tuple(a.to("cpu") if isinstance(a, FeatureMap) else a for a in args))
        refs = [block_task.remote(fn, b, device, args_ref, block_of(X, lo, hi), *(block_of(r, lo, hi) for r in rows))
                for b, (lo, hi) in enumerate(bounds)]
        level = list(refs)
        add_task = add_task.options(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)
        while len(level) > 1:
            level = [add_task.remote(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                     for i in range(0, len(level), 2)]
        try:
            with tqdm(total=len(refs), desc=f"{desc} (ray, {len(refs)} blocks)", unit="block",
                      disable=not self.progress, leave=False) as bar:
                pending = refs
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    bar.update(len(done))
                ids, value = ray.get(level[0])
        except ray.exceptions.RayTaskError as exc:  # the block function raised: its own error, if it is ours
            cause = getattr(exc, "cause", None)
            if isinstance(cause, MlcilError):
                raise MlcilError(str(cause)) from None
            raise
        except ray.exceptions.RayError as exc:  # workers or objects lost beyond the retries
            raise MlcilError(f"engine ray: {desc} failed after {self.max_retries} retries: {exc}") from None
        if tuple(ids) != tuple(range(len(refs))):
            raise MlcilError(f"reduction: expected blocks 0..{len(refs) - 1} once each, got {sorted(ids)}")
        return unpack(value)

    def statistics(self, fmap, X, Y, weights: np.ndarray | None = None, precision: str = "float64",
                   gram: bool = True) -> Stats:
        """Ridge statistics over the cluster (NumPy float64, whatever device the blocks computed on)."""
        return super().statistics(fmap, X, Y, weights, precision, gram)

    # ---- embedding -----------------------------------------------------------------------------
    def _embed_device(self, device: str, res: dict) -> tuple[str, float]:
        gpus = float(res.get("GPU", 0))
        if device in (None, "auto"):
            return ("cuda", 1.0) if gpus >= 1 else ("cpu", 0.0)
        if str(device).startswith("cuda"):
            if gpus < 1:
                raise MlcilError(f"device: {device!r} requested but the Ray cluster has no GPU; use cpu or auto")
            return "cuda", 1.0
        if device != "cpu":
            raise MlcilError(f"device: expected cpu, cuda or auto, got {device!r}")
        return "cpu", 0.0

    def embed(self, inputs: Sequence[Any], spec: str, encoder: Any = None, batch_size: int = 64,
              device: str = "auto", precision: str = "auto", on_error: str = "raise",
              stats: dict | None = None) -> tuple[np.ndarray, np.ndarray, str]:
        """Encode ``inputs`` (texts or image paths, readable from every node) on the cluster.

        Ray Data ``map_batches`` with a pool of :class:`EncodeActor` actors (``actors`` of them; one
        GPU each when the cluster has GPUs and ``device`` is auto or cuda). ``encoder``: an already
        fitted encoder to ship to the actors (TF-IDF); None builds one per actor from ``spec``.
        Returns (Z float32 n×d with zero rows for bad inputs, indices of bad inputs, encoder id).
        ``on_error='raise'`` stops at a bad input with an error naming it; 'skip' reports them.
        """
        import pandas as pd
        from tqdm.auto import tqdm

        if on_error not in ("raise", "skip"):
            raise MlcilError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
        if batch_size < 1:
            raise MlcilError(f"batch_size: expected >= 1, got {batch_size}")
        ray = self.start()
        try:
            import ray.data
        except ImportError:
            raise MlcilError("mlcil embed --engine ray needs Ray Data: pip install 'mlcil[ray]'") from None
        self._configure_data(ray)
        stats = stats if stats is not None else {}
        res = self.resources()
        dev, gpus = self._embed_device(device, res)
        actors = int(self.actors or (res.get("GPU", 1) if gpus else max(1, res.get("CPU", 1))))
        n = len(inputs)
        started = time.perf_counter()
        if n == 0:
            raise MlcilError("embed: no inputs")
        # blocks of whole batches, at least one per actor
        step = batch_size * max(1, min(EMBED_BLOCK_BATCHES, math.ceil(n / (batch_size * actors))))
        frames = [pd.DataFrame({"row": np.arange(a, min(a + step, n), dtype=np.int64),
                                "input": list(inputs[a:min(a + step, n)])}) for a in range(0, n, step)]
        ds = ray.data.from_pandas(frames).map_batches(
            EncodeActor, fn_constructor_kwargs={"spec": spec, "shipped": None if encoder is None else [ray.put(encoder)],
                                                "device": dev, "precision": precision},
            batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
            num_gpus=gpus)
        Z: np.ndarray | None = None
        seen = np.zeros(n, dtype=bool)
        errors: dict[int, str] = {}
        ids: set[str] = set()
        with tqdm(total=n, desc=f"embed (ray, {actors} actors)", unit="ex", disable=not self.progress,
                  leave=False) as bar:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                rows = np.asarray(batch["row"], dtype=np.int64)
                emb = np.asarray(batch["embedding"], dtype=np.float32)
                if Z is None:
                    Z = np.zeros((n, emb.shape[1]), dtype=np.float32)
                Z[rows] = emb
                seen[rows] = True
                for r, err in zip(rows, batch["error"]):
                    if err:
                        errors[int(r)] = str(err)
                ids.update(str(i) for i in batch["encoder_id"])
                bar.update(len(rows))
        if not seen.all():
            raise MlcilError(f"embed: {int((~seen).sum())} input(s) came back from no actor")
        if len(ids) != 1:
            raise MlcilError(f"embed: the actors loaded different encoders: {sorted(ids)}")
        bad = bad_rows(errors, on_error)
        stats.update(encoded_rows=n, cached_rows=0, bad_rows=int(len(bad)), encode_s=time.perf_counter() - started,
                     engine="ray", actors=actors, device=dev)
        return Z, bad, ids.pop()

    def embed_dataset(self, dataset: Any, spec: str, batch_size: int = 64, device: str = "auto",
                      precision: str = "auto", on_error: str = "raise", fit_split: str = "train",
                      stats: dict | None = None, **ignored: Any) -> Any:
        """Raw :class:`~mlcil.data.Dataset` -> embedded Dataset, encoded on the cluster.

        An encoder that needs fitting (TF-IDF + SVD) is fitted on the driver on the ``fit_split``
        rows only and shipped fitted to the actors. Rows that could not be loaded are dropped with
        ``on_error='skip'`` (ids in ``meta['skipped']``). The embedding cache is not used (the
        cluster's nodes need not share it); local-only options (``cache``, ``workers``) are ignored.
        """
        from mlcil.data.dataset import Dataset
        from mlcil.encoders import make_encoder

        if not dataset.is_raw:
            raise MlcilError(f"{dataset.name}: already holds feature vectors (d={dataset.d}); nothing to embed")
        stats = stats if stats is not None else {}
        encoder = make_encoder(spec, device="cpu", precision=precision)
        shipped = None
        if encoder.needs_fit:
            if dataset.split is None or not (dataset.split == fit_split).any():
                raise MlcilError(f"{dataset.name}: encoder {encoder.kind} must be fitted on a '{fit_split}' split, "
                                 f"and the dataset has none")
            t0 = time.perf_counter()
            encoder.fit([dataset.X[i] for i in np.flatnonzero(dataset.split == fit_split)])
            stats["fit_s"] = time.perf_counter() - t0
            shipped = encoder
        Z, bad, encoder_id = self.embed(dataset.X, spec, encoder=shipped, batch_size=batch_size, device=device,
                                        precision=precision, on_error=on_error, stats=stats)
        ids = dataset.meta.get("ids") or list(range(dataset.n))
        keep = np.setdiff1d(np.arange(dataset.n), bad)
        meta = {k: v for k, v in dataset.meta.items() if k not in ("ids", "extra")}
        meta.update(encoder=encoder_id, ids=[ids[i] for i in keep], skipped=[ids[i] for i in bad], engine="ray")
        if len(bad):
            logging.getLogger(__name__).warning("%s: skipped %d input(s) that could not be loaded", dataset.name,
                                                len(bad))
        return Dataset(Z[keep], dataset.Y[keep], list(dataset.label_names),
                       None if dataset.split is None else dataset.split[keep], dataset.name, meta)
