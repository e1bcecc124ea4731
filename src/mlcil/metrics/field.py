"""The metric semantics of the MLCIL codebases (KRT, CSC, MULTI-LANE, L3A), re-implemented.

Papers in multi-label class-incremental learning copy their numbers from the evaluation
code of a few public repositories. That code differs from mlcil's default metrics
(:mod:`mlcil.metrics.ranking`, :mod:`mlcil.metrics.thresholds`) in four ways that move
published numbers by up to several points; the functions here reproduce it exactly, so
that a table made with ``mlcil bench --metrics field`` lines up with theirs. Each rule,
with the repository and file it was read from (read, not copied; written here from the
semantics):

- **AP over one strict ranking** (:func:`field_average_precision`): examples are sorted by
  ``numpy.argsort`` of the scores (numpy's default, unstable sort), reversed, and every
  positive gets the precision at its own rank; AP = the sum of those precisions divided by
  (number of positives + 1e-8). Tied scores are therefore *not* a group: the order among
  them is whatever the sort returns, which depends on the rows' order and on the sort
  kernel numpy picks for the CPU (an AVX-512 machine and an older one may differ). A class
  without any positive gets AP 0 (0 / 1e-8). KRT ``MLCIL-ICCV2023/src/helper_functions/
  helper_functions.py`` (``average_precision``, ``mAP``) in witdsl/KRT-MLCIL; the same
  functions in Kaile-Du/CSC ``CSC/evaluation_metrics.py`` and scut-zx/L3A
  ``src/helper_functions/helper_functions.py``.
- **mAP counts every class** (:func:`field_mean_average_precision`): the plain mean of
  those APs over all seen classes, so a class without a positive test example enters as 0
  (same files). MULTI-LANE (tdemin16/multi-lane ``multi_lane/utils.py``,
  ``mean_average_precision``) uses torchmetrics' multilabel AP instead, which is
  scikit-learn's order-free AP and leaves such classes out of the macro mean -- i.e.
  mlcil's :func:`mlcil.metrics.mean_average_precision`.
- **CF1 is the mean of per-class F1** (:func:`field_threshold_metrics`), not the harmonic
  mean of CP and CR; a class with no true positive has precision, recall and F1 all 0. KRT
  ``src/helper_functions/utils.py`` (``calculate_metrics``), CSC ``CSC/evaluation_metrics.py``
  (``prf_cal``), MULTI-LANE ``multi_lane/utils.py`` (``f1_score_per_class``), L3A
  ``src/helper_functions/utils.py`` (``calculate_metrics_sk``: scikit-learn per-class scores,
  then their mean).
- **Undefined overall scores**: KRT and CSC divide without a guard, so OP and OF1 are NaN
  when nothing is predicted, OR and OF1 are NaN when there is no positive, and OF1 is NaN
  when nothing predicted is right (0/0) -- ``undefined="nan"``. MULTI-LANE
  (``f1_score_overall``, ``zero_division=0``) and L3A (scikit-learn's micro scores) return
  0 there -- ``undefined="zero"``.

The decision itself is ``p > threshold`` in every one of them (torch ``preds.gt(thre)``):
:func:`mlcil.metrics.decide_threshold` with ``strict=True``. KRT, CSC and MULTI-LANE use
0.8; L3A's published F1 numbers use 0.525 (``MultiLabelIncremental_L3A.py``, ``validate``).

Values are fractions in [0, 1], not percent (the codebases print percent).
"""

from __future__ import annotations

import numpy as np

from mlcil.errors import MlcilError
from mlcil.metrics._validation import as_2d, binary_2d, check_finite, check_same_shape

__all__ = ["FIELD_EPSILON", "field_average_precision", "field_mean_average_precision", "field_threshold_metrics"]

#: Added to the number of positives in the AP denominator by KRT, CSC and L3A.
FIELD_EPSILON = 1e-8

# Entries of the (classes, examples) working arrays per block (memory bound, as in ranking.py).
_BLOCK_ENTRIES = 1 << 18


