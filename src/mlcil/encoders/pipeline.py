"""Encode raw inputs in batches (torch DataLoader, worker processes for image decoding), through the
embedding cache, with a progress bar; and turn a raw :class:`~mlcil.data.Dataset` into an embedded one.

Bad inputs (unreadable or truncated images, missing files, non-string texts): by default
(``on_error='raise'``) the run stops with an :class:`MlcilError` naming the first bad input and the
count; with ``on_error='skip'`` those rows are dropped from the embedded dataset, their count is
logged (warning) and their ids kept in ``meta['skipped']``. Never a silently wrong embedding.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcil.encoders.base import Encoder, InputError
from mlcil.encoders.cache import EmbeddingCache, content_hash
from mlcil.errors import MlcilError

log = logging.getLogger(__name__)


def item_digest(item: Any, modality: str) -> bytes:
    """sha256 of one input's content: a text's UTF-8 bytes, an image file's bytes (missing file: its path)."""
    h = hashlib.sha256()
    if modality == "image":
        try:
            with open(item, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            h.update(b"\0missing\0" + os.fsencode(os.fspath(item)))
    else:
        h.update(str(item).encode("utf-8", "surrogatepass"))
    return h.digest()


def default_cache_dir() -> Path:
    """``<mlcil cache>/embeddings`` (``$MLCIL_CACHE`` or the platform cache folder)."""
    from mlcil.data.registry import cache_dir

    return cache_dir() / "embeddings"


class _Rows:
    """torch map-style dataset over chosen rows: (row, model input or None, error message or None)."""

    def __init__(self, inputs: Sequence[Any], rows: np.ndarray, encoder: Encoder) -> None:
        self.inputs, self.rows, self.encoder = inputs, rows, encoder

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> tuple[int, Any, str | None]:
        row = int(self.rows[k])
        try:
            return row, self.encoder.load(self.inputs[row]), None
        except InputError as exc:
            return row, None, str(exc)


class _Collate:
    """Split a batch into loaded items (collated by the encoder) and failures."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def __call__(self, samples: list[tuple[int, Any, str | None]]) -> tuple[list[int], Any, list[tuple[int, str]]]:
        good = [(r, x) for r, x, err in samples if err is None]
        bad = [(r, err) for r, _, err in samples if err is not None]
        batch = self.encoder.collate([x for _, x in good]) if good else None
        return [r for r, _ in good], batch, bad


def length_order(inputs: Sequence[Any], rows: np.ndarray, chunk_size: int) -> np.ndarray:
    """``rows`` reordered within each chunk of ``chunk_size`` input rows, longest text first (stable).

    Batches then hold texts of similar length and pad less; a chunk still finishes as a whole, so the
    cache's chunks and resumption are unchanged. Non-text inputs keep their order.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return rows
    length = np.fromiter((len(inputs[r]) if isinstance(inputs[r], str) else 0 for r in rows), np.int64, len(rows))
    return rows[np.lexsort((-length, rows // chunk_size))]


class EmbedInterrupted(KeyboardInterrupt):
    """Ctrl-C while embedding; ``message`` says what the embedding cache holds and that a rerun resumes."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _interrupted(cache: EmbeddingCache | None, n: int, what: str) -> EmbedInterrupted:
    if cache is None:
        return EmbedInterrupted("interrupted while embedding: no embedding cache, a rerun starts over")
    done = cache.done()
    rows = sum(len(cache.rows(i)) for i in done)
    return EmbedInterrupted(f"interrupted while embedding: {len(done)} of {cache.n_chunks} chunks ({rows:,} of {n:,} "
                            f"{what}) are cached in {cache.folder}; run the same command again to resume from there")


def _loader(inputs: Sequence[Any], rows: np.ndarray, encoder: Encoder, batch_size: int, workers: int):
    """Batches of (rows, collated batch, bad rows): a torch DataLoader for images (worker processes decode
    them), a plain loop for texts (no torch needed)."""
    rows_ds, collate = _Rows(inputs, rows, encoder), _Collate(encoder)
    if encoder.modality == "image":
        import torch
        from torch.utils.data import DataLoader

        return DataLoader(rows_ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate,
                          pin_memory=torch.cuda.is_available() and workers > 0, persistent_workers=False)
    return (collate([rows_ds[k] for k in range(i, min(i + batch_size, len(rows_ds)))])
            for i in range(0, len(rows_ds), batch_size))


def embed_inputs(inputs: Sequence[Any], encoder: Encoder, cache_dir: str | os.PathLike | None = None,
                 batch_size: int = 64, workers: int = 0, chunk_size: int | None = None, on_error: str = "raise",
                 progress: bool = True, stats: dict | None = None,
                 sort_by_length: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Embed every input: returns (Z float32 n x d, indices of inputs that could not be loaded).

    Row i of ``Z`` is input i's embedding, whatever order the batches ran in. Rows of ``Z`` for bad
    inputs are zero (callers drop them); with ``on_error='raise'`` any bad input raises
    :class:`MlcilError` instead. With ``cache_dir``, finished chunks of ``chunk_size`` rows (default
    ``16 * batch_size``) are read from the cache, missing ones encoded and written. Texts are batched
    by length within each chunk (``sort_by_length``, see :func:`length_order`): less padding, same rows.
    ``stats`` (a dict, optional) receives counts and seconds (encoded rows, cached rows, hash_s, ...).
    """
    from tqdm.auto import tqdm

    if on_error not in ("raise", "skip"):
        raise MlcilError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
    if batch_size < 1 or workers < 0:
        raise MlcilError(f"batch_size must be >= 1 and workers >= 0, got {batch_size} and {workers}")
    n, dim, eid = len(inputs), encoder.dim, encoder.id
    if encoder.modality != "image":
        workers = 0  # texts need no decoding: worker processes would only add overhead
    chunk_size = chunk_size or 16 * batch_size
    stats = stats if stats is not None else {}
    Z = np.zeros((n, dim), dtype=np.float32)
    bad_rows: list[tuple[int, str]] = []
    todo = list(range(-(-n // chunk_size)))
    cache = None
    if cache_dir is not None:
        t0 = time.perf_counter()
        digest = content_hash(item_digest(x, encoder.modality) for x in inputs)
        stats["hash_s"] = time.perf_counter() - t0
        cache = EmbeddingCache(cache_dir, eid, digest, n, dim, chunk_size)
        todo = []
        for i in range(cache.n_chunks):
            if cache.has(i):
                rows = cache.rows(i)
                Z[rows.start:rows.stop], bad = cache.read(i)
                bad_rows.extend((rows.start + int(b), "(cached) could not be loaded") for b in bad)
            else:
                todo.append(i)
    stats["cached_rows"] = n - sum(len(range(i * chunk_size, min((i + 1) * chunk_size, n))) for i in todo)
    rows = np.concatenate([np.arange(i * chunk_size, min((i + 1) * chunk_size, n)) for i in todo]) \
        if todo else np.zeros(0, np.int64)
    stats["encoded_rows"] = int(len(rows))
    if sort_by_length and encoder.modality == "text":
        rows = length_order(inputs, rows, chunk_size)
    chunk_of = {i: [min((i + 1) * chunk_size, n) - i * chunk_size, []] for i in todo}  # rows left, bad offsets
    t0 = time.perf_counter()
    timing = [0.0]  # seconds inside encoder.forward
    if len(rows):
        loader = _loader(inputs, rows, encoder, batch_size, workers)
        with tqdm(total=n, initial=n - len(rows), desc=f"embed {encoder.short_name or encoder.kind}", unit="text"
                  if encoder.modality == "text" else "img", disable=not progress, leave=False, dynamic_ncols=True,
                  smoothing=0.1) as bar:
            try:
                _run_batches(loader, encoder, on_error, dim, eid, Z, bad_rows, chunk_of, chunk_size, cache, bar, timing)
            except KeyboardInterrupt:
                raise _interrupted(cache, n, "texts" if encoder.modality == "text" else "inputs") from None
    stats["encode_s"] = time.perf_counter() - t0
    stats["forward_s"] = timing[0]
    bad_idx = np.asarray(sorted({r for r, _ in bad_rows}), dtype=np.int64)
    if len(bad_idx) and on_error == "raise":
        first = min(bad_rows)
        raise MlcilError(f"input {first[0]}: {first[1]} ({len(bad_idx)} bad input(s); use --skip-bad to drop them)")
    stats["bad_rows"] = int(len(bad_idx))
    return Z, bad_idx


def _run_batches(loader, encoder, on_error, dim, eid, Z, bad_rows, chunk_of, chunk_size, cache, bar, timing) -> None:
    """Encode every batch of ``loader`` into ``Z``, writing each chunk to the cache as it completes."""
    for good, batch, bad in loader:
        if bad and on_error == "raise":
            raise MlcilError(f"input {bad[0][0]}: {bad[0][1]} ({len(bad)} bad input(s) in this batch; "
                             f"use on_error='skip' / --skip-bad to drop them)")
        if good:
            f0 = time.perf_counter()
            out = encoder.forward(batch)
            timing[0] += time.perf_counter() - f0
            if out.shape != (len(good), dim):
                raise MlcilError(f"{eid}: forward returned shape {out.shape}, expected {(len(good), dim)}")
            Z[good] = out
        bad_rows.extend(bad)
        for r in [*good, *(b for b, _ in bad)]:
            c = r // chunk_size
            chunk_of[c][0] -= 1
        if bad:
            for r, _ in bad:
                chunk_of[r // chunk_size][1].append(r - (r // chunk_size) * chunk_size)
        for c in [c for c, (left, _) in chunk_of.items() if left == 0]:
            if cache is not None:
                span = cache.rows(c)
                cache.write(c, Z[span.start:span.stop], np.asarray(sorted(chunk_of[c][1]), np.int64))
            del chunk_of[c]
        bar.update(len(good) + len(bad))


def embed_dataset(dataset: Any, encoder: Encoder, cache_dir: str | os.PathLike | None = None,
                  batch_size: int = 64, workers: int = 0, chunk_size: int | None = None, on_error: str = "raise",
                  progress: bool = True, fit_split: str = "train", stats: dict | None = None) -> Any:
    """Raw :class:`~mlcil.data.Dataset` (X = texts or image paths) -> embedded Dataset (X float32 n x d).

    Encoders that need fitting (TF-IDF + SVD) are fitted on the rows whose split is ``fit_split``
    only, before encoding every row; with ``cache_dir`` the fitted state is cached too. Rows that could not be loaded are dropped (``on_error='skip'``)
    and listed by id in ``meta['skipped']``; ``meta['encoder']`` holds the encoder id.
    """
    from mlcil.data.dataset import Dataset

    if not dataset.is_raw:
        raise MlcilError(f"{dataset.name}: already holds feature vectors (d={dataset.d}); nothing to embed")
    if encoder.needs_fit:
        if dataset.split is None or not (dataset.split == fit_split).any():
            raise MlcilError(f"{dataset.name}: encoder {encoder.kind} must be fitted on a '{fit_split}' split, "
                             f"and the dataset has none")
        t0 = time.perf_counter()
        train = [dataset.X[i] for i in np.flatnonzero(dataset.split == fit_split)]
        encoder.fit(train, cache_dir=None if cache_dir is None else Path(cache_dir) / "fitted")
        if stats is not None:
            stats["fit_s"] = time.perf_counter() - t0
    Z, bad = embed_inputs(dataset.X, encoder, cache_dir=cache_dir, batch_size=batch_size, workers=workers,
                          chunk_size=chunk_size, on_error=on_error, progress=progress, stats=stats)
    ids = dataset.meta.get("ids") or list(range(dataset.n))
    keep = np.setdiff1d(np.arange(dataset.n), bad)
    meta = {k: v for k, v in dataset.meta.items() if k not in ("ids", "extra")}
    meta.update(encoder=encoder.id, ids=[ids[i] for i in keep], skipped=[ids[i] for i in bad])
    if len(bad):
        log.warning("%s: skipped %d input(s) that could not be loaded (e.g. %s)", dataset.name, len(bad),
                    dataset.X[int(bad[0])])
    return Dataset(Z[keep], dataset.Y[keep], list(dataset.label_names),
                   None if dataset.split is None else dataset.split[keep], dataset.name, meta)
