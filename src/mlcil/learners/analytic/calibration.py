"""Later recalibration of old classes in :class:`~mlcil.learners.analytic.Analytic` (``calibrate_later``).

A class's calibration (Platt or isotonic) is fitted on leave-one-out scores of its own session's rows, where
every row carries one of that session's classes. With ``calibrate_later`` each later session's rows are added
as negatives of every old class (their labels for old classes are absent; read as 0, as 'negative' does) and the
old classes' calibration and F1-optimal thresholds are refitted. Only scores and labels are kept, never inputs.
"""

from __future__ import annotations

import numpy as np

from mlcil.decide.calibration import apply_calibration, concat_calibration, fit_calibration, select_calibration
from mlcil.decide.thresholds import best_f1_thresholds


class LaterCalibration:
    """The learner's recalibration method (mixed into :class:`~mlcil.learners.analytic.Analytic`)."""

    def _recalibrate_old(self, phi_sub: np.ndarray, n_rows: int) -> None:
        """Add the new session's rows as negatives of every old class (scores from the model that
        has just learned them), then refit the old classes' calibration and thresholds."""
        S = phi_sub.astype(np.float64) @ self.W_
        k_new = len(self.session_classes_[-1])
        newest = np.arange(len(self.classes_)) >= len(self.classes_) - k_new
        data, calibration, thresholds, col = [], None, [], 0
        for cls, d in zip(self.session_classes_[:-1], self.calib_data_[:-1]):
            k = len(cls)
            d = {"scores": np.vstack([d["scores"], S[:, col:col + k].astype(np.float32)]),
                 "labels": np.vstack([d["labels"], np.zeros((len(S), k), np.uint8)]),
                 "weights": np.concatenate([d["weights"], np.full(len(S), n_rows / max(len(S), 1))])}
            calib = fit_calibration(self.calibration, d["scores"], d["labels"], d["weights"])
            calibration = concat_calibration(calibration, calib)
            thresholds.append(best_f1_thresholds(apply_calibration(calib, d["scores"]), d["labels"], d["weights"]))
            data.append(d)
            col += k
        # the newest session keeps the calibration fitted on its own rows in _learn
        self.calib_data_ = data + self.calib_data_[-1:]
        self.calibration_ = concat_calibration(calibration, select_calibration(self.calibration_, newest))
        self.thresholds_ = np.concatenate(thresholds + [self.thresholds_[newest]])

