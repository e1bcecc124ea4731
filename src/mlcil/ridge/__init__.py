"""The one ridge core (docs/concepts/learners.md): feature map, sufficient statistics, factorisation, solve,
leave-one-out and λ selection.

Every ridge model in mlcil — the ``analytic`` and ``joint`` learners, the tagging service and the
distributed engine — goes through these functions, so there is one model whichever door a user
comes through. The core knows no learner, no storage and no engine, and runs on NumPy/SciPy
(torch is imported only when a GPU device is asked for):

- :mod:`mlcil.ridge.features`: φ(x) = ReLU(z(x)ᵀR) [⊕ z(x)], z = an input scaling; dense or CSR
  input, chunked so that nothing wider than a bounded block is ever densified.
- :mod:`mlcil.ridge.stats`: immutable statistics (G = Σ w φφᵀ, B = Σ w φyᵀ, n) with exact add,
  subtract and column operations; :func:`partial_statistics` of one block (what an engine maps).
- :mod:`mlcil.ridge.solve`: W = (G + λI)⁻¹B through a cached Cholesky factor, leverages and
  closed-form leave-one-out scores, the λ path from one eigendecomposition, GCV from the statistics alone.
- :mod:`mlcil.ridge.absence`: label absence as linear algebra — systems α G_all + (1 − α) K + λI, their
  n×n dual forms for sessions with fewer rows than features, and the simulated leave-one-out of the α search.
- :mod:`mlcil.ridge.calibrate`: λ and per-class Platt maps from leave-one-out scores of sampled stored rows
  (the tagging service's calibration).
- :mod:`mlcil.ridge.model`: :class:`RidgeModel`, the one solved model (W, calibration, thresholds):
  scores, probabilities and decisions for the learners and the service alike.
- :mod:`mlcil.ridge.digest`: 64-bit content digests of input rows (how a label memory recognises an
  example it has seen; no input is kept).
- :mod:`mlcil.ridge.memory`: size estimates and the memory budget every learner checks before
  allocating its state.
"""

from mlcil.ridge.absence import (SessionSpectrum, absence_system, eig_solve, simulated_loo, simulated_loo_dual,
                                 use_dual, weighted_solve)
from mlcil.ridge.digest import collision_probability, id_digests, occurrence, row_digests
from mlcil.ridge.features import (INCLUDE_X_MAX_FEATURES, L2_SAFE_RANGE, SCALINGS, FeatureMap, check_clip,
                                  fit_scaling, gaussian_projection, resolve_device, rows_per_chunk)
from mlcil.ridge.memory import check_budget, format_bytes, memory_budget
from mlcil.ridge.model import DEFAULT_PLATT, DEFAULT_THRESHOLD, RidgeModel
from mlcil.ridge.solve import (GCV_MAX_DOF, Factor, NotPositiveDefinite, choose_lambda, eigh, gcv_at,
                               gcv_column_curves, gcv_curve, gcv_minimum, gcv_spectrum, lambda_grid, leverage,
                               loo_correct, loo_path_scores, loo_scores, ridge_solve)
from mlcil.ridge.stats import Stats, imbalance_weights, partial_statistics, statistics, tree_sum

__all__ = [
    "DEFAULT_PLATT", "DEFAULT_THRESHOLD", "GCV_MAX_DOF", "INCLUDE_X_MAX_FEATURES", "L2_SAFE_RANGE", "SCALINGS",
    "Factor", "FeatureMap", "NotPositiveDefinite", "RidgeModel", "SessionSpectrum", "Stats",
    "absence_system", "eig_solve", "simulated_loo", "simulated_loo_dual", "use_dual", "weighted_solve",
    "check_budget", "check_clip", "choose_lambda", "collision_probability", "id_digests", "occurrence", "row_digests",
    "eigh", "fit_scaling", "format_bytes", "gaussian_projection", "gcv_at", "gcv_column_curves", "gcv_curve",
    "gcv_minimum", "gcv_spectrum",
    "imbalance_weights", "lambda_grid", "leverage", "loo_correct", "loo_path_scores", "loo_scores", "memory_budget",
    "partial_statistics", "resolve_device", "ridge_solve", "rows_per_chunk", "statistics", "tree_sum",
]
