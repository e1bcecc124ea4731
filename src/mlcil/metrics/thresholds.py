"""Threshold metrics: the CP / CR / CF1 / OP / OR / OF1 family, and the 0.8 decision.

Where AP measures a ranking, these measure *decided* label sets: every (example, class)
pair is predicted present or absent, e.g. by :func:`decide_threshold` on calibrated
probabilities with the field's threshold 0.8 (CSC, KRT, MULTI-LANE), and the decisions are
compared with the ground truth per class ("C", macro) and over all pairs ("O", overall,
micro). This module is mlcil's own convention (``--metrics mlcil``, the default): CF1 is
the harmonic mean of the averaged CP and CR, as in ML-GCN's evaluation meter (Chen et al.,
CVPR 2019) and static multi-label papers after it, with the zero-division cases pinned
down as scikit-learn's ``zero_division=0``. The MLCIL codebases (KRT, CSC, MULTI-LANE, L3A)
compute CF1 differently -- as the mean of per-class F1 -- and decide with ``p > threshold``:
their semantics are in :mod:`mlcil.metrics.field`, and :mod:`mlcil.metrics.conventions`
names both.

Values are fractions in [0, 1], not percent.
"""

from __future__ import annotations

import numpy as np

from mlcil.errors import MlcilError
from mlcil.metrics._validation import as_array, binary_2d, check_same_shape, finite_float_2d

__all__ = ["FIELD_THRESHOLD", "decide_threshold", "threshold_metrics"]

#: The field's convention for CF1/OF1: decide on probabilities at 0.8 (CSC, KRT, MULTI-LANE; L3A reports
#: 0.525); docs/concepts/metrics.md. A metric convention, not the decision rule of a calibrated model (the ridge
#: core decides at its own ``mlcil.ridge.DEFAULT_THRESHOLD``, 0.5).
FIELD_THRESHOLD = 0.8


def threshold_metrics(y_true: object, y_pred: object) -> dict[str, float]:
    """Per-class (C*) and overall (O*) precision, recall and F1 of decided labels.

    With, for each class c, TP_c = #examples predicted c that carry c, FP_c = #predicted
    c that do not, FN_c = #carrying c that are not predicted, and C = number of classes:

    - ``CP`` = (1/C) sum_c TP_c / (TP_c + FP_c): per-class precision averaged over classes.
      A class that is never predicted (TP_c + FP_c = 0) contributes **0**, as in
      ML-GCN's meter (which sets the denominator to 1) and in
      ``sklearn.metrics.precision_score(average="macro", zero_division=0)``.
    - ``CR`` = (1/C) sum_c TP_c / (TP_c + FN_c): per-class recall averaged over classes.
      A class with no positive example (TP_c + FN_c = 0) contributes **0** and still
      counts in C, as in ``recall_score(average="macro", zero_division=0)``. (ML-GCN's
      meter divides by zero there and returns NaN; mlcil's test sets normally contain a
      positive of every seen class, so the two agree in practice.)
    - ``CF1`` = 2 CP CR / (CP + CR): the harmonic mean **of the two averages** (ML-GCN's
      definition), not the mean of per-class F1 scores (sklearn's
      ``f1_score(average="macro")``), which is what KRT, CSC, MULTI-LANE and L3A report
      (:func:`mlcil.metrics.field.field_threshold_metrics`). Both use the same per-class
      precisions and recalls; the harmonic mean is concave, so by Jensen's inequality the
      mean of per-class F1 is never larger than this CF1. 0 when CP + CR = 0.
    - ``OP`` = sum_c TP_c / sum_c (TP_c + FP_c): precision over all (example, class)
      pairs, 0 when nothing is predicted.
    - ``OR`` = sum_c TP_c / sum_c (TP_c + FN_c): recall over all pairs, 0 when there is no
      positive pair.
    - ``OF1`` = 2 OP OR / (OP + OR), 0 when OP + OR = 0; it equals
      ``f1_score(average="micro", zero_division=0)``.

    The C* numbers weight every class equally (rare classes matter as much as frequent
    ones); the O* numbers weight every pair equally (dominated by frequent classes).

    Args:
        y_true: array-like (n_examples, n_classes), binary ground truth (bool or 0/1).
        y_pred: array-like of the same shape, binary decisions (bool or 0/1), e.g. the
            output of :func:`decide_threshold`. Scores or probabilities are rejected:
            decide first.

    Returns:
        dict with the keys ``"CP"``, ``"CR"``, ``"CF1"``, ``"OP"``, ``"OR"``, ``"OF1"``
        (in that order), each a Python float in [0, 1]. With zero classes the class
        averages are undefined and all six values are NaN; with zero examples (but some
        classes) all six are 0 by the zero-division conventions above.

    Raises:
        MlcilError: if an argument is not 2-D, the shapes differ, or a value is not 0/1.

    Example:
        >>> import numpy as np
        >>> from mlcil.metrics import threshold_metrics
        >>> y_true = np.array([[1, 0], [1, 1], [0, 1]])
        >>> y_pred = np.array([[1, 0], [0, 1], [1, 0]])
        >>> {k: round(v, 4) for k, v in threshold_metrics(y_true, y_pred).items()}
        {'CP': 0.75, 'CR': 0.5, 'CF1': 0.6, 'OP': 0.6667, 'OR': 0.5, 'OF1': 0.5714}
    """
    y = binary_2d("y_true", y_true)
    p = binary_2d("y_pred", y_pred)
    check_same_shape("y_pred", p, "y_true", y)
    n_classes = y.shape[1]
    if n_classes == 0:
        return dict.fromkeys(("CP", "CR", "CF1", "OP", "OR", "OF1"), float("nan"))
    tp = np.count_nonzero(y & p, axis=0).astype(np.float64)
    n_pred = np.count_nonzero(p, axis=0).astype(np.float64)
    n_pos = np.count_nonzero(y, axis=0).astype(np.float64)
    cp = float(np.mean(_safe_div(tp, n_pred)))
    cr = float(np.mean(_safe_div(tp, n_pos)))
    op = float(_safe_div(tp.sum(), n_pred.sum()))
    orr = float(_safe_div(tp.sum(), n_pos.sum()))
    return {
        "CP": cp,
        "CR": cr,
        "CF1": _harmonic(cp, cr),
        "OP": op,
        "OR": orr,
        "OF1": _harmonic(op, orr),
    }


