"""mlcil's own ``.npz`` format: read, write, and peek at shapes without loading X.

Keys of a dataset file (``np.load(path)`` works without pickle):

- ``X``: float32, dense, n x d; or the CSR parts ``X_data`` (nnz,), ``X_indices`` (nnz,),
  ``X_indptr`` (n + 1,), ``X_shape`` (2,) and ``X_format = 'csr'`` for wide sparse sets;
- ``Y``: uint8 multi-hot, n x L;
- ``label_names``: L strings;
- ``split`` (optional): n strings such as 'train' / 'test';
- ``feature_names`` (optional): d strings, kept in ``Dataset.meta['feature_names']``;
- ``encoder`` (optional): the full id of the encoder that made X (``mlcil embed``), kept in
  ``Dataset.meta['encoder']``.

Token features (optional, ``mlcil embed --tokens``) are saved beside the file, as two plain ``.npy``
files that :func:`read_npz` memory-maps (a learner that ignores them never reads them):
``<stem>.tokens.npy`` (T: n×t×d float16) and ``<stem>.tokens-mask.npy`` (n×t bool).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mlcil.data.dataset import Dataset, check_features, check_labels
from mlcil.errors import MlcilError

CSR_KEYS = ("X_data", "X_indices", "X_indptr", "X_shape")


def _stem(path: Path) -> str:
    return path.name[: -len(".npz")] if path.name.endswith(".npz") else path.stem


def _open(path: Path) -> Any:
    """``np.load`` the archive lazily; a missing or corrupt file becomes an MlcilError."""
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise MlcilError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise MlcilError(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise MlcilError(f"{path}: holds a single array, expected an .npz archive with X, Y and label_names")
    return z


def _get(z: Any, path: Path, key: str) -> np.ndarray:
    """One array of the archive, with a clear message when it is missing or holds Python objects."""
    if key not in z.files:
        raise MlcilError(f"{path}: missing key '{key}' (keys present: {', '.join(z.files) or 'none'})")
    try:
        return z[key]
    except ValueError as exc:  # object arrays refused because allow_pickle=False
        raise MlcilError(
            f"{path}: array '{key}' cannot be read without pickle ({exc}); store strings as a unicode array"
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MlcilError(f"{path}: array '{key}' is corrupt ({exc})") from None


def _is_csr(z: Any) -> bool:
    return "X" not in z.files and any(k in z.files for k in (*CSR_KEYS, "X_format"))


def _read_csr(z: Any, path: Path) -> sp.csr_matrix:
    if "X_format" in z.files:
        fmt = str(_get(z, path, "X_format"))
        if fmt != "csr":
            raise MlcilError(f"{path}: X_format is '{fmt}', only 'csr' is supported")
    data, indices, indptr, shape = (_get(z, path, k) for k in CSR_KEYS)
    shape = tuple(int(s) for s in np.asarray(shape).ravel())
    if len(shape) != 2:
        raise MlcilError(f"{path}: X_shape must hold 2 numbers (n, d), got {shape}")
    try:
        X = sp.csr_matrix((data, indices, indptr), shape=shape)
    except (ValueError, TypeError) as exc:
        raise MlcilError(f"{path}: inconsistent CSR parts X_data/X_indices/X_indptr/X_shape ({exc})") from None
    return X


def token_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The two files that hold a dataset file's token features: ``<stem>.tokens.npy`` and ``<stem>.tokens-mask.npy``."""
    path = Path(path)
    stem = _stem(path)
    return path.with_name(f"{stem}.tokens.npy"), path.with_name(f"{stem}.tokens-mask.npy")