def field_average_precision(y_true: object, scores: object) -> np.ndarray:
    """Per-class AP as KRT, CSC and L3A compute it: one strict ranking, ties in sort order.

    For each class c, the examples are ordered by ``numpy.argsort(scores[:, c])`` reversed
    (descending score; numpy's default sort kind, as the codebases call it), and

        AP_c = (sum over positives i of  #positives ranked at or above i / rank of i)
               / (#positives + 1e-8).

    This equals scikit-learn's AP when no two scores of a class are equal. Among tied
    scores the rank is the order the sort returns, so a positive tied with negatives can
    get precision 1 or less depending on the rows' order (``y = [1, 0, 0, 0]`` with scores
    ``[.5, .5, .2, .1]`` gives 1 or 0.5, where the order-free AP is 0.5); numpy's default
    sort is not stable and its kernel depends on the CPU, so tied scores can rank
    differently on another machine, exactly as in the codebases. The scores are sorted in
    the dtype given (float16, float32 and float64 sort ties differently; they are never
    converted), as their numpy code sorts whatever the model returned.

    A class without a positive example gets AP 0 (not NaN): 0 / (0 + 1e-8).

    Args:
        y_true: array-like (n_examples, n_classes), binary (bool or 0/1 numbers).
        scores: array-like of the same shape, real numbers (finite), higher = more likely.

    Returns:
        float64 ndarray (n_classes,), every entry in [0, 1]. With zero examples every entry
        is 0; with zero classes the result is empty.

    Raises:
        MlcilError: if an argument is not a 2-D numeric array, the shapes differ, ``y_true``
            has a value other than 0/1, or ``scores`` has a NaN or an infinity.

    Example:
        Column 0 has no tie: the order-free AP, (1/1 + 2/3) / 2. Column 1 has no positive:
        0 (the order-free AP is undefined there).

        >>> import numpy as np
        >>> from mlcil.metrics.field import field_average_precision
        >>> y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
        >>> s = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.4]])
        >>> field_average_precision(y, s).round(4)
        array([0.8333, 0.    ])
    """
    y = binary_2d("y_true", y_true)
    s = _finite_scores("scores", scores)
    check_same_shape("scores", s, "y_true", y)
    n, n_classes = y.shape
    out = np.zeros(n_classes)
    if n == 0 or n_classes == 0:
        return out
    block = max(1, _BLOCK_ENTRIES // n)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    for a in range(0, n_classes, block):
        b = min(a + block, n_classes)
        yb = np.ascontiguousarray(y[:, a:b].T)
        # Descending order = the default ascending argsort, reversed (not a descending sort:
        # reversing also reverses the order of tied scores, which is what their code ranks).
        order = np.argsort(np.ascontiguousarray(s[:, a:b].T), axis=1)[:, ::-1]
        y_sorted = np.take_along_axis(yb, order, axis=1)
        hits = np.cumsum(y_sorted, axis=1)
        precision_at_positives = np.where(y_sorted, hits / ranks, 0.0)
        out[a:b] = precision_at_positives.sum(axis=1) / (hits[:, -1] + FIELD_EPSILON)
    return out


def field_mean_average_precision(y_true: object, scores: object) -> tuple[float, np.ndarray]:
    """mAP as KRT, CSC and L3A compute it: the mean of :func:`field_average_precision` over
    **all** classes, a class without a positive example counting as AP 0.

    Args:
        y_true: array-like (n_examples, n_classes), binary.
        scores: array-like of the same shape, finite, higher = more likely.

    Returns:
        ``(map, no_positive)``: ``map`` is a Python float in [0, 1] (NaN with zero classes,
        where the codebases' ``mAP`` returns 0 instead of a pair); ``no_positive`` is an
        int64 ndarray of the column indices without a positive example -- *counted* as 0
        in ``map`` (mlcil's :func:`mlcil.metrics.mean_average_precision` excludes them).

    Raises:
        MlcilError: as :func:`field_average_precision`.

    Example:
        >>> import numpy as np
        >>> from mlcil.metrics.field import field_mean_average_precision
        >>> y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
        >>> s = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.4]])
        >>> m, no_positive = field_mean_average_precision(y, s)
        >>> round(m, 4), no_positive.tolist()
        (0.4167, [1])
    """
    ap = field_average_precision(y_true, scores)
    y = binary_2d("y_true", y_true)
    no_positive = np.flatnonzero(~y.any(axis=0)).astype(np.int64)
    value = float(ap.mean()) if ap.size else float("nan")
    return value, no_positive


def field_threshold_metrics(y_true: object, y_pred: object, *, undefined: str = "nan") -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 of decided labels as the MLCIL codebases compute them.

    Per class c, with TP_c, FP_c, FN_c the true positives, false positives and false
    negatives of the decisions:

    - P_c = TP_c / (TP_c + FP_c), R_c = TP_c / (TP_c + FN_c), F1_c = 2 P_c R_c / (P_c + R_c),
      each **0 when TP_c = 0** (never predicted, no positive, or nothing right).
    - ``CP`` = mean_c P_c, ``CR`` = mean_c R_c, ``CF1`` = **mean_c F1_c** (the mean of
      per-class F1 -- scikit-learn's ``f1_score(average="macro", zero_division=0)`` -- not
      the harmonic mean of CP and CR that :func:`mlcil.metrics.threshold_metrics` returns).
      Every class counts in the mean, including classes without a positive.
    - ``OP`` = sum TP / sum (TP + FP), ``OR`` = sum TP / sum (TP + FN),
      ``OF1`` = 2 OP OR / (OP + OR).

    ``undefined`` sets the overall scores whose denominator is 0: ``"nan"`` (KRT, CSC: OP
    and OF1 are NaN when nothing is predicted, OR and OF1 when there is no positive, OF1
    when OP + OR = 0) or ``"zero"`` (MULTI-LANE, L3A: 0 in each of those cases).

    Args:
        y_true: array-like (n_examples, n_classes), binary ground truth (bool or 0/1).
        y_pred: array-like of the same shape, binary decisions, e.g.
            ``decide_threshold(proba, 0.8, strict=True)``.
        undefined: ``"nan"`` or ``"zero"``, as above.

    Returns:
        dict with keys ``"CP"``, ``"CR"``, ``"CF1"``, ``"OP"``, ``"OR"``, ``"OF1"`` (that
        order), Python floats in [0, 1] or NaN. With zero classes all six are NaN.

    Raises:
        MlcilError: if an argument is not 2-D, the shapes differ, a value is not 0/1, or
            ``undefined`` is neither ``"nan"`` nor ``"zero"``.

    Example:
        Class 0: P = 1, R = 1/2, F1 = 2/3; class 1: P = 1/2, R = 1, F1 = 2/3. CF1 is their
        mean, 2/3, where the harmonic mean of CP = CR = 3/4 would be 3/4.

        >>> import numpy as np
        >>> from mlcil.metrics.field import field_threshold_metrics
        >>> y_true = np.array([[1, 0], [1, 1], [0, 0]])
        >>> y_pred = np.array([[1, 0], [0, 1], [0, 1]])
        >>> {k: round(v, 4) for k, v in field_threshold_metrics(y_true, y_pred).items()}
        {'CP': 0.75, 'CR': 0.75, 'CF1': 0.6667, 'OP': 0.6667, 'OR': 0.6667, 'OF1': 0.6667}
        >>> field_threshold_metrics(y_true, np.zeros((3, 2)))["OF1"]  # nothing predicted
        nan
        >>> field_threshold_metrics(y_true, np.zeros((3, 2)), undefined="zero")["OF1"]
        0.0
    """
    if undefined not in ("nan", "zero"):
        raise MlcilError(f"undefined: expected 'nan' or 'zero', got {undefined!r}")
    y = binary_2d("y_true", y_true)
    p = binary_2d("y_pred", y_pred)
    check_same_shape("y_pred", p, "y_true", y)
    keys = ("CP", "CR", "CF1", "OP", "OR", "OF1")
    if y.shape[1] == 0:
        return dict.fromkeys(keys, float("nan"))
    tp = np.count_nonzero(y & p, axis=0).astype(np.float64)
    n_pred = np.count_nonzero(p, axis=0).astype(np.float64)
    n_pos = np.count_nonzero(y, axis=0).astype(np.float64)
    hit = tp > 0
    # Where TP_c > 0 both denominators are positive; elsewhere every per-class score is 0.
    prec = np.divide(tp, n_pred, out=np.zeros_like(tp), where=hit)
    rec = np.divide(tp, n_pos, out=np.zeros_like(tp), where=hit)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=hit)
    op = _overall(tp.sum(), n_pred.sum(), undefined)
    orr = _overall(tp.sum(), n_pos.sum(), undefined)
    if np.isnan(op) or np.isnan(orr):
        of1 = float("nan")
    elif op + orr > 0:
        of1 = 2 * op * orr / (op + orr)
    else:
        of1 = float("nan") if undefined == "nan" else 0.0
    return {"CP": float(prec.mean()), "CR": float(rec.mean()), "CF1": float(f1.mean()),
            "OP": op, "OR": orr, "OF1": float(of1)}


def _overall(num: float, den: float, undefined: str) -> float:
    """num / den, or NaN / 0 (``undefined``) when den == 0."""
    if den > 0:
        return float(num / den)
    return float("nan") if undefined == "nan" else 0.0


def _finite_scores(name: str, a: object) -> np.ndarray:
    """A 2-D numeric array of finite values, in its own dtype (never converted: the dtype
    decides how numpy's sort orders ties)."""
    arr = as_2d(name, a)
    if arr.dtype.kind == "f":
        check_finite(name, arr)
    return arr