def decide_threshold(proba: object, threshold: float | object = FIELD_THRESHOLD, *,
                     strict: bool = False) -> np.ndarray:
    """Decide labels by thresholding: ``proba >= threshold`` (or ``>`` with ``strict``), elementwise.

    mlcil's default compares with ``>=``, as ML-GCN's meter does (``scores >= 0`` on
    logits): a value exactly equal to the threshold is decided *present*. The MLCIL
    codebases (KRT, CSC, MULTI-LANE, L3A) decide with ``p > threshold`` on probabilities
    (torch's ``preds.gt(thre)``); ``strict=True`` reproduces that, including torch's
    comparison in the dtype of the probabilities: the threshold is first cast to the dtype of
    a float32 or float16 ``proba`` (so a float32 0.8 is *not* above 0.8, as in torch,
    whereas comparing it with the float64 0.8 would say it is). Scores sitting exactly on
    the threshold are common with rounded or saturated calibrations, and the two rules
    then differ by several points of recall (README, "Metric conventions").

    The default 0.8 is meaningful only for calibrated probabilities (``learner.proba``),
    not for raw scores such as ridge outputs, whose scale is arbitrary; the range of
    ``proba`` is not checked, so ``decide_threshold(logits, 0.0)`` reproduces ML-GCN's
    decision on logits.

    Args:
        proba: array-like (n_examples, n_classes) of finite numbers, normally
            probabilities in [0, 1].
        threshold: a finite scalar applied to every class (default 0.8), or an
            array-like of shape (n_classes,) with one threshold per class (column).
        strict: ``False`` (default): present iff ``proba >= threshold``; ``True``:
            present iff ``proba > threshold``, compared in ``proba``'s float dtype.

    Returns:
        bool ndarray of shape (n_examples, n_classes): True where the label is decided
        present. Feed it to :func:`threshold_metrics`.

    Raises:
        MlcilError: if ``proba`` is not a 2-D array of finite numbers, or ``threshold``
            is not a finite scalar or an array of shape (n_classes,).

    Example:
        >>> import numpy as np
        >>> from mlcil.metrics import decide_threshold
        >>> decide_threshold(np.array([[0.9, 0.8, 0.1]])).tolist()
        [[True, True, False]]
        >>> decide_threshold(np.array([[0.9, 0.8, 0.1]]), strict=True).tolist()
        [[True, False, False]]
        >>> decide_threshold(np.array([[0.9, 0.8, 0.1]]), [0.95, 0.5, 0.05]).tolist()
        [[False, True, True]]
    """
    pr = finite_float_2d("proba", proba)
    th = as_array("threshold", threshold)
    if th.ndim == 0:
        pass
    elif th.ndim == 1 and th.shape[0] == pr.shape[1]:
        th = th[None, :]
    else:
        raise MlcilError(
            f"threshold: expected a scalar or shape ({pr.shape[1]},) to match the columns of proba, "
            f"got shape {th.shape}"
        )
    if not np.all(np.isfinite(th)):
        raise MlcilError(f"threshold: expected finite values, got {np.asarray(threshold).tolist()}")
    if not strict:
        return pr >= th
    given = np.asarray(proba)
    if given.dtype.kind == "f":  # compare in the probabilities' own precision, as torch does
        return given > th.astype(given.dtype)
    return pr > th


def _safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num / den with 0 where den == 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _harmonic(a: float, b: float) -> float:
    """2ab / (a + b), 0 when a + b == 0."""
    return 2.0 * a * b / (a + b) if a + b > 0 else 0.0
