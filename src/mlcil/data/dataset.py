"""The ``Dataset``: X (embeddings or raw inputs), Y (multi-hot), label names, split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mlcil.errors import MlcilError


def check_features(X: Any, name: str = "X", n: int | None = None, d: int | None = None):
    """Validate a feature matrix: 2-D, real, finite; dense float32 or CSR float32.

    Returns X as ``np.ndarray`` (float32, C-contiguous) or ``scipy.sparse.csr_matrix``.
    Raises :class:`MlcilError` naming ``name`` and the expected shape otherwise.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
        values = X.data
    else:
        try:
            X = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise MlcilError(f"{name}: expected a 2-D numeric array, got {type(X).__name__} ({exc})") from None
        if X.ndim != 2:
            raise MlcilError(f"{name}: expected a 2-D array (n x d), got shape {X.shape}")
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or np.iscomplexobj(X):
            raise MlcilError(f"{name}: expected real numbers, got dtype {X.dtype}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        values = X
    if n is not None and X.shape[0] != n:
        raise MlcilError(f"{name}: expected {n} rows, got {X.shape[0]}")
    if d is not None and X.shape[1] != d:
        raise MlcilError(f"{name}: expected {d} features (columns), got {X.shape[1]}")
    if not np.isfinite(values).all():
        if sp.issparse(X):  # locate through the CSR structure; densifying a wide matrix could exhaust memory
            k = int(np.flatnonzero(~np.isfinite(X.data))[0])
            bad = (int(np.searchsorted(X.indptr, k, side="right")) - 1, int(X.indices[k]))
        else:
            bad = np.argwhere(~np.isfinite(X))[0]
        raise MlcilError(f"{name}: contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    return X


def check_labels(Y: Any, name: str = "Y", n: int | None = None, L: int | None = None) -> np.ndarray:
    """Validate a multi-hot label matrix: 2-D, values in {0, 1}. Returns uint8 ndarray."""
    if sp.issparse(Y):
        Y = Y.toarray()
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise MlcilError(f"{name}: expected a 2-D multi-hot array (n x L), got shape {Y.shape}")
    if Y.size and not np.isin(Y, (0, 1)).all():
        bad = np.argwhere(~np.isin(Y, (0, 1)))[0]
        raise MlcilError(
            f"{name}: expected binary 0/1 labels, got {Y[bad[0], bad[1]].item()!r} at row {bad[0]}, column {bad[1]}"
        )
    if n is not None and Y.shape[0] != n:
        raise MlcilError(f"{name}: expected {n} rows, got {Y.shape[0]}")
    if L is not None and Y.shape[1] != L:
        raise MlcilError(f"{name}: expected {L} label columns, got {Y.shape[1]}")
    return Y.astype(np.uint8, copy=False)


def take_rows(X, rows: np.ndarray):
    """Rows of a dense array, CSR matrix or list of raw inputs."""
    if isinstance(X, list):
        return [X[i] for i in rows]
    return X[rows]


@dataclass
class Dataset:
    """A multi-label dataset.

    Attributes:
        X: n×d float32 ndarray, n×d CSR matrix, or a list of n raw inputs (texts,
            image paths) that an encoder turns into embeddings.
        Y: n×L uint8 multi-hot.
        label_names: L names (str).
        split: n strings ('train', 'test', ...) or None where the source has no official split.
        name: short name (registry name or file stem).
        meta: free-form provenance (path, citation, ...).
    """

    X: Any
    Y: np.ndarray
    label_names: list[str]
    split: np.ndarray | None = None
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.X, list):
            n = len(self.X)
        else:
            self.X = check_features(self.X, f"{self.name}: X")
            n = self.X.shape[0]
        self.Y = check_labels(self.Y, f"{self.name}: Y", n=n)
        self.label_names = [str(s) for s in self.label_names]
        if len(self.label_names) != self.Y.shape[1]:
            raise MlcilError(
                f"{self.name}: label_names has {len(self.label_names)} entries, Y has {self.Y.shape[1]} columns"
            )
        if len(set(self.label_names)) != len(self.label_names):
            raise MlcilError(f"{self.name}: label_names contains duplicates")
        if self.split is not None:
            self.split = np.asarray(self.split).astype(str)
            if self.split.shape != (n,):
                raise MlcilError(f"{self.name}: split must have one entry per row ({n}), got shape {self.split.shape}")

    @property
    def n(self) -> int:
        return self.Y.shape[0]

    @property
    def L(self) -> int:
        return self.Y.shape[1]

    @property
    def is_raw(self) -> bool:
        """True when X holds raw inputs (texts, paths) rather than feature vectors."""
        return isinstance(self.X, list)

    @property
    def d(self) -> int | None:
        return None if self.is_raw else self.X.shape[1]

    @property
    def cardinality(self) -> float:
        """Mean number of positive labels per example."""
        return float(self.Y.sum(axis=1).mean()) if self.n else 0.0

    def subset(self, rows: np.ndarray) -> "Dataset":
        rows = np.asarray(rows)
        return Dataset(
            take_rows(self.X, rows), self.Y[rows], list(self.label_names),
            None if self.split is None else self.split[rows], self.name, dict(self.meta),
        )

    def __repr__(self) -> str:
        d = "raw" if self.is_raw else self.d
        return f"Dataset({self.name!r}, n={self.n}, d={d}, L={self.L}, cardinality={self.cardinality:.3f})"
