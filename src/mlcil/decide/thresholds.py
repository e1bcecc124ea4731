"""Per-class thresholds tuned on held-out rows, and the Decider that turns probabilities into label sets.

Three decision rules (docs/decisions.md, ``Decider``):

- ``global``: one threshold for every class (the field's 0.8 on calibrated probabilities);
- ``per-class``: one threshold per class, tuned on held-out rows of the class's own session
  (maximum F1, or the lowest threshold reaching a target precision);
- ``top-k``: the k highest-scoring classes of each example.

Tuning functions never see test rows: the bench and the learners feed them leave-one-out
or held-out rows of the training sessions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlcil.errors import MlcilError
from mlcil.metrics import FIELD_THRESHOLD, decide_threshold

RULES = ("global", "per-class", "top-k")
#: threshold given to a class with no held-out positive (nothing to tune on).
FALLBACK_THRESHOLD = 0.5


def _sorted_counts(proba: np.ndarray, Y: np.ndarray,
                   weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Columns sorted by decreasing probability: sorted probabilities, cumulative (weighted) true
    positives, cumulative (weighted) predicted count, and the (weighted) positives per column."""
    P = np.asarray(proba, dtype=np.float64)
    Yb = np.asarray(Y).astype(bool)
    if P.ndim != 2 or P.shape != Yb.shape:
        raise MlcilError(f"proba and Y: expected two arrays of the same shape (n, C), got {P.shape} and {Yb.shape}")
    W = np.ones(P.shape) if weights is None else np.broadcast_to(
        np.asarray(weights, dtype=np.float64).reshape(P.shape[0], -1), P.shape)
    order = np.argsort(-P, axis=0, kind="stable")
    p_sorted = np.take_along_axis(P, order, axis=0)
    w_sorted = np.take_along_axis(W, order, axis=0)
    tp = np.cumsum(np.take_along_axis(Yb, order, axis=0) * w_sorted, axis=0)
    return p_sorted, tp, np.cumsum(w_sorted, axis=0), (W * Yb).sum(axis=0)


def best_f1_thresholds(proba: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-class threshold maximising F1 on held-out rows (vectorised over classes).

    Args:
        proba: n×C held-out probabilities (or any scores). Y: n×C binary labels of the same rows.
        weights: optional (n,) or n×C row weights (a row of weight w counts w times).
    Returns:
        (C,) thresholds; deciding ``proba >= threshold`` on these rows attains each class's best
        F1 (candidates are the column's own values). A class with no held-out positive gets
        :data:`FALLBACK_THRESHOLD`.

    >>> best_f1_thresholds(np.array([[0.9], [0.6], [0.4], [0.1]]), np.array([[1], [1], [0], [0]])).tolist()
    [0.6]
    """
    p_sorted, tp, k, pos = _sorted_counts(proba, Y, weights)
    n, C = p_sorted.shape
    if n == 0:
        return np.full(C, FALLBACK_THRESHOLD)
    f1 = 2 * tp / np.maximum(k + pos, 1e-300)
    f1 = _last_of_ties(f1, p_sorted)
    best = np.argmax(f1, axis=0)
    return np.where(pos > 0, p_sorted[best, np.arange(C)], FALLBACK_THRESHOLD)


def precision_thresholds(proba: np.ndarray, Y: np.ndarray, target: float) -> np.ndarray:
    """Per-class lowest threshold whose held-out precision reaches ``target`` (most recall at that precision).

    Args:
        proba: n×C held-out probabilities. Y: n×C binary labels. target: precision in (0, 1].
    Returns:
        (C,) thresholds. A class that never reaches the target gets a threshold above its highest
        held-out probability (it is never predicted: precision undefined rather than below target);
        a class without held-out positives gets :data:`FALLBACK_THRESHOLD`.

    >>> precision_thresholds(np.array([[0.9], [0.6], [0.4], [0.1]]), np.array([[1], [0], [1], [0]]), 0.6).tolist()
    [0.4]
    """
    if not 0.0 < float(target) <= 1.0:
        raise MlcilError(f"target: expected a precision in (0, 1], got {target}")
    p_sorted, tp, k, pos = _sorted_counts(proba, Y)
    n, C = p_sorted.shape
    if n == 0:
        return np.full(C, FALLBACK_THRESHOLD)
    precision = tp / k
    ok = _last_of_ties(precision >= float(target), p_sorted)
    last_ok = n - 1 - np.argmax(ok[::-1], axis=0)
    never = np.nextafter(p_sorted[0], np.inf)
    out = np.where(ok.any(axis=0), p_sorted[last_ok, np.arange(C)], never)
    return np.where(pos > 0, out, FALLBACK_THRESHOLD)


def _last_of_ties(values: np.ndarray, p_sorted: np.ndarray) -> np.ndarray:
    """Keep a cut only where the next value differs: ``>=`` a tied threshold takes the whole tie."""
    tied = np.zeros(p_sorted.shape, dtype=bool)
    tied[:-1] = p_sorted[:-1] == p_sorted[1:]
    if values.dtype == bool:
        return values & ~tied
    return np.where(tied, -np.inf, values)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Decide the k highest-scoring classes of every row (ties broken by column order).

    >>> top_k(np.array([[0.1, 0.7, 0.3]]), 2).tolist()
    [[False, True, True]]
    """
    S = np.asarray(scores)
    if S.ndim != 2:
        raise MlcilError(f"scores: expected a 2-D array (n, C), got shape {S.shape}")
    if int(k) < 1:
        raise MlcilError(f"k: expected a positive number of labels, got {k}")
    k = min(int(k), S.shape[1])
    out = np.zeros(S.shape, dtype=bool)
    if k:
        idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
        np.put_along_axis(out, idx, True, axis=1)
    return out


@dataclass
class Decider:
    """Turns n×C probabilities into label sets by one rule.

    Args:
        rule: 'global' (``threshold`` for every class), 'per-class' (``thresholds``, one per
            column), or 'top-k' (``k`` labels per row).

    >>> Decider("top-k", k=1).decide(np.array([[0.2, 0.9]])).tolist()
    [[False, True]]
    """

    rule: str = "global"
    threshold: float = FIELD_THRESHOLD
    thresholds: np.ndarray | None = field(default=None, repr=False)
    k: int = 1

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise MlcilError(f"rule: expected one of {', '.join(RULES)}, got {self.rule!r}")
        if self.rule == "per-class" and self.thresholds is None:
            raise MlcilError("thresholds: the 'per-class' rule needs one threshold per class")

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """n×C bool decisions."""
        if self.rule == "top-k":
            return top_k(proba, self.k)
        return decide_threshold(proba, self.thresholds if self.rule == "per-class" else self.threshold)
