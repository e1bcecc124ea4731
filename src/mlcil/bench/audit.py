"""The label-error audit over a protocol's stream: learners produce out-of-sample probabilities,
:mod:`mlcil.decide.audit`'s pure functions score and flag the rows (cleanlab).

- :func:`loo_proba`: exact leave-one-out probabilities of the ``Analytic`` family (no retraining).
- :func:`audit_stream`: every session of a stream, by leave-one-out or k-fold, optionally with
  planted synthetic errors so that the audit's precision and recall can be measured.
"""

from __future__ import annotations

import time

import numpy as np

from mlcil.decide.audit import audit_quality, find_label_errors, inject_label_noise, kfold_proba, logistic_model
from mlcil.errors import MlcilError
from mlcil.learners import make_learner
from mlcil.protocols import Session


def loo_proba(learner, X, Y: np.ndarray, classes) -> np.ndarray:
    """Exact leave-one-out probabilities of a session the ``Analytic``-family ``learner`` learned
    (see :meth:`mlcil.learners.analytic.Analytic.leave_one_out`)."""
    if not hasattr(learner, "leave_one_out"):
        raise MlcilError(f"{learner.name}: no closed-form leave-one-out; use kfold_proba")
    return learner.leave_one_out(X, Y, classes)


class _LearnerModel:
    """A mlcil learner spec behind the ``fit``/``predict_proba`` interface :func:`kfold_proba` expects."""

    def __init__(self, spec: str, seed: int, device: str) -> None:
        self.spec, self.seed, self.device = spec, seed, device

    def fit(self, X, Y):
        self.learner_ = make_learner(self.spec, seed=self.seed, device=self.device)
        self.learner_.learn(Session(X, Y, np.arange(Y.shape[1]), np.arange(Y.shape[0])))
        return self

    def predict_proba(self, X):
        return self.learner_.proba(X)


def audit_stream(stream, learner: str = "analytic", method: str = "loo", noise: tuple[float, float] | None = None,
                 seed: int = 0, folds: int = 5, device: str = "cpu", progress: bool = False) -> list[dict]:
    """Audit every session of a protocol's stream.

    Args:
        stream: a :class:`mlcil.protocols.Stream`.
        learner: learner spec. With ``method='loo'`` an ``Analytic``-family learner learns the
            stream session by session and each session is audited by its exact leave-one-out
            predictions after that session. With ``method='kfold'`` each session is audited on
            its own rows by ``folds``-fold cross-validation of ``learner`` ('logistic' = the usual
            one-vs-rest logistic regression).
        noise: (drop, flip) to plant synthetic errors in each session's labels first (seeded),
            so that the audit's precision and recall can be measured; None audits the labels as given.
    Returns:
        one record per session: ``t``, ``classes``, ``index`` (dataset rows), ``Y`` (labels as
        audited), ``proba``, ``result`` (:class:`~mlcil.decide.audit.AuditResult`), ``planted`` ((n,) bool or None),
        ``quality`` (:func:`~mlcil.decide.audit.audit_quality` or None), ``oos_s`` and ``learn_s`` (seconds).
    """
    from tqdm.auto import tqdm

    if method not in ("loo", "kfold"):
        raise MlcilError(f"method: expected 'loo' or 'kfold', got {method!r}")
    model = None
    if method == "loo":
        model = make_learner(learner, seed=seed, device=device)
        if not hasattr(model, "leave_one_out"):
            raise MlcilError(f"learner: {learner!r} has no closed-form leave-one-out; use method='kfold'")
    records = []
    for t, session in enumerate(tqdm(stream, desc="audit", unit="session", disable=not progress, leave=False)):
        Y = session.Y if noise is None else inject_label_noise(session.Y, noise[0], noise[1], seed * 1000 + t)
        learn_s = 0.0
        start = time.perf_counter()
        if model is not None:
            model.learn(Session(session.X, Y, session.classes, session.index, t))
            learn_s = time.perf_counter() - start
            start = time.perf_counter()
            P = model.leave_one_out(session.X, Y, session.classes)
        else:
            make = logistic_model if learner == "logistic" else (lambda: _LearnerModel(learner, seed, device))
            P = kfold_proba(session.X, Y, make, folds=min(folds, session.n), seed=seed)
        oos_s = time.perf_counter() - start
        result = find_label_errors(Y, P)
        planted = None if noise is None else (Y != session.Y).any(axis=1)
        records.append({"t": t, "classes": session.classes, "index": session.index, "Y": Y, "proba": P,
                        "result": result, "planted": planted,
                        "quality": None if planted is None else audit_quality(planted, result),
                        "oos_s": oos_s, "learn_s": learn_s})
    return records
