"""On-disk embedding cache keyed by (encoder id, input content hash), written in atomic chunks.

Layout: ``<root>/<sha256(encoder id)[:20]>/<content hash[:32]>/`` holding ``meta.json`` (the full
encoder id, content hash, n, d, chunk size) and ``chunk-000000.npy`` ... (float32 rows of
``chunk_size`` inputs each, the last one shorter), plus ``chunk-XXXXXX.bad.npy`` (row offsets within
the chunk that could not be loaded) where a chunk had such rows. A chunk file is written to a temp
name and renamed, so a chunk either exists whole or not at all: an interrupted run resumes at the
first missing chunk. Opening a folder whose ``meta.json`` disagrees with the encoder id, content hash
or shapes raises :class:`MlcilError`: a cache is never reused across encoders.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mlcil.data.npz import save_npy_atomic
from mlcil.errors import MlcilError

FORMAT = 1


def content_hash(item_digests: Iterable[bytes]) -> str:
    """sha256 (hex) over per-input digests, in order: equal hash = equal inputs in equal order."""
    h = hashlib.sha256()
    for d in item_digests:
        h.update(d)
    return h.hexdigest()


class EmbeddingCache:
    """Chunks of embeddings for one (encoder id, content hash) pair.

    Args:
        root: cache root folder.
        encoder_id: the encoder's full id string.
        content: the inputs' content hash (:func:`content_hash`).
        n: number of inputs; dim: embedding size; chunk_size: rows per chunk.
    """

    def __init__(self, root: str | os.PathLike, encoder_id: str, content: str, n: int, dim: int,
                 chunk_size: int) -> None:
        if chunk_size < 1:
            raise MlcilError(f"chunk_size: expected >= 1, got {chunk_size}")
        self.encoder_id, self.content, self.n, self.dim, self.chunk_size = encoder_id, content, n, dim, chunk_size
        key = hashlib.sha256(encoder_id.encode("utf-8")).hexdigest()[:20]
        self.folder = Path(root).expanduser() / key / content[:32]
        self.meta = {"format": FORMAT, "encoder_id": encoder_id, "content_hash": content, "n": n, "dim": dim,
                     "chunk_size": chunk_size}
        self._open()

    def _open(self) -> None:
        meta_path = self.folder / "meta.json"
        if meta_path.is_file():
            try:
                found = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise MlcilError(f"{meta_path}: unreadable embedding-cache metadata ({exc}); delete the folder") from None
            if found.get("encoder_id") != self.encoder_id:
                raise MlcilError(
                    f"{self.folder}: embedding cache written by a different encoder "
                    f"({found.get('encoder_id')!r}, expected {self.encoder_id!r}); refusing to reuse it"
                )
            diff = [k for k in self.meta if found.get(k) != self.meta[k]]
            if diff:
                raise MlcilError(
                    f"{self.folder}: embedding cache metadata differs in {', '.join(diff)} "
                    f"({', '.join(f'{k}={found.get(k)!r} vs {self.meta[k]!r}' for k in diff)}); delete the folder"
                )
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".meta.json.", suffix=".part", dir=self.folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.meta, fh, indent=1)
        os.replace(tmp, meta_path)

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    def rows(self, i: int) -> range:
        """Input rows covered by chunk i."""
        return range(i * self.chunk_size, min((i + 1) * self.chunk_size, self.n))

    def _path(self, i: int, bad: bool = False) -> Path:
        return self.folder / f"chunk-{i:06d}{'.bad' if bad else ''}.npy"

    def has(self, i: int) -> bool:
        return self._path(i).is_file()

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings rows x dim float32, offsets of rows that could not be loaded) of chunk i."""
        path = self._path(i)
        try:
            Z = np.load(path, allow_pickle=False)
            bad_path = self._path(i, bad=True)
            bad = np.load(bad_path, allow_pickle=False) if bad_path.is_file() else np.zeros(0, np.int64)
        except (OSError, ValueError, EOFError) as exc:
            raise MlcilError(f"{path}: corrupt embedding-cache chunk ({exc}); delete it to re-encode") from None
        want = (len(self.rows(i)), self.dim)
        if Z.shape != want or Z.dtype != np.float32:
            raise MlcilError(f"{path}: embedding-cache chunk has shape {Z.shape} {Z.dtype}, expected {want} float32; "
                             f"delete it to re-encode")
        return Z, bad.astype(np.int64)

    def write(self, i: int, Z: np.ndarray, bad: np.ndarray | None = None) -> None:
        """Store chunk i atomically (the bad-row list first: the chunk file marks completion)."""
        if bad is not None and len(bad):
            save_npy_atomic(self._path(i, bad=True), np.asarray(bad, dtype=np.int64))
        save_npy_atomic(self._path(i), np.ascontiguousarray(Z, dtype=np.float32))

    def done(self) -> list[int]:
        return [i for i in range(self.n_chunks) if self.has(i)]
