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


class TokenFeatures(np.ndarray):
    """n×d float32 pooled features (a plain ndarray to every learner) that also carry the same rows'
    token features: T (n×t×d', float16, e.g. per-token or per-patch hidden states) and a mask (n×t
    bool, True = a real token).

    Row indexing (``X[rows]``, ``X[rows, :]``, slices, boolean masks) keeps the tokens of the selected
    rows without copying them (a row index into the source arrays, which may be memory-mapped);
    any other indexing or reshaping gives a plain ndarray. ``np.asarray(X)`` is the plain pooled
    matrix, so learners that ignore tokens (and :func:`check_features`) see nothing else. Learners
    that use tokens (``krt``, ``csc``) read them with :func:`token_features`.
    """

    def __new__(cls, X: np.ndarray, T: np.ndarray, mask: np.ndarray, rows: np.ndarray | None = None) -> "TokenFeatures":
        obj = np.asarray(X).view(cls)
        obj._source = (T, mask)
        obj._rows = np.arange(obj.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        return obj

    def __array_finalize__(self, obj) -> None:
        rows = getattr(obj, "_rows", None)
        keep = rows is not None and self.ndim == 2 and obj is not None and self.shape[0] == len(rows)
        self._source = getattr(obj, "_source", None) if keep else None
        self._rows = rows if keep else None

    def __getitem__(self, key):
        out = super().__getitem__(key)
        if not isinstance(out, TokenFeatures):
            return out
        rows_key, cols = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        full_cols = all(isinstance(c, slice) and c == slice(None) for c in cols) and len(cols) <= 1
        if out.ndim != 2 or self._source is None or not full_cols or rows_key is None or rows_key is Ellipsis:
            return out.view(np.ndarray) if out.ndim != 2 or not full_cols or self._source is None else out
        out._source, out._rows = self._source, self._rows[rows_key]
        return out

    @property
    def has_tokens(self) -> bool:
        return self._source is not None and self._rows is not None and len(self._rows) == self.shape[0]

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """``(T, mask)`` of these rows: n×t×d' float16 and n×t bool (copies)."""
        if not self.has_tokens:
            raise MlcilError("TokenFeatures: these rows lost their token features (not a row selection)")
        T, mask = self._source
        return np.asarray(T[self._rows], dtype=np.float16), np.asarray(mask[self._rows], dtype=bool)

    def __reduce__(self):
        T, mask = self.tokens() if self.has_tokens else (None, None)
        return (_rebuild_token_features, (np.asarray(self), T, mask))


def _rebuild_token_features(X, T, mask):
    return X if T is None else TokenFeatures(X, T, mask)


def token_features(X) -> tuple[np.ndarray, np.ndarray] | None:
    """``(T, mask)`` carried by ``X`` (a :class:`TokenFeatures`, or a Session whose X is one); None when
    ``X`` carries no token features."""
    X = getattr(X, "X", X)
    if isinstance(X, TokenFeatures) and X.has_tokens:
        return X.tokens()
    return None


def check_tokens(T: Any, mask: Any, n: int, name: str = "T") -> tuple[np.ndarray, np.ndarray]:
    """Validate token features: T n×t×d' floats (kept float16; a memory map stays mapped), mask n×t
    bool (default: all True). Raises :class:`MlcilError` naming the field and the expected shape."""
    if not isinstance(T, np.ndarray) or T.ndim != 3:
        raise MlcilError(f"{name}: expected token features of shape (n, t, d) (float16), got "
                         f"{getattr(T, 'shape', type(T).__name__)}")
    if not np.issubdtype(T.dtype, np.floating):
        raise MlcilError(f"{name}: expected float16 token features, got dtype {T.dtype}")
    if T.dtype != np.float16:
        T = T.astype(np.float16)
    if T.shape[0] != n:
        raise MlcilError(f"{name}: expected {n} rows (one per example), got {T.shape[0]}")
    if mask is None:
        mask = np.ones(T.shape[:2], dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != T.shape[:2] or mask.dtype != bool:
        raise MlcilError(f"{name} mask: expected a bool array of shape {T.shape[:2]} (n, t), got "
                         f"{mask.dtype} {mask.shape}")
    return T, mask


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
        T: optional token features, n×t×d' float16 (per-token or per-patch states of the encoder
            that made X; ``mlcil embed --tokens``), carried with X (a :class:`TokenFeatures`) so
            that the rows a protocol selects keep them; learners other than ``krt``/``csc`` ignore them.
        mask: n×t bool, True where T holds a real token (default: all True).
    """

    X: Any
    Y: np.ndarray
    label_names: list[str]
    split: np.ndarray | None = None
    name: str = "dataset"
    meta: dict = field(default_factory=dict)
    T: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.T is None and isinstance(self.X, TokenFeatures) and self.X.has_tokens:
            self.T, self.mask = self.X.tokens()
        if isinstance(self.X, list):
            n = len(self.X)
        else:
            self.X = check_features(self.X, f"{self.name}: X")
            n = self.X.shape[0]
        if self.T is not None:
            if isinstance(self.X, list) or sp.issparse(self.X):
                raise MlcilError(f"{self.name}: T: token features go with dense embeddings X, not "
                                 f"{'raw inputs' if isinstance(self.X, list) else 'a sparse matrix'}")
            self.T, self.mask = check_tokens(self.T, self.mask, n, f"{self.name}: T")
            self.X = TokenFeatures(self.X, self.T, self.mask)
        elif self.mask is not None:
            raise MlcilError(f"{self.name}: mask given without token features T")
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
            None if self.T is None else self.T[rows], None if self.mask is None else self.mask[rows],
        )

    @property
    def has_tokens(self) -> bool:
        """True when the dataset carries token features (``T``, ``mask``)."""
        return self.T is not None

    def __repr__(self) -> str:
        d = "raw" if self.is_raw else self.d
        return f"Dataset({self.name!r}, n={self.n}, d={d}, L={self.L}, cardinality={self.cardinality:.3f})"
