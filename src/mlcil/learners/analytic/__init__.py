"""``Analytic``: exact, exemplar-free multi-label continual learning (docs/concepts/learners.md), one concept per module.

- :mod:`.learner`: the class :class:`Analytic` (parameters, learning, solve, scores, ``from_statistics``).
- :mod:`.exact`: spawn, merge, forgetting classes and examples (exact).
- :mod:`.frame`: feature map, input scaling, state budget. :mod:`.lambdas`: λ selection.
- :mod:`.absence`: label-absence strategies (α search, pseudo-labels). :mod:`.prior`: the name prior.
- :mod:`.memory`: the label memory (its table: :mod:`mlcil.learners.label_memory`).
- :mod:`.calibration`: later recalibration of old classes.

The linear algebra of label absence is the ridge core's :mod:`mlcil.ridge.absence`; its names are re-exported
here for code that imported them from this module. Options and measurements: ``docs/learners/analytic.md``.
"""

from mlcil.learners.analytic.absence import (ALPHA_GRID, ALPHA_SEARCH_ROWS, DEFAULT_ALPHA, PSEUDO_CALIBRATIONS,
                                             STRATEGIES)
from mlcil.learners.analytic.frame import SCALING_CHOICES, SCALING_SEARCH_FEATURES, SCALING_SEARCH_ROWS
from mlcil.learners.analytic.lambdas import GCV_GRID, LAMBDA_SEARCHES
from mlcil.learners.analytic.learner import Analytic
from mlcil.learners.analytic.memory import MEMORIES, MEMORY_KEYS
from mlcil.ridge.absence import SessionSpectrum, absence_system, eig_solve, use_dual, weighted_solve

__all__ = [
    "ALPHA_GRID", "ALPHA_SEARCH_ROWS", "DEFAULT_ALPHA", "GCV_GRID", "LAMBDA_SEARCHES", "MEMORIES", "MEMORY_KEYS",
    "PSEUDO_CALIBRATIONS", "SCALING_CHOICES", "SCALING_SEARCH_FEATURES", "SCALING_SEARCH_ROWS", "STRATEGIES",
    "Analytic", "SessionSpectrum", "absence_system", "eig_solve", "use_dual", "weighted_solve",
]
