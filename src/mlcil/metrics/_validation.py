"""Input checks shared by the metric functions (private).

Every check raises :class:`mlcil.errors.MlcilError` with a one-line message that starts
with the argument's name and says what shape or values were expected and what was got,
e.g. ``scores: expected shape (100, 5) to match y_true, got (100, 4)``.
"""

from __future__ import annotations

import numpy as np

from mlcil.errors import MlcilError


def as_array(name: str, a: object) -> np.ndarray:
    """``np.asarray(a)``, turning a conversion failure (ragged lists, ...) into MlcilError."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MlcilError(f"{name}: expected a numeric array, could not convert it ({msg})") from None
    if arr.dtype.kind not in "biuf":
        raise MlcilError(f"{name}: expected a numeric or boolean array, got dtype {arr.dtype}")
    return arr


def as_2d(name: str, a: object) -> np.ndarray:
    """A numeric 2-D array (n_examples, n_classes); anything else raises."""
    arr = as_array(name, a)
    if arr.ndim != 2:
        raise MlcilError(
            f"{name}: expected a 2-D array of shape (n_examples, n_classes), got shape {arr.shape}"
        )
    return arr


def check_same_shape(name: str, arr: np.ndarray, ref_name: str, ref: np.ndarray) -> None:
    """Raise unless ``arr`` has exactly the shape of ``ref``."""
    if arr.shape != ref.shape:
        raise MlcilError(f"{name}: expected shape {ref.shape} to match {ref_name}, got {arr.shape}")


def binary_2d(name: str, a: object) -> np.ndarray:
    """A 2-D array whose entries are all 0/1 (or bool), returned as bool."""
    arr = as_2d(name, a)
    if arr.dtype.kind == "b":
        return arr
    if arr.size:
        if arr.dtype.kind in "iu":
            ok = arr.min() >= 0 and arr.max() <= 1
        else:
            ok = bool(np.all((arr == 0) | (arr == 1)))
        if not ok:
            bad = np.flatnonzero((arr != 0) & (arr != 1))[0]
            i, j = np.unravel_index(bad, arr.shape)
            raise MlcilError(
                f"{name}: expected binary values (0/1 or bool), got {arr[i, j].item()!r} at [{i}, {j}]"
            )
    return arr != 0


def finite_float_2d(name: str, a: object) -> np.ndarray:
    """A 2-D array of finite numbers, as float32 or float64 (other dtypes become float64).

    float32 is kept (not up-cast): casting is exact and order-preserving, so ties and
    ranks, hence AP, are the same; sorting float32 is cheaper.
    """
    arr = as_2d(name, a)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    check_finite(name, arr)
    return arr


def check_finite(name: str, arr: np.ndarray) -> None:
    """MlcilError naming ``name``, the count of NaN/inf entries and the first one, if ``arr`` (2-D) has any."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        i, j = np.unravel_index(bad[0], arr.shape)
        raise MlcilError(
            f"{name}: expected finite values, got {bad.size} NaN/inf entries (first {arr[i, j].item()} at [{i}, {j}])"
        )


def fractions_1d(name: str, a: object, *, allow_nan: bool = True) -> np.ndarray:
    """A non-empty 1-D float64 array with values in [0, 1] (NaN allowed if ``allow_nan``)."""
    arr = as_array(name, a)
    if arr.ndim != 1:
        raise MlcilError(f"{name}: expected a 1-D sequence of per-session values, got shape {arr.shape}")
    if arr.size == 0:
        raise MlcilError(f"{name}: expected at least one value, got an empty sequence")
    arr = arr.astype(np.float64)
    check_fractions(name, arr, allow_nan=allow_nan)
    return arr


def check_fractions(name: str, arr: np.ndarray, *, allow_nan: bool = True) -> None:
    """Raise unless every entry is in [0, 1] (or NaN when ``allow_nan``)."""
    bad_mask = ~((arr >= 0) & (arr <= 1))
    if allow_nan:
        bad_mask &= ~np.isnan(arr)
    if bad_mask.any():
        k = np.flatnonzero(bad_mask.ravel())[0]
        where = np.unravel_index(k, arr.shape)
        loc = ", ".join(str(int(x)) for x in where)
        raise MlcilError(
            f"{name}: expected fractions in [0, 1]{' or NaN' if allow_nan else ''} "
            f"(not percent), got {arr[where].item()} at [{loc}]"
        )
