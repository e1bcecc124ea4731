"""Decisions: calibrated probabilities, per-class thresholds, top-k, and the label-error audit.

- :mod:`mlcil.decide.calibration`: Platt scaling and isotonic regression per class, fitted on
  held-out (or leave-one-out) scores of the class's own session.
- :mod:`mlcil.decide.thresholds`: per-class thresholds (max F1, target precision), top-k, and
  the :class:`Decider` that applies one rule.
- :mod:`mlcil.decide.audit`: rank the examples whose given labels most likely contain an
  error (cleanlab on out-of-sample probabilities: closed-form leave-one-out or k-fold).

Pure functions on arrays: ``decide`` imports no learner and no protocol (it sits below both in
the package layers, tests/test_layers.py). The wrapper that gives any learner held-out
calibration is :class:`mlcil.learners.calibrated.Calibrated`; the audit of a whole stream is
:func:`mlcil.bench.audit.audit_stream`.
"""

from mlcil.decide.calibration import (
    apply_calibration,
    apply_isotonic,
    apply_platt,
    fit_calibration,
    fit_isotonic,
    fit_platt,
)
from mlcil.decide.thresholds import Decider, best_f1_thresholds, precision_thresholds, top_k

__all__ = [
    "Decider",
    "apply_calibration",
    "apply_isotonic",
    "apply_platt",
    "best_f1_thresholds",
    "fit_calibration",
    "fit_isotonic",
    "fit_platt",
    "precision_thresholds",
    "top_k",
]