def _read_tokens(path: Path, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    t_path, m_path = token_paths(path)
    if not t_path.is_file():
        return None, None
    if not m_path.is_file():
        raise MlcilError(f"{t_path}: token features without their mask ({m_path.name} is missing)")
    try:
        T = np.load(t_path, mmap_mode="r", allow_pickle=False)
        mask = np.load(m_path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MlcilError(f"{t_path}: unreadable token features ({exc})") from None
    if T.ndim != 3 or T.shape[0] != n:
        raise MlcilError(f"{t_path}: expected token features of shape ({n}, t, d), got {T.shape}")
    return T, mask


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``path`` (.npy, no pickles) through a temporary file and a rename: readers see the old
    file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_npz(path: str | os.PathLike, name: str | None = None) -> Dataset:
    """Read a dataset in mlcil's ``.npz`` format (see the module docstring).

    X comes back as float32 ndarray (n x d) or, for the CSR layout, ``scipy.sparse.csr_matrix``
    (never densified). Token features saved beside the file (:func:`token_paths`) come back
    memory-mapped as ``Dataset.T`` / ``Dataset.mask``. Every problem (missing key, NaN/inf in X, non-binary Y, mismatched
    lengths) raises :class:`MlcilError` whose message starts with the file path.
    """
    path = Path(path)
    with _open(path) as z:
        X = _read_csr(z, path) if _is_csr(z) else _get(z, path, "X")
        Y = _get(z, path, "Y")
        label_names = [str(s) for s in np.atleast_1d(_get(z, path, "label_names"))]
        split = _get(z, path, "split") if "split" in z.files else None
        feature_names = (
            [str(s) for s in np.atleast_1d(_get(z, path, "feature_names"))] if "feature_names" in z.files else None
        )
        encoder = str(_get(z, path, "encoder")) if "encoder" in z.files else None
    X = check_features(X, f"{path}: X")
    Y = check_labels(Y, f"{path}: Y", n=X.shape[0])
    if feature_names is not None and len(feature_names) != X.shape[1]:
        raise MlcilError(f"{path}: feature_names has {len(feature_names)} entries, X has {X.shape[1]} columns")
    meta: dict[str, Any] = {"path": str(path)}
    if feature_names is not None:
        meta["feature_names"] = feature_names
    if encoder is not None:
        meta["encoder"] = encoder
    T, mask = _read_tokens(path, X.shape[0]) if not sp.issparse(X) else (None, None)
    try:
        return Dataset(X, Y, label_names, split, name or _stem(path), meta, T=T, mask=mask)
    except MlcilError as exc:
        raise MlcilError(f"{path}: {exc}") from None


def write_npz(dataset: Dataset, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write a feature Dataset in mlcil's ``.npz`` format, atomically (temp file + rename).

    Dense X is stored as ``X``; CSR X as the ``X_*`` parts. ``meta['feature_names']`` is kept
    when it has d entries. Token features (``dataset.T``) go beside it (:func:`token_paths`), written
    before the ``.npz`` so that a reader never finds a dataset file whose tokens are still missing. Raw datasets (X a list of texts) cannot be stored here: use JSON-lines.
    """
    path = Path(path)
    if dataset.is_raw:
        raise MlcilError(f"{path}: dataset '{dataset.name}' holds raw inputs; .npz stores feature vectors only")
    arrays: dict[str, np.ndarray] = {}
    if sp.issparse(dataset.X):
        X = sp.csr_matrix(dataset.X, dtype=np.float32)
        X.sort_indices()
        arrays.update(
            X_data=X.data, X_indices=X.indices, X_indptr=X.indptr,
            X_shape=np.asarray(X.shape, dtype=np.int64), X_format=np.asarray("csr"),
        )
    else:
        arrays["X"] = np.asarray(dataset.X, dtype=np.float32)
    arrays["Y"] = np.asarray(dataset.Y, dtype=np.uint8)
    arrays["label_names"] = np.asarray(dataset.label_names, dtype=str)
    if dataset.split is not None:
        arrays["split"] = np.asarray(dataset.split, dtype=str)
    feature_names = dataset.meta.get("feature_names")
    if feature_names is not None and len(feature_names) == dataset.d:
        arrays["feature_names"] = np.asarray([str(f) for f in feature_names], dtype=str)
    if isinstance(dataset.meta.get("encoder"), str):
        arrays["encoder"] = np.asarray(dataset.meta["encoder"], dtype=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    t_path, m_path = token_paths(path)
    if dataset.T is not None:
        save_npy_atomic(t_path, np.asarray(dataset.T, dtype=np.float16))
        save_npy_atomic(m_path, np.asarray(dataset.mask, dtype=bool))
    else:  # a dataset without tokens replaces one that had them: no stale tokens beside it
        t_path.unlink(missing_ok=True)
        m_path.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            (np.savez_compressed if compress else np.savez)(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _npy_shape(z: Any, key: str) -> tuple[int, ...]:
    """Shape of one array in the archive from its .npy header, without reading the data."""
    with z.zip.open(f"{key}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(fh)
    return tuple(int(s) for s in shape)


def npz_summary(path: str | os.PathLike) -> dict[str, Any]:
    """n, d, L, label cardinality and split counts of an ``.npz`` dataset, reading only Y, split and X's shape."""
    path = Path(path)
    with _open(path) as z:
        Y = check_labels(_get(z, path, "Y"), f"{path}: Y")
        if _is_csr(z):
            n, d = (int(s) for s in np.asarray(_get(z, path, "X_shape")).ravel())
        elif "X" in z.files:
            shape = _npy_shape(z, "X")
            if len(shape) != 2:
                raise MlcilError(f"{path}: X must be 2-D, got shape {shape}")
            n, d = shape
        else:
            raise MlcilError(f"{path}: missing key 'X' (or the CSR parts {', '.join(CSR_KEYS)})")
        split = _get(z, path, "split") if "split" in z.files else None
    counts = None if split is None else dict(zip(*(a.tolist() for a in np.unique(split, return_counts=True))))
    return {
        "n": n, "d": d, "L": Y.shape[1],
        "cardinality": float(Y.sum(axis=1, dtype=np.int64).mean()) if len(Y) else 0.0,
        "split": counts,
    }
