"""Continual-learning summaries: average mAP, last mAP and forgetting across sessions.

A stream has sessions t = 1..T; after each, the harness measures mAP on the test set of
the classes seen so far (``maps[t-1]``) and per-class AP on the **fixed, full** test set
(``ap_history[t-1]``). These functions condense those per-session numbers into the
field's summary numbers (docs/concepts/metrics.md). Values are fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np

from mlcil.errors import MlcilError
from mlcil.metrics._validation import as_array, check_fractions, fractions_1d

__all__ = ["average_map", "forgetting", "last_map"]


def average_map(maps: object) -> float:
    """Average mAP over sessions: mean_t mAP_t (the field's "Avg. mAP").

    Every session counts equally, whatever its number of classes or test examples. It
    rewards a learner that is good all along the stream, not only at the end
    (:func:`last_map`).

    Args:
        maps: 1-D sequence of T >= 1 per-session mAP values, fractions in [0, 1] (not
            percent), in session order. NaN is accepted (a session whose test set had
            no class with a positive example) and propagates: the result is then NaN
            rather than an average over a silently shorter list.

    Returns:
        Python float in [0, 1], or NaN if any entry is NaN.

    Raises:
        MlcilError: if ``maps`` is empty, not 1-D, or has a value outside [0, 1] (such as
            a percentage, 72.2) or an infinity.

    Example:
        >>> from mlcil.metrics import average_map
        >>> round(average_map([0.9, 0.8, 0.7]), 4)
        0.8
    """
    arr = fractions_1d("maps", maps)
    return float(arr.mean())


def last_map(maps: object) -> float:
    """Last mAP: mAP_T, after the final session (the field's "Last").

    Args:
        maps: 1-D sequence of T >= 1 per-session mAP values in [0, 1] (NaN allowed), in
            session order.

    Returns:
        Python float, ``maps[-1]``.

    Raises:
        MlcilError: as :func:`average_map`.

    Example:
        >>> from mlcil.metrics import last_map
        >>> last_map([0.9, 0.8, 0.7])
        0.7
    """
    arr = fractions_1d("maps", maps)
    return float(arr[-1])


def forgetting(ap_history: object, last_classes: object) -> float:
    """Average forgetting of the old classes: mean_c max_{t<T} AP_c(t) - AP_c(T).

    For every class c that was *not* introduced in the last session, forgetting is the
    drop from its best AP before the last session to its AP after it; the result is the
    mean over those classes (docs/concepts/metrics.md, the usual definition of Chaudhry et
    al. applied to per-class AP).

    Every AP_c(t) must be measured on the **same fixed test set** (all test examples,
    not the growing per-session test set of the protocol): then a change in AP_c can
    only come from a change in the model's scores for c, not from new test examples
    entering the ranking. In particular a learner whose old-class weights never change
    (the analytic learner with the ``known`` strategy) has forgetting exactly 0.

    Forgetting can be **negative**: a class whose AP improved after it was learned
    (backward transfer, e.g. pseudo-labelled or jointly-solved old classes learning from
    new data) contributes a negative drop. It is not clipped at 0.

    Classes taken into account: not in ``last_classes``, with at least one finite value
    among ``ap_history[:-1, c]`` (i.e. seen, with a defined AP, before the last session)
    and a finite ``ap_history[-1, c]``. NaN entries before T (class not yet seen, or AP
    undefined) are ignored in the max. A class whose final AP is NaN (e.g. dropped by
    ``learner.forget``) is excluded, since its drop is undefined.

    Args:
        ap_history: array-like of shape (T, n_classes): row t-1 is the per-class AP after
            session t, on the fixed full test set; NaN where class c was not yet seen at
            t or its AP is undefined. Values are fractions in [0, 1] or NaN.
        last_classes: the classes introduced in the last session T, either a boolean
            mask of shape (n_classes,) or integer column indices into ``ap_history``
            (possibly empty).

    Returns:
        Python float: mean forgetting in [-1, 1] over the eligible classes. NaN when
        T = 1 (nothing learned before the last session can have been forgotten) or when
        no class is eligible.

    Raises:
        MlcilError: if ``ap_history`` is not 2-D with at least one row, has values
            outside [0, 1] (other than NaN), or ``last_classes`` is neither a boolean
            mask of shape (n_classes,) nor integer indices in [0, n_classes).

    Example:
        Three sessions, classes 0-1 introduced first, 2 second, 3 last. Class 0 peaks at
        0.9 and ends at 0.6 (forgets 0.3); class 1 ends at its best (0); class 2 improves
        from 0.5 to 0.7 (forgets -0.2); class 3 is new and not counted.

        >>> import numpy as np
        >>> from mlcil.metrics import forgetting
        >>> nan = np.nan
        >>> history = np.array([[0.9, 0.8, nan, nan],
        ...                     [0.7, 0.9, 0.5, nan],
        ...                     [0.6, 0.9, 0.7, 0.4]])
        >>> round(forgetting(history, last_classes=[3]), 4)
        0.0333
        >>> forgetting(history[:1], last_classes=[0, 1])  # T = 1: nothing to forget
        nan
    """
    hist = as_array("ap_history", ap_history)
    if hist.ndim != 2 or hist.shape[0] == 0:
        raise MlcilError(
            f"ap_history: expected a 2-D array of shape (n_sessions >= 1, n_classes), got shape {hist.shape}"
        )
    hist = hist.astype(np.float64)
    check_fractions("ap_history", hist, allow_nan=True)
    n_sessions, n_classes = hist.shape
    in_last = _class_mask("last_classes", last_classes, n_classes)
    if n_sessions == 1:
        return float("nan")
    past = hist[:-1, ~in_last]
    final = hist[-1, ~in_last]
    eligible = np.isfinite(past).any(axis=0) & np.isfinite(final)
    if not eligible.any():
        return float("nan")
    best = np.nanmax(past[:, eligible], axis=0)
    return float(np.mean(best - final[eligible]))


def _class_mask(name: str, classes: object, n_classes: int) -> np.ndarray:
    """Boolean mask (n_classes,) from a mask or from integer indices; raises otherwise."""
    arr = as_array(name, classes)
    if arr.dtype.kind == "b":
        if arr.shape != (n_classes,):
            raise MlcilError(
                f"{name}: expected a boolean mask of shape ({n_classes},) or integer class indices, "
                f"got a boolean array of shape {arr.shape}"
            )
        return arr
    if arr.size == 0:
        return np.zeros(n_classes, dtype=bool)
    if arr.dtype.kind not in "iu" or arr.ndim > 1:
        raise MlcilError(
            f"{name}: expected a boolean mask of shape ({n_classes},) or a 1-D array of integer class "
            f"indices, got dtype {arr.dtype} and shape {arr.shape}"
        )
    arr = arr.reshape(-1)
    if arr.min() < 0 or arr.max() >= n_classes:
        raise MlcilError(
            f"{name}: expected class indices in [0, {n_classes}), got {arr.tolist()}"
        )
    mask = np.zeros(n_classes, dtype=bool)
    mask[arr] = True
    return mask
