"""Ranking one label's stored examples by label quality, in the server process without a process pool.

cleanlab's multi-label filters fork a ``multiprocessing.Pool`` sized to the CPU count unless
``n_jobs=1`` is passed; inside a web server the children inherit its signal handlers and hang on
shutdown. Here cleanlab always runs with ``n_jobs=1`` (one label is small work anyway).
"""

from __future__ import annotations

import warnings

import numpy as np


def rank(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(quality, flagged, order) of n examples given label y (bool) and out-of-sample P(y = 1).

    quality: cleanlab's label quality score of the given value (lower = more likely wrong); flagged:
    cleanlab's label-issue filter; order: positions from most to least suspicious. With one given
    value only (every example positive, or every one negative) cleanlab has nothing to contrast:
    quality is the self-confidence (P of the given value) and an example is flagged when the model
    fitted without it gives its value a probability below 0.5.
    """
    y = np.asarray(y, dtype=bool)
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-6, 1 - 1e-6)
    n = len(y)
    if n == 0:
        return np.ones(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    if y.all() or not y.any():
        quality = np.where(y, p, 1 - p)
        return quality, quality < 0.5, np.argsort(quality, kind="stable")
    from cleanlab.multilabel_classification import filter as ml_filter
    from cleanlab.multilabel_classification import get_label_quality_scores

    labels = [[0] if v else [1] for v in y]  # two columns: the label, and its absence
    P = np.column_stack([p, 1 - p])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="May not flag all label issues", category=UserWarning)
        quality = np.asarray(get_label_quality_scores(labels, P), dtype=np.float64)
        flagged = np.asarray(ml_filter.find_label_issues(labels, P, n_jobs=1), dtype=bool)
    return quality, flagged, np.argsort(quality, kind="stable")
