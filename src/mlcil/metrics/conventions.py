"""Named metric conventions: which AP, mAP, decision rule and F1 formulas a report uses.

The same scores give different "mAP" and "CF1" depending on whose code computes them
(:mod:`mlcil.metrics.field` lists the differences and where each rule was read). A
:class:`MetricConvention` fixes every such choice under one name, so that a report can say
which one produced its numbers (``mlcil bench --metrics NAME``):

=============  =========================  ===========================  ========  ========================  ==========
name           AP ties                    classes without a positive   decision  CF1                       OP/OR/OF1
                                                                                                           undefined
=============  =========================  ===========================  ========  ========================  ==========
``mlcil``      order-free (tie groups)    excluded (and reported)      p >= thr  harmonic mean of CP, CR   0
``field``      sort order (row order)     counted as AP 0              p > thr   mean of per-class F1      NaN
``multilane``  order-free                 excluded                     p > thr   mean of per-class F1      0
``l3a``        sort order (row order)     counted as AP 0              p > thr   mean of per-class F1      0
=============  =========================  ===========================  ========  ========================  ==========

``mlcil`` is the default (docs/concepts/metrics.md). ``field`` is KRT and CSC exactly; its mAP is
also L3A's. ``multilane`` and ``l3a`` are the two codebases that differ from it: MULTI-LANE
in its AP (torchmetrics, order-free, classes without a positive left out), L3A only in
returning 0 rather than NaN for undefined overall scores (and in reporting F1 at threshold
0.525: pass ``--threshold 0.525`` to match it). A convention's ``threshold`` records the decision
threshold its codebase reports CF1/OF1 at, where it has its own (``l3a``: 0.525; None for the
others, which use the report's, 0.8 by default); it is a recorded value, and a report applies it
only when asked to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlcil.errors import MlcilError
from mlcil.metrics.field import field_average_precision, field_threshold_metrics
from mlcil.metrics.ranking import average_precision
from mlcil.metrics.thresholds import decide_threshold, threshold_metrics

__all__ = ["CONVENTIONS", "DEFAULT_CONVENTION", "MetricConvention", "get_convention"]

DEFAULT_CONVENTION = "mlcil"


@dataclass(frozen=True)
class MetricConvention:
    """One way of computing AP, mAP and the CP/CR/CF1/OP/OR/OF1 family.

    Attributes:
        name: registry name (``--metrics``).
        ties: ``"order-free"``: a group of tied scores enters the ranking at once
            (scikit-learn, :func:`mlcil.metrics.average_precision`); ``"row-order"``: one
            strict ranking in numpy's sort order (:func:`mlcil.metrics.field.field_average_precision`).
        no_positive: a class without a positive example is ``"exclude"``-d from mAP (its
            AP is NaN) or counted as AP 0 (``"zero"``).
        strict: decide ``p > threshold`` (True) or ``p >= threshold`` (False).
        cf1: ``"harmonic"`` (2 CP CR / (CP + CR), :func:`mlcil.metrics.threshold_metrics`)
            or ``"mean-f1"`` (mean of per-class F1, :func:`mlcil.metrics.field.field_threshold_metrics`).
        undefined: value of OP, OR, OF1 when their denominator is 0: ``"zero"`` or ``"nan"``
            (``"nan"`` exists only with ``cf1="mean-f1"``, as in KRT and CSC).
        follows: the codebases whose evaluation this convention reproduces (for reports).
        threshold: the probability threshold that codebase reports CF1/OF1 at, where it has one
            of its own (L3A: 0.525), else None (the report's threshold).
    """

    name: str
    ties: str
    no_positive: str
    strict: bool
    cf1: str
    undefined: str
    follows: str
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and (isinstance(self.threshold, bool) or not 0 < self.threshold < 1):
            raise MlcilError(f"threshold: expected a probability in (0, 1) or None, got {self.threshold!r}")
        for attr, allowed in (("ties", ("order-free", "row-order")), ("no_positive", ("exclude", "zero")),
                              ("cf1", ("harmonic", "mean-f1")), ("undefined", ("zero", "nan"))):
            if getattr(self, attr) not in allowed:
                raise MlcilError(f"{attr}: expected one of {list(allowed)}, got {getattr(self, attr)!r}")
        if self.cf1 == "harmonic" and self.undefined != "zero":
            raise MlcilError("undefined: 'nan' is only defined with cf1='mean-f1' (the codebases' F1 family)")

    def average_precision(self, y_true: object, scores: object) -> np.ndarray:
        """Per-class AP (n_classes,) under this convention: NaN for a class without a
        positive when ``no_positive == "exclude"``, 0 when ``"zero"``."""
        if self.ties == "order-free":
            ap = average_precision(y_true, scores)
            return np.nan_to_num(ap, nan=0.0) if self.no_positive == "zero" else ap
        ap = field_average_precision(y_true, scores)
        if self.no_positive == "exclude":
            y = np.asarray(y_true)
            ap[~(y != 0).any(axis=0)] = np.nan
        return ap

    def mean_average_precision(self, y_true: object, scores: object) -> tuple[float, np.ndarray]:
        """``(mAP, no_positive)``: the mean of :meth:`average_precision` over the classes it
        counts (NaN if none), and the int64 column indices without a positive example
        (excluded from the mean, or counted as 0, per ``no_positive``)."""
        ap = self.average_precision(y_true, scores)
        y = np.asarray(y_true)
        no_positive = np.flatnonzero(~(y != 0).any(axis=0)).astype(np.int64) if y.ndim == 2 else np.zeros(0, np.int64)
        counted = ap[~np.isnan(ap)]
        return (float(counted.mean()) if counted.size else float("nan")), no_positive

    def decide(self, proba: object, threshold: float | object) -> np.ndarray:
        """Decisions at ``threshold`` (scalar or per class): ``p > thr`` or ``p >= thr``."""
        return decide_threshold(proba, threshold, strict=self.strict)

    def threshold_metrics(self, y_true: object, y_pred: object) -> dict[str, float]:
        """CP, CR, CF1, OP, OR, OF1 of binary decisions under this convention."""
        if self.cf1 == "harmonic":
            return threshold_metrics(y_true, y_pred)
        return field_threshold_metrics(y_true, y_pred, undefined=self.undefined)

    def describe(self) -> str:
        """One line for reports: what each rule is."""
        return (f"`{self.name}` ({self.follows}): AP with {'tie groups' if self.ties == 'order-free' else 'ties in sort order'}, "
                f"classes without a test positive {'excluded' if self.no_positive == 'exclude' else 'counted as AP 0'}; "
                f"decided p {'>' if self.strict else '≥'} threshold; CF1 = "
                f"{'harmonic mean of CP and CR' if self.cf1 == 'harmonic' else 'mean of per-class F1'}; "
                f"undefined OP/OR/OF1 = {'NaN' if self.undefined == 'nan' else '0'}")


CONVENTIONS: dict[str, MetricConvention] = {
    c.name: c for c in (
        MetricConvention("mlcil", ties="order-free", no_positive="exclude", strict=False, cf1="harmonic",
                         undefined="zero", follows="mlcil's default, docs/concepts/metrics.md; scikit-learn AP, ML-GCN CF1"),
        MetricConvention("field", ties="row-order", no_positive="zero", strict=True, cf1="mean-f1",
                         undefined="nan", follows="KRT and CSC; L3A's mAP"),
        MetricConvention("multilane", ties="order-free", no_positive="exclude", strict=True, cf1="mean-f1",
                         undefined="zero", follows="MULTI-LANE"),
        MetricConvention("l3a", ties="row-order", no_positive="zero", strict=True, cf1="mean-f1",
                         undefined="zero", follows="L3A; it reports F1 at threshold 0.525", threshold=0.525),
    )
}


def get_convention(name: str | MetricConvention) -> MetricConvention:
    """The registered convention called ``name`` (a :class:`MetricConvention` passes through)."""
    if isinstance(name, MetricConvention):
        return name
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise MlcilError(f"metrics: unknown convention {name!r}; expected one of {sorted(CONVENTIONS)}") from None
