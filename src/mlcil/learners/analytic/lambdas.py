"""λ selection for :class:`~mlcil.learners.analytic.Analytic` (``lambda_search``).

- 'first': λ maximising the closed-form leave-one-out mAP of the first session, on a log grid
  (:func:`mlcil.ridge.lambda_grid`, :func:`mlcil.ridge.choose_lambda`).
- 'sessions': after every later session, its own leave-one-out mAP curve is added to the evidence of the
  sessions before, weighted by its number of classes (:func:`add_session_evidence`).
- 'gcv': each session's generalised cross-validation from its statistics alone, every label counted equally
  (:func:`label_gcv`), summed over labels and sessions;
  with a label memory and one system for every class, the GCV of the union instead (:func:`union_counts`,
  :func:`mlcil.ridge.gcv_minimum`), re-chosen after merge and forgetting too.

Pure functions on arrays, and :class:`LambdaSelection`, the learner's thin methods over them.
"""

from __future__ import annotations

import numpy as np

from mlcil import ridge
from mlcil.learners import label_memory

#: values of ``lambda_search``: λ chosen on the first session only, or re-chosen after every session
#: (from leave-one-out mAP, or from GCV on each session's statistics).
LAMBDA_SEARCHES = ("first", "sessions", "gcv")
#: points of the leave-one-out λ grid ('first', 'sessions', the scaling search): 10⁻⁴..10² × the mean eigenvalue.
N_LAMBDAS = 13
#: ``lambda_search='gcv'``: a first session with at least this many rows floors λ at its own leave-one-out mAP
#: choice (:meth:`LambdaSelection._set_lambda_floor`, :func:`floored_argmax`): from that many rows the ranking
#: estimate is trusted over GCV's squared error, which picks a smaller λ on the wide word counts (rcv1).
LOO_FLOOR_ROWS = 1000
#: the λ grid of ``lambda_search='gcv'``: (points, log10 low, log10 high) × the first session's mean
#: eigenvalue. Wider and finer than the leave-one-out grid: a GCV curve costs no mAP per point.
GCV_GRID = (25, -5.0, 3.0)


