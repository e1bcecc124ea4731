"""The service's model as the library's learner file: an ``Analytic`` learner (strategy 'negative') whose
``classes_`` are the label names and whose ``scores`` and ``proba`` equal the service's.

Built by ``Analytic.from_statistics`` from the same feature map, statistics, λ, calibration and
thresholds the service predicts with; save it with ``learner.save(path)`` and read it with
``mlcil.learners.Learner.load``.
"""

from __future__ import annotations

from mlcil.serve.model import Model, calibration_of, thresholds_of
from mlcil.serve.state import ModelState


def to_learner(state: ModelState, model: Model, seed: int = 0):
    """An ``Analytic`` learner equal to ``model`` (built from ``state``, the statistics it was solved from).

    Raises ValueError when the model has no example or no label (nothing to export)."""
    from mlcil.learners.analytic import Analytic

    if state.stats is None or model.ridge is None:
        raise ValueError("the model has no example yet: nothing to export")
    if not state.labels:
        raise ValueError("the model has no label: nothing to export")
    return Analytic.from_statistics(model.ridge.fmap, state.stats, float(state.lam), classes=state.names,
                                    calibration=calibration_of(state.labels), thresholds=thresholds_of(state.labels),
                                    seed=int(seed))
