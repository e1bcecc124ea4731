"""Metrics of continual multi-label learning, as the field defines them (DESIGN.md section 4).

Pure, vectorised numpy functions on arrays of shape (n_examples, n_classes); every value
is a fraction in [0, 1] (not percent). Bad input raises :class:`mlcil.errors.MlcilError`
with a one-line message naming the argument and the expected shape.

- Ranking (:mod:`mlcil.metrics.ranking`): :func:`average_precision` (per-class,
  non-interpolated, identical to scikit-learn's) and :func:`mean_average_precision`
  (mean over classes with a positive example, plus the excluded classes).
- Decisions (:mod:`mlcil.metrics.thresholds`): :func:`decide_threshold` (``>=`` 0.8 by
  default) and :func:`threshold_metrics` (CP, CR, CF1, OP, OR, OF1).
- Calibration (:mod:`mlcil.metrics.calibration`): :func:`expected_calibration_error`.
- Across sessions (:mod:`mlcil.metrics.continual`): :func:`average_map`,
  :func:`last_map` and :func:`forgetting` (on the fixed full test set).
"""

from mlcil.metrics.calibration import expected_calibration_error
from mlcil.metrics.continual import average_map, forgetting, last_map
from mlcil.metrics.ranking import average_precision, mean_average_precision
from mlcil.metrics.thresholds import DEFAULT_THRESHOLD, decide_threshold, threshold_metrics

__all__ = [
    "DEFAULT_THRESHOLD",
    "average_map",
    "average_precision",
    "decide_threshold",
    "expected_calibration_error",
    "forgetting",
    "last_map",
    "mean_average_precision",
    "threshold_metrics",
]
