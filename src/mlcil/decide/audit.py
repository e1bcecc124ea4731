"""Label-error audit: which examples' given labels most likely contain an error?

Annotators miss tags and add wrong ones. For the rows of a session, the audit compares each
given label vector with **out-of-sample** predicted probabilities and lets cleanlab's
multi-label methods (Thyagarajan et al., "Identifying Incorrect Annotations in Multi-Label
Classification Data", 2022) score and flag the rows:

- label quality per row: ``cleanlab.multilabel_classification.get_label_quality_scores``
  (lower = more likely mislabeled);
- flagged rows: ``cleanlab.multilabel_classification.filter.find_label_issues``;
- which tags are suspect: ``find_multilabel_issues_per_class`` (a given 0 that looks present
  is a *missing* tag, a given 1 that looks absent a *wrong* tag).

Out-of-sample probabilities come from the ``Analytic`` family's exact ridge leave-one-out (no
retraining: nearly free; :func:`mlcil.bench.audit.loo_proba`) or from :func:`kfold_proba` for any
scikit-learn-style model (k fits). cleanlab is used, not re-implemented.

Pure functions on arrays (and scikit-learn models): the drivers that train mlcil learners over a
protocol's stream (:func:`mlcil.bench.audit.audit_stream`) live in :mod:`mlcil.bench.audit`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from mlcil.data.dataset import take_rows
from mlcil.errors import MlcilError


def _cleanlab():
    try:
        from cleanlab.multilabel_classification import filter as ml_filter
        from cleanlab.multilabel_classification import get_label_quality_scores
    except ImportError as exc:  # pragma: no cover - cleanlab is a dependency
        raise MlcilError("the audit needs cleanlab: pip install cleanlab") from exc
    return get_label_quality_scores, ml_filter


def label_lists(Y: np.ndarray) -> list[list[int]]:
    """cleanlab's multi-label format: for each row, the list of column indices equal to 1."""
    Y = np.asarray(Y).astype(bool)
    return [np.flatnonzero(row).tolist() for row in Y]


@dataclass
class AuditResult:
    """The audit of one block of rows (n rows × C classes).

    Attributes:
        quality: (n,) label quality in [0, 1]; lower = more likely mislabeled.
        flagged: (n,) bool, rows cleanlab flags as label issues.
        suspect: (n, C) bool, the (row, class) tags flagged by the per-class filter.
        ranking: row positions sorted from most to least suspicious (by quality).
        seconds: time of the cleanlab step (not of the out-of-sample probabilities).
    """

    quality: np.ndarray
    flagged: np.ndarray
    suspect: np.ndarray
    ranking: np.ndarray
    seconds: float = 0.0

    def missing(self, Y: np.ndarray) -> np.ndarray:
        """(n, C) bool: suspect tags given 0 (likely missing)."""
        return self.suspect & ~np.asarray(Y).astype(bool)

    def wrong(self, Y: np.ndarray) -> np.ndarray:
        """(n, C) bool: suspect tags given 1 (likely wrong)."""
        return self.suspect & np.asarray(Y).astype(bool)


def find_label_errors(Y: np.ndarray, proba: np.ndarray, n_jobs: int = 1) -> AuditResult:
    """Score and flag rows whose given labels disagree with out-of-sample probabilities.

    Args:
        Y: n×C given binary labels. proba: n×C out-of-sample probabilities of the same rows
            (a row's own label must not have influenced its prediction).
        n_jobs: worker processes cleanlab may fork (1 = none, the default: a fork of a process
            that already runs threads, e.g. a Ray driver, a web server or torch's pool, can hang).
    Returns:
        :class:`AuditResult`.
    """
    Y = np.asarray(Y)
    P = np.asarray(proba, dtype=np.float64)
    if Y.ndim != 2 or P.shape != Y.shape:
        raise MlcilError(f"proba: expected shape {Y.shape} to match the labels, got {P.shape}")
    if not np.isfinite(P).all():
        raise MlcilError("proba: expected finite probabilities")
    n, C = Y.shape
    if n == 0 or C == 0:
        empty = np.zeros(n, dtype=bool)
        return AuditResult(np.ones(n), empty, np.zeros((n, C), bool), np.arange(n))
    P = np.clip(P, 1e-6, 1 - 1e-6)
    if C == 1 and (Y.all() or not Y.any()):
        # one class with one given value for every row (all positive, or all negative) leaves nothing to
        # contrast: quality is the self-confidence (the probability of the given value), flagged below 0.5
        quality = np.where(Y[:, 0].astype(bool), P[:, 0], 1 - P[:, 0])
        flagged = quality < 0.5
        return AuditResult(quality, flagged, flagged[:, None].copy(), np.argsort(quality, kind="stable"))
    if C == 1:  # cleanlab's multi-label functions need two columns; a lone class is a binary problem
        P2, Y2 = np.hstack([P, 1 - P]), np.hstack([Y, 1 - Y])
        sub = find_label_errors(Y2, P2, n_jobs)
        return AuditResult(sub.quality, sub.flagged, sub.suspect[:, :1] | sub.suspect[:, 1:], sub.ranking, sub.seconds)
    get_label_quality_scores, ml_filter = _cleanlab()
    start = time.perf_counter()
    labels = label_lists(Y)
    with warnings.catch_warnings():  # "may not flag all label issues in class k": rare classes, expected here
        warnings.filterwarnings("ignore", message="May not flag all label issues", category=UserWarning)
        quality = np.asarray(get_label_quality_scores(labels, P), dtype=np.float64)
        flagged = np.asarray(ml_filter.find_label_issues(labels, P, n_jobs=n_jobs), dtype=bool)
        per_class = np.asarray(ml_filter.find_multilabel_issues_per_class(labels, P, n_jobs=n_jobs), dtype=bool)
    suspect = per_class if per_class.shape == (n, C) else per_class.T  # cleanlab versions differ in layout
    seconds = time.perf_counter() - start
    return AuditResult(quality, flagged, suspect, np.argsort(quality, kind="stable"), seconds)


