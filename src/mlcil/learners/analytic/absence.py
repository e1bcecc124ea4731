"""Label-absence strategies of :class:`~mlcil.learners.analytic.Analytic`: the α search and pseudo-labels.

For the classes of session s, rows of other sessions count as negatives with weight α (the systems and
their solves: :mod:`mlcil.ridge.absence`). 'negative' fixes α = 1, 'known' α = 0; 'weighted' and 'pseudo'
choose α on the first session by simulating label absence inside it (:func:`choose_alpha`). 'pseudo' also
labels old classes on each new session's rows with the current model (:func:`pseudo_labels`).

Pure functions on arrays, and :class:`LabelAbsence`, the learner's thin methods over them.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from mlcil.decide.calibration import sigmoid
from mlcil.metrics import average_precision
from mlcil.ridge import absence as ridge_absence

STRATEGIES = ("negative", "known", "weighted", "pseudo")
#: α values tried when ``alpha`` is None (weighted, pseudo).
ALPHA_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
#: α used when the first session has a single class (nothing to simulate).
DEFAULT_ALPHA = 0.1
#: rows of the first session sampled for the α search.
ALPHA_SEARCH_ROWS = 4000
#: values of ``pseudo_calibration``: the probability pseudo-labels threshold.
PSEUDO_CALIBRATIONS = ("ridge", "platt")


def choose_alpha(features: Callable[[Any], np.ndarray], X, Y: np.ndarray, weights: np.ndarray | None, lam: float,
                 seed: int, loo_rows: int, memory: bool) -> tuple[float, list[float] | None]:
    """α chosen by simulating label absence inside one session: (α, mean mAP per :data:`ALPHA_GRID` value, or
    None when nothing could be simulated and α is :data:`DEFAULT_ALPHA`).

    ``features``: X rows -> φ (n×D); X (n×d) and Y (n×k) the session's rows and labels; ``weights``: (n,) or
    None; ``lam``: the ridge λ; ``memory``: a row is once in G_all (label memory) rather than once per group.
    The session's classes are split into up to 3 random groups learned as separate sessions, twice, and each
    α is scored by the leave-one-out mAP of sampled rows, which know every label of the session
    (:func:`mlcil.ridge.absence.simulated_loo`, or its n×n dual for fewer sampled rows than features)."""
    k = Y.shape[1]
    if k < 2 or X.shape[0] < 10:
        return DEFAULT_ALPHA, None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(X.shape[0])[: ALPHA_SEARCH_ROWS])  # α is one scalar: a sample suffices
    phi = features(X[rows]).astype(np.float64)
    Ys = Y[rows]
    ws = np.ones(len(rows)) if weights is None else weights[rows]
    loo = np.sort(rng.permutation(len(rows))[: min(int(loo_rows), 500)])
    dual = ridge_absence.use_dual(len(rows), phi.shape[1])  # fewer rows than features: every system in the dual
    K = phi @ phi.T if dual else None
    scores = np.zeros(len(ALPHA_GRID))
    repeats = 2
    for _ in range(repeats):
        group = rng.permutation(np.arange(k) % min(k, 3))
        groups = [(cols, Ys[:, cols].any(axis=1)) for cols in (np.flatnonzero(group == g) for g in np.unique(group))]
        # how many times each row is in G_all: once per group it is in, or once with a label memory
        # (a row in several groups is one example)
        n_all = np.ones(len(rows)) if memory else sum(member.astype(float) for _, member in groups)
        if dual:
            scores += [np.nanmean(average_precision(Ys[loo], ridge_absence.simulated_loo_dual(
                K, groups, n_all, alpha, lam, loo, Ys, ws))) for alpha in ALPHA_GRID]
            continue
        parts = []
        for cols, member in groups:  # G_p = Ψ_pᵀΨ_p over the group's rows alone, Ψ_p = √w φ: one symmetric product
            inside = np.flatnonzero(member)
            root = np.sqrt(ws[inside])[:, None]
            psi = phi[inside] * root
            parts.append((psi.T @ psi, psi.T @ (root * Ys[inside][:, cols]), cols, member[loo]))
        if memory:
            psi = phi * np.sqrt(ws)[:, None]
            G_all = psi.T @ psi
        else:
            G_all = sum(p[0] for p in parts[1:]) + parts[0][0]
        scores += [np.nanmean(average_precision(Ys[loo], ridge_absence.simulated_loo(
            parts, G_all, n_all[loo], alpha, lam, phi[loo], Ys[loo], ws[loo]))) for alpha in ALPHA_GRID]
    return float(ALPHA_GRID[int(np.argmax(scores))]), (scores / repeats).tolist()


def pseudo_labels(S: np.ndarray, threshold: Any, calibration: str, proba: Callable[[np.ndarray], np.ndarray],
                  thresholds: np.ndarray) -> np.ndarray:
    """Pseudo-labels of old classes from their ridge scores S (n×C): the scores clipped to [0, 1] (``threshold``
    'soft', float64), the calibrated probability ``proba(S)`` above the per-class ``thresholds`` ('calibrated'),
    or the probability above ``threshold``, the probability being σ(S) (``calibration`` 'ridge') or ``proba(S)``
    ('platt'); uint8 0/1 but for 'soft'."""
    if threshold == "soft":  # the ridge output itself, clipped to [0, 1]
        return np.clip(S, 0.0, 1.0).astype(np.float64)
    if threshold == "calibrated":  # F1-optimal thresholds of the Platt probability
        return (proba(S) > thresholds).astype(np.uint8)
    P = sigmoid(S) if calibration == "ridge" else proba(S)
    return (P > float(threshold)).astype(np.uint8)


class LabelAbsence:
    """The learner's α and pseudo-label methods (mixed into :class:`~mlcil.learners.analytic.Analytic`)."""

    def _choose_alpha(self, X, Y: np.ndarray, weights, lam: float) -> float:
        """α for label absence: fixed by 'negative' (1), 'known' (0) and by an explicit alpha; otherwise
        :func:`choose_alpha` on the first session (its scores kept as ``alpha_scores_``)."""
        if self.strategy in ("negative", "known"):
            return {"negative": 1.0, "known": 0.0}[self.strategy]
        if self.alpha is not None:
            return float(self.alpha)
        alpha, scores = choose_alpha(self._features, X, Y, weights, lam, self.seed, self.loo_rows, bool(self.memory))
        if scores is not None:
            self.alpha_scores_ = scores
        return alpha

    def _add_pseudo_labels(self, X, weights, recall, G_list: list, B_list: list, G_fresh) -> np.ndarray | None:
        """'pseudo', after the first session: the old classes' pseudo-labels on this session's rows, from the
        model before it, join each earlier session's B (``B_list``, in place); with a label memory only on rows
        whose labels are unknown, whose φφᵀ then joins K_s (``G_list``; :meth:`_memory_pseudo`, which returns
        the rows × sessions mask of what it pseudo-labelled). Returns that mask, or None."""
        if not (self.strategy == "pseudo" and self.is_fitted):
            return None
        if self.memory:
            return self._memory_pseudo(X, recall, G_list, B_list, G_fresh)
        _, B_pseudo = self._stats(X, self._pseudo_labels(X), weights, gram=False)
        col = 0
        for s, cls in enumerate(self.session_classes_):
            B_list[s] += B_pseudo[:, col:col + len(cls)]
            col += len(cls)
        return None

    def _pseudo_labels(self, X) -> np.ndarray:
        """n × len(classes_) pseudo-labels of the old classes by the current model (:func:`pseudo_labels`)."""
        S = self.scores(X)
        return pseudo_labels(S, self.pseudo_threshold, self.pseudo_calibration, self.model_.proba_from_scores,
                             self.thresholds_)