def target_sums(Y: np.ndarray, weights: np.ndarray | None) -> tuple[float, float]:
    """(Σ w‖y‖², Σ w) of a block of rows (Y n×C, weights (n,) or None = 1): GCV's sum of squared targets
    and its row count."""
    Yf = np.asarray(Y, dtype=np.float64)
    w = np.ones(Yf.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(w @ (Yf ** 2).sum(axis=1)), float(w.sum())


def label_scales(Y: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
    """(columns with a nonzero target, √(n / Σ w y_c²) of each, n = Σ w): the scale that makes each label's
    squared error relative to predicting 0 everywhere (1 for that prediction, whatever the label's frequency)."""
    Yf = np.asarray(Y, dtype=np.float64)
    w = np.ones(Yf.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    yy = w @ Yf ** 2
    keep = np.flatnonzero(yy > 0)
    n = float(w.sum())
    return keep, np.sqrt(n / yy[keep]), n


def label_gcv(G: np.ndarray, B: np.ndarray, Y: np.ndarray, weights: np.ndarray | None, grid: np.ndarray,
              eig: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Each label's GCV curve (C × len(grid), :func:`mlcil.ridge.gcv_column_curves`) on one session's rows, divided
    by the label's mean squared target (its positive rate for 0/1 labels): its squared error relative to
    predicting 0 everywhere, so that every label counts equally, as mAP averages labels whatever their
    frequency. Unweighted, the frequent labels' squared error decides λ and the rare ones, most of a real
    tag set, get the λ that suits the frequent ones. The session alone (G_s D×D, B_s D×C, rows of other
    sessions not read as negatives); finite only where the effective degrees of freedom stay at most half its
    rows. A label without a positive gives zeros, and so does every label of a session too small for any λ
    of the grid (under about 7 rows): no evidence, rather than ruling every λ out for the whole stream."""
    keep, scale, n = label_scales(Y, weights)
    out = np.zeros((np.asarray(Y).shape[1], len(grid)))
    if len(keep) == 0:
        return out
    # GCV is quadratic in a column of B and its target: scaling column c by r_c scales its GCV by r_c²
    curves = ridge.gcv_column_curves(G, np.asarray(B)[:, keep] * scale, np.full(len(keep), n), n, grid, eig=eig)
    if np.isfinite(curves).any():
        out[keep] = curves
    return out


def union_counts(Y: np.ndarray | None, weights: np.ndarray | None, memory: dict | None,
                 prior: np.ndarray | None) -> tuple[float, float]:
    """(Σ w‖y‖², Σ w) of the union's rows: from the label memory (its positive bits and examples; absent
    labels are 0 targets), or, without one (``Joint``: its one session is the union), from Y. The name
    prior's pseudo-examples (weights β per class, one positive each) count as rows."""
    if memory is not None:
        yy = float(label_memory.label_bits(memory).sum())
        n = float(label_memory.session_bits(memory).any(axis=1).sum())
    else:
        yy, n = target_sums(Y, weights)
    if prior is not None:
        yy, n = yy + float(np.sum(prior)), n + float(np.sum(prior))
    return yy, n


def grid_argmax(grid: np.ndarray, evidence: np.ndarray) -> float:
    """The ``grid`` λ with the most evidence; ties (a flat curve: no evidence yet) go to the larger λ."""
    evidence = np.asarray(evidence)
    return float(grid[len(evidence) - 1 - int(np.argmax(evidence[::-1]))])


def floored_argmax(grid: np.ndarray, evidence: np.ndarray, floor: float | None) -> float:
    """:func:`grid_argmax` among the ``grid`` λ ≥ ``floor`` (None: no floor; a floor above the whole grid gives
    the grid's largest λ)."""
    grid = np.asarray(grid, dtype=np.float64)
    if floor is None:
        return grid_argmax(grid, evidence)
    keep = grid >= float(floor) * (1.0 - 1e-12)
    if not keep.any():
        return float(grid[-1])
    return grid_argmax(grid[keep], np.asarray(evidence)[keep])


def add_session_evidence(grid: np.ndarray, maps: np.ndarray, evidence: np.ndarray, lam: float,
                         n_classes: int) -> tuple[float, np.ndarray]:
    """'sessions': add one session's leave-one-out mAP curve ``maps`` (one per ``grid`` λ, NaN where
    undefined) to the ``evidence`` of the sessions before, weighted by its ``n_classes``; returns
    (λ with the most evidence, evidence). A curve with no finite point is no evidence: λ stays ``lam``."""
    if not np.isfinite(maps).any():
        return lam, evidence
    evidence = evidence + np.nan_to_num(maps, nan=np.nanmin(maps)) * n_classes
    return float(grid[int(np.argmax(evidence))]), evidence


class LambdaSelection:
    """The learner's λ methods (mixed into :class:`~mlcil.learners.analytic.Analytic`)."""

    n_lambdas = N_LAMBDAS  # points of the leave-one-out grid (a parameter of Joint, fixed in Analytic)

    def _loo_choice(self, G, B, phi_sub, Y_sub: np.ndarray, w_sub, eig=None) -> tuple[float, np.ndarray, np.ndarray]:
        """(λ, mAP per grid λ, grid): the λ maximising leave-one-out mAP on the first session's rows, on the
        leave-one-out grid (one eigendecomposition of G for the grid, ``eig`` when already computed)."""
        lambdas = np.asarray(ridge.lambda_grid(G, self.n_lambdas))
        lam, maps = ridge.choose_lambda(G, B, phi_sub, Y_sub, lambdas, w_sub, eig)
        return lam, maps, lambdas

    def _choose_lambda(self, G, B, phi_sub, Y_sub: np.ndarray, w_sub, eig=None) -> float:
        """'first': :meth:`_loo_choice`, kept with its curve and grid."""
        lam, maps, self.lambda_grid_ = self._loo_choice(G, B, phi_sub, Y_sub, w_sub, eig)
        self.lambda_map_ = maps.tolist()
        return lam

    def _set_lambda_floor(self, rows: int, G, B, phi_sub, Y_sub: np.ndarray, w_sub, eig=None) -> None:
        """``lambda_floor_``: the λ 'first' would choose (:meth:`_loo_choice`) when the first session has at least
        :data:`LOO_FLOOR_ROWS` ``rows``, else None."""
        self.lambda_floor_ = self._loo_choice(G, B, phi_sub, Y_sub, w_sub, eig)[0] if rows >= LOO_FLOOR_ROWS else None

    @staticmethod
    def _target_sums(Y: np.ndarray, weights) -> tuple[float, float]:
        return target_sums(Y, weights)

    def _label_gcv(self, G: np.ndarray, B: np.ndarray, Y: np.ndarray, weights, eig=None) -> np.ndarray:
        """:func:`label_gcv` on the learner's λ grid."""
        return label_gcv(G, B, Y, weights, self.lambda_grid_, eig)

    def _stack_label_curves(self, first: bool, curves: np.ndarray) -> np.ndarray | None:
        """``lambda_curves_`` after a session: one GCV curve per class, in the order of ``classes_``, so that
        ``lambda_evidence_`` = −their sum. None when the classes before have none (a learner saved before they
        were kept, or sessions learned from the union's GCV): forgetting then keeps λ as it is."""
        if first:
            return curves
        before = getattr(self, "lambda_curves_", None)
        if before is None or len(before) != sum(len(c) for c in getattr(self, "session_classes_", [])):
            return None
        return np.vstack([before, curves])

    def _forget_label_curves(self, keep: np.ndarray) -> None:
        """After forgetting classes (``keep``: the classes that stay, over ``classes_``): λ re-chosen from the
        GCV evidence of the classes that stay, as a learner never taught the others would have chosen it (the λ
        floor, from the first session's rows, stays as it is)."""
        curves = getattr(self, "lambda_curves_", None)
        if self.lambda_search != "gcv" or self._union_gcv() or curves is None or len(curves) != len(keep):
            return
        self.lambda_curves_ = curves[keep]
        self.lambda_evidence_ = -self.lambda_curves_.sum(axis=0)
        self.lambda_ = self._gcv_lambda(self.lambda_evidence_)

    def _union_gcv(self, alpha: float | None = None) -> bool:
        """Whether λ minimises the GCV of the union of the sessions (``lambda_search='gcv'``, a label memory,
        and one system for every class: 'negative', or 'weighted' with α = 1). The learner then solves
        :class:`~mlcil.learners.Joint`'s ridge problem on the rows seen, and G_all, B and the memory's label bits
        are its sufficient statistics: λ is a function of them alone (:func:`mlcil.ridge.gcv_minimum`, a
        continuous minimum, so it does not depend on the grid's points), merge and forgetting re-choose it, and
        it equals ``Joint(lambda_search='gcv')``'s on the same rows and frame."""
        return self.lambda_search == "gcv" and bool(self.memory) and not self._per_session(alpha)

    def _union_counts(self, Y: np.ndarray, weights, memory: dict | None, prior: np.ndarray | None):
        return union_counts(Y, weights, memory, prior)

    def _reselect_union_lambda(self) -> None:
        """After merge or forgetting: λ re-chosen from the union's statistics (see :meth:`_union_gcv`)."""
        if self._union_gcv() and self.memory:
            yy, n = union_counts(None, None, self.memory_, getattr(self, "prior_weight_", None))
            self.lambda_, curve = ridge.gcv_minimum(self._gram_all(), np.concatenate(self.B_, axis=1), yy, n,
                                                    self.lambda_grid_)
            self.lambda_evidence_ = -curve

    def _gcv_lambda(self, evidence: np.ndarray) -> float:
        """The grid λ with the most evidence; ties (a flat curve: no evidence yet) go to the larger λ. Not below
        ``lambda_floor_`` when the learner has one (:func:`floored_argmax`; a learner saved without it has none)."""
        return floored_argmax(self.lambda_grid_, evidence, getattr(self, "lambda_floor_", None))

    def _reselect_lambda(self, base: np.ndarray, B_new: np.ndarray, phi_sub: np.ndarray, Y_sub: np.ndarray,
                         w_sub, evidence: np.ndarray, lam: float, eig=None) -> tuple[float, np.ndarray]:
        """λ after a later session (``lambda_search='sessions'``): this session's leave-one-out mAP of its
        own classes on its own rows, for every λ of the first session's grid (one eigendecomposition of
        the system without λ, ``base``; ``eig``: its eigendecomposition when already computed), added to the
        evidence (:func:`add_session_evidence`). Returns (λ, evidence)."""
        lambdas = np.asarray(self.lambda_grid_)
        _, maps = ridge.choose_lambda(base, B_new, phi_sub, Y_sub, lambdas, w_sub, eig)
        return add_session_evidence(lambdas, maps, evidence, lam, Y_sub.shape[1])
