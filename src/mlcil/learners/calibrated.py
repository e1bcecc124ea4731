"""``Calibrated``: held-out calibration and tuned thresholds for any learner.

Learners whose scores are not probabilities (prototype cosines, LDA discriminants, a head
trained with absent labels read as negatives) get the library's calibration here (docs/decisions.md): each
session's rows are split (seeded); the wrapped learner learns the larger part and, right
after that session, a per-class calibration (Platt or isotonic) and a per-class F1-optimal
threshold are fitted on the held-out rows of the new classes' own session. Test rows are
never read. The price is the held-out rows, which the wrapped learner never sees; the
``Analytic`` family needs no wrapper (it calibrates on exact leave-one-out scores).

A learner (it wraps one), so it lives in :mod:`mlcil.learners`; the calibration and threshold
functions it applies are :mod:`mlcil.decide`'s pure functions on arrays.
"""

from __future__ import annotations

import numpy as np

from mlcil.data.dataset import take_rows
from mlcil.decide.calibration import apply_calibration, concat_calibration, fit_calibration, select_calibration
from mlcil.decide.thresholds import best_f1_thresholds
from mlcil.errors import MlcilError
from mlcil.learners.base import Learner
from mlcil.protocols.session import Session

#: sessions with fewer rows than this are calibrated on their training rows (nothing to hold out).
MIN_HOLDOUT_ROWS = 2


class Calibrated(Learner):
    """Wrap ``base`` so that ``proba`` is calibrated and ``thresholds_`` tuned on held-out rows.

    Args:
        base: the learner to wrap (fresh, not yet fitted).
        method: 'platt' or 'isotonic'.
        holdout: fraction of each session's rows held out for calibration.
        seed: seeds the split.

    >>> from mlcil.learners import make_learner
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)).astype(np.float32)
    >>> Y = (X[:, :2] > 0).astype(np.uint8)
    >>> model = Calibrated(make_learner("prototype")).learn(Session(X, Y, np.array([0, 1]), np.arange(200)))
    >>> model.proba(X).shape, model.thresholds_.shape
    ((200, 2), (2,))
    """

    name = "calibrated"
    distributable = True  # the engine goes to the wrapped learner, which refuses it if it is not distributable

    def __init__(self, base: Learner, method: str = "platt", holdout: float = 0.2, seed: int = 0) -> None:
        self.base = base
        self.method = method
        self.holdout = holdout
        self.seed = seed

    @property
    def needs_full_labels(self) -> bool:  # type: ignore[override]
        return self.base.needs_full_labels

    @property
    def n_features_(self) -> int | None:
        return getattr(self.base, "n_features_", None)

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        if not 0.0 < float(self.holdout) < 1.0:
            raise MlcilError(f"calibrated: holdout must be in (0, 1), got {self.holdout}")
        n = Y.shape[0]
        t = len(getattr(self, "session_holdout_", []))
        perm = np.random.default_rng(int(self.seed) * 7919 + t).permutation(n)
        n_hold = int(round(float(self.holdout) * n))
        if n_hold < MIN_HOLDOUT_ROWS or n - n_hold < 1:
            train, hold = np.arange(n), np.arange(n)  # too small to split: calibrate in-sample
        else:
            train, hold = np.sort(perm[n_hold:]), np.sort(perm[:n_hold])
        self.base.learn(Session(take_rows(X, train), Y[train], classes, np.asarray(train)), engine=self._engine)
        # columns of this session's classes in the base learner's order (a full-label learner such as
        # joint-sgd relearns every seen class each session: its calibration is then refitted whole)
        position = {c: i for i, c in enumerate(classes.tolist())}
        cols = [j for j, c in enumerate(self.base.classes_.tolist()) if c in position]
        S = self.base.scores(take_rows(X, hold))[:, cols]
        Y_hold = Y[hold][:, [position[int(self.base.classes_[j])] for j in cols]]
        calib = fit_calibration(self.method, S, Y_hold)
        thresholds = best_f1_thresholds(apply_calibration(calib, S), Y_hold)
        if self.base.needs_full_labels:
            self.calibration_, self.thresholds_ = calib, thresholds
        else:
            self.calibration_ = concat_calibration(getattr(self, "calibration_", None), calib)
            self.thresholds_ = np.concatenate([getattr(self, "thresholds_", np.zeros(0)), thresholds])
        self.session_holdout_ = getattr(self, "session_holdout_", []) + [int(len(hold)) if len(hold) < n else 0]
        self._classes = self.base.classes_.copy()

    def scores(self, X) -> np.ndarray:
        return self.base.scores(X)

    def proba(self, X) -> np.ndarray:
        return apply_calibration(self.calibration_, self.base.scores(X)).astype(np.float32)

    def _forget(self, keep: np.ndarray) -> None:
        self.base.forget(self.classes_[~keep])
        self.calibration_ = select_calibration(self.calibration_, keep)
        self.thresholds_ = self.thresholds_[keep]

    @property
    def state_bytes(self) -> int:  # type: ignore[override]
        return self.base.state_bytes

    def save(self, path):
        raise MlcilError("calibrated: save the wrapped learner (model.base) and its calibration_ separately")
