"""Decisions: calibration of scores into probabilities, thresholds."""

from mlcil.decide.calibration import apply_platt, fit_platt

__all__ = ["apply_platt", "fit_platt"]
