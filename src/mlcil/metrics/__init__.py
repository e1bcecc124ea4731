"""Metrics of continual multi-label learning: mlcil's (docs/concepts/metrics.md) and the MLCIL codebases'.

Pure, vectorised numpy functions on arrays of shape (n_examples, n_classes); every value
is a fraction in [0, 1] (not percent). Bad input raises :class:`mlcil.errors.MlcilError`
with a one-line message naming the argument and the expected shape.

- Ranking (:mod:`mlcil.metrics.ranking`): :func:`average_precision` (per-class,
  non-interpolated, identical to scikit-learn's) and :func:`mean_average_precision`
  (mean over classes with a positive example, plus the excluded classes).
- Decisions (:mod:`mlcil.metrics.thresholds`): :func:`decide_threshold` (``>=``
  :data:`FIELD_THRESHOLD`, the field's 0.8, by default; ``>`` with ``strict=True``) and
  :func:`threshold_metrics` (CP, CR, CF1, OP, OR, OF1; CF1 = harmonic mean of CP and CR).
- The MLCIL codebases' semantics (:mod:`mlcil.metrics.field`): :func:`field_average_precision`
  (one strict ranking, ties in sort order, AP 0 without a positive),
  :func:`field_mean_average_precision` and :func:`field_threshold_metrics` (CF1 = mean of
  per-class F1, NaN or 0 where undefined), as KRT, CSC, MULTI-LANE and L3A compute them.
- Conventions (:mod:`mlcil.metrics.conventions`): :class:`MetricConvention` and
  :data:`CONVENTIONS` (``mlcil``, ``field``, ``multilane``, ``l3a``) name every such
  choice for a report (``mlcil bench --metrics``).
- Calibration (:mod:`mlcil.metrics.calibration`): :func:`expected_calibration_error`.
- Across sessions (:mod:`mlcil.metrics.continual`): :func:`average_map`,
  :func:`last_map` and :func:`forgetting` (on the fixed full test set).
"""

from mlcil.metrics.calibration import expected_calibration_error
from mlcil.metrics.continual import average_map, forgetting, last_map
from mlcil.metrics.conventions import CONVENTIONS, DEFAULT_CONVENTION, MetricConvention, get_convention
from mlcil.metrics.field import field_average_precision, field_mean_average_precision, field_threshold_metrics
from mlcil.metrics.ranking import average_precision, mean_average_precision
from mlcil.metrics.thresholds import FIELD_THRESHOLD, decide_threshold, threshold_metrics

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "FIELD_THRESHOLD",
    "MetricConvention",
    "average_map",
    "average_precision",
    "decide_threshold",
    "expected_calibration_error",
    "field_average_precision",
    "field_mean_average_precision",
    "field_threshold_metrics",
    "forgetting",
    "get_convention",
    "last_map",
    "mean_average_precision",
    "threshold_metrics",
]
