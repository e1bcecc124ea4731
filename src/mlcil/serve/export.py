"""The service's model as the library's learner file: an ``Analytic`` learner (strategy 'negative') whose
``classes_`` are the label names and whose ``scores`` and ``proba`` equal the service's.

Built by ``Analytic.from_statistics`` from the same feature map, statistics, λ, calibration and
thresholds the service predicts with; save it with ``learner.save(path)`` and read it with
``mlcil.learners.Learner.load``.
"""

from __future__ import annotations

import numpy as np

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
    fmap = model.ridge.fmap
    calibration = calibration_of(state.labels)
    thresholds = thresholds_of(state.labels)
    if hasattr(Analytic, "from_statistics"):
        return Analytic.from_statistics(fmap, state.stats, float(state.lam), classes=state.names,
                                        calibration=calibration, thresholds=thresholds)
    return _fitted_attributes(Analytic, state, model, seed, calibration, thresholds)


def _fitted_attributes(Analytic, state: ModelState, model: Model, seed: int, calibration, thresholds):
    """Until ``Analytic.from_statistics`` exists: the learner's fitted attributes written one by one
    (class ids = label ids). Remove with it."""
    import torch

    fmap = model.ridge.fmap
    ids = np.array(state.label_ids, dtype=np.int64)
    learner = Analytic(M=fmap.M, include_x=fmap.include_x, scaling=fmap.scaling, strategy="negative",
                       calibration="platt", seed=int(seed))
    learner.n_features_ = fmap.d
    learner.include_x_ = fmap.include_x
    learner.scaling_ = fmap.scaling
    learner.shift_, learner.scale_ = fmap.shift, fmap.scale
    learner.R_ = torch.from_numpy(fmap.R.copy())
    learner.lambda_, learner.alpha_ = float(state.lam), 1.0
    learner.G_, learner.B_ = [torch.from_numpy(state.stats.G.copy())], [torch.from_numpy(state.stats.B.copy())]
    learner.session_classes_ = [ids.tolist()]
    learner.session_rows_ = [state.n_examples]
    learner.calibration_ = {k: v.copy() for k, v in calibration.items()}
    learner.thresholds_ = thresholds
    learner.W_ = torch.from_numpy(model.ridge.W.copy())
    learner._classes = ids
    return learner