def audit_scores(Y: np.ndarray, scores: np.ndarray) -> AuditResult:
    """Audit from out-of-sample *scores* that are not probabilities (e.g. ridge leave-one-out):
    each column is Platt-calibrated on its own scores first, then :func:`find_label_errors`.

    Y, scores: n×C (or (n,) for one label)."""
    from mlcil.decide.calibration import apply_platt, fit_platt

    Y = np.asarray(Y)
    S = np.asarray(scores, dtype=np.float64)
    if Y.ndim == 1:
        Y, S = Y[:, None], S.reshape(-1, 1)
    if S.shape != Y.shape:
        raise MlcilError(f"scores: expected shape {Y.shape} to match the labels, got {S.shape}")
    a, b = fit_platt(S, Y)
    return find_label_errors(Y, apply_platt(S, a, b))


def logistic_model():
    """The usual recipe's model: one-vs-rest logistic regression (scikit-learn, lbfgs, C=1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(with_mean=False), OneVsRestClassifier(LogisticRegression(max_iter=1000)))


def kfold_proba(X, Y: np.ndarray, make_model: Callable[[], object] = logistic_model, folds: int = 5,
                seed: int = 0) -> np.ndarray:
    """Out-of-sample probabilities by k-fold cross-validation (cleanlab's usual recipe).

    Args:
        X: n×d features (dense or CSR). Y: n×C binary labels.
        make_model: returns a fresh scikit-learn-style multi-label model with ``fit(X, Y)``
            and ``predict_proba(X) -> n×C``; default :func:`logistic_model`.
        folds: number of folds (rows shuffled with ``seed``).
    Returns:
        n×C float64: each row predicted by the model fitted on the other folds. A class with a
        single label value in a training fold gets that value's empirical rate.
    """
    Y = np.asarray(Y).astype(np.uint8)
    n, C = Y.shape
    if folds < 2 or folds > n:
        raise MlcilError(f"folds: expected 2..{n} (the number of rows), got {folds}")
    perm = np.random.default_rng(seed).permutation(n)
    out = np.zeros((n, C))
    for f in range(folds):
        test = np.sort(perm[f::folds])
        train = np.setdiff1d(np.arange(n), test)
        Ytr = Y[train]
        const = (Ytr.min(axis=0) == Ytr.max(axis=0))
        cols = np.flatnonzero(~const)
        out[np.ix_(test, np.flatnonzero(const))] = Ytr[:1, const].astype(float) if len(train) else 0.5
        if cols.size:
            model = make_model()
            model.fit(take_rows(X, train), Ytr[:, cols])
            P = np.asarray(model.predict_proba(take_rows(X, test)))
            if cols.size == 1 and P.ndim == 2 and P.shape[1] == 2:  # scikit-learn reads one column as binary
                P = P[:, 1:]
            out[np.ix_(test, cols)] = P.reshape(len(test), cols.size)
    return out


def inject_label_noise(Y: np.ndarray, drop: float = 0.05, flip: float = 0.01, seed: int = 0) -> np.ndarray:
    """Synthetic annotation errors: each positive is dropped with probability ``drop`` (a missed
    tag), each negative flipped to positive with probability ``flip`` (a wrong tag); seeded.

    Returns the noisy copy (same dtype); compare with ``Y`` to know the planted errors.
    """
    Y = np.asarray(Y)
    rng = np.random.default_rng(seed)
    u = rng.random(Y.shape)
    pos = Y.astype(bool)
    noisy = np.where(pos, u >= drop, u < flip)
    return noisy.astype(Y.dtype)


def audit_quality(truth: np.ndarray, result: AuditResult) -> dict[str, float]:
    """How well an audit finds planted errors (``truth``: (n,) bool rows that carry one).

    precision@k and recall@k rank rows by quality with k = number of erroneous rows; precision
    and recall of the flagged rows; fractions in [0, 1].
    """
    truth = np.asarray(truth, dtype=bool)
    k = int(truth.sum())
    top = result.ranking[:k]
    hits = truth[top].sum() if k else 0
    flagged = result.flagged
    return {
        "n_rows": int(len(truth)), "n_errors": k, "n_flagged": int(flagged.sum()),
        "precision_at_k": float(hits / k) if k else float("nan"),
        "flag_precision": float((truth & flagged).sum() / flagged.sum()) if flagged.any() else float("nan"),
        "flag_recall": float((truth & flagged).sum() / k) if k else float("nan"),
    }
