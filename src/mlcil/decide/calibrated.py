"""Deprecated: :class:`Calibrated` moved to :mod:`mlcil.learners.calibrated` (it is a learner).

``from mlcil.decide.calibrated import Calibrated`` still works for now, with a
``DeprecationWarning``; :mod:`mlcil.decide` itself imports no learner (``decide`` sits below
``learners`` in the package layers, tests/test_layers.py). Delete this module once nothing
imports it.
"""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("Calibrated", "MIN_HOLDOUT_ROWS"):
        warnings.warn("mlcil.decide.calibrated is deprecated: import Calibrated from mlcil.learners.calibrated",
                      DeprecationWarning, stacklevel=2)
        from mlcil.learners import calibrated  # layers: allowed here only (tests/test_layers.py, TRANSITIONAL)

        return getattr(calibrated, name)
    raise AttributeError(f"module 'mlcil.decide.calibrated' has no attribute {name!r}")
