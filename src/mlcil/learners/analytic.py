"""``Analytic``: exact, exemplar-free multi-label continual learning (DESIGN.md §3.1).

Random features φ(x) = ReLU(x̃ᵀR) (x̃ = x standardised with first-session statistics,
optionally concatenated) and ridge regression through sufficient statistics that only
grow by addition: per session s, G_s = Σ φφᵀ (M×M) and B_s = Σ φ yᵀ (M×|C_s|).

Label absence: for the classes C_s introduced in session s, rows of other sessions are
negatives with weight α:

    W_{C_s} = (α G_all + (1 − α) K_s + λI)⁻¹ B_s,   K_s = G_s  (K_s = Σ_{u≥s} G_u for ``pseudo``)

α = 1 is ``negative`` (one G for everything), α = 0 is ``known`` (old weights never change),
``weighted`` picks α on held-out rows of the first session, ``pseudo`` also pseudo-labels
old classes on each new session with the current model (KRT's dynamic pseudo-labels,
L3A's 0.7 threshold). Because statistics add, learning session by session equals one fit
on the union with the same partial labels, learners fed disjoint data merge exactly, and
examples or classes are forgotten exactly (see :meth:`merge`, :meth:`forget`,
:meth:`forget_examples`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlcil.data.dataset import check_features, check_labels
from mlcil.decide.calibration import apply_platt, fit_platt
from mlcil.errors import MlcilError
from mlcil.learners import ridge
from mlcil.learners.base import Learner, register
from mlcil.metrics import average_precision

STRATEGIES = ("negative", "known", "weighted", "pseudo")
#: α values tried when ``alpha`` is None (weighted, pseudo).
ALPHA_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
#: α used when the first session has a single class (nothing to simulate).
DEFAULT_ALPHA = 0.1


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train rows, held-out rows) of a seeded random split; no held-out rows below 10."""
    n_val = int(round(fraction * n))
    if n_val < 10 or n - n_val < 2:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def weighted_solve(G_all: torch.Tensor, K: torch.Tensor, B: torch.Tensor, alpha: float, lam: float) -> torch.Tensor:
    """W = (α G_all + (1 − α) K + λI)⁻¹ B: ridge where rows outside K weigh α (float64, Cholesky)."""
    A = K if alpha == 0.0 else (G_all if alpha == 1.0 else alpha * G_all + (1.0 - alpha) * K)
    return ridge.ridge_solve(A, B, lam)


def best_f1_thresholds(proba: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per-class probability threshold maximising F1 on held-out rows (vectorised over classes).

    Candidates are each column's own scores; a class with no held-out positive gets 0.5.
    """
    n, C = proba.shape
    order = np.argsort(-proba, axis=0, kind="stable")
    p_sorted = np.take_along_axis(proba, order, axis=0)
    y_sorted = np.take_along_axis(Y.astype(np.float64), order, axis=0)
    tp = np.cumsum(y_sorted, axis=0)
    k = np.arange(1, n + 1)[:, None]
    pos = Y.sum(axis=0)
    f1 = 2 * tp / (k + pos)
    best = np.argmax(f1, axis=0)
    out = p_sorted[best, np.arange(C)]
    return np.where(pos > 0, out, 0.5)


def select_lambda(G_tr, B_tr, phi_val, Y_val: np.ndarray, lambdas) -> tuple[int, np.ndarray, np.ndarray]:
    """Pick λ maximising held-out mAP; returns (index, per-λ mAP, held-out scores at best λ).

    Classes without a held-out positive are ignored; if none has one, the middle λ wins.
    """
    path = ridge.ridge_path_scores(G_tr, B_tr, phi_val, lambdas).cpu().numpy()
    maps = np.array([np.nanmean(average_precision(Y_val, s)) if Y_val.any() else np.nan for s in path])
    best = int(np.nanargmax(maps)) if np.isfinite(maps).any() else len(lambdas) // 2
    return best, maps, path[best]


@register("analytic")
class Analytic(Learner):
    """Random-feature ridge learner through sufficient statistics (the flagship).

    Args:
        M: number of random features (ReLU(x̃ᵀR), R ~ N(0, 1/d), seeded).
        include_x: also use the standardised input x̃ as features (M + d columns).
        strategy: label-absence strategy: 'negative', 'known', 'weighted' or 'pseudo'.
        alpha: weight of absent labels as negatives (weighted/pseudo); None = choose on
            held-out rows of the first session by simulating label absence within it.
        balance: weight examples by the inverse square root of their positive classes'
            frequency within the session (L3A's sample weighting idea).
        pseudo_threshold: probability above which an old class becomes a pseudo-positive
            (0.7 as in L3A), or 'calibrated' for per-class F1-optimal thresholds found on
            held-out rows of the class's own session.
        n_lambdas: size of the log λ grid, searched on held-out rows of the first session.
        val_fraction: held-out fraction of each session (λ, α, calibration); the held-out
            rows join the statistics afterwards, so no data is lost.
        precision: 'float64' or 'float32' multiplication when accumulating statistics
            (sums and solves are float64 either way).
        seed, device: seeds R and the held-out splits; 'cpu', 'cuda' or 'auto'.

    >>> import numpy as np
    >>> from mlcil.protocols import Session
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 8)).astype(np.float32)
    >>> Y = (X[:, :4] > 0.5).astype(np.uint8)
    >>> model = Analytic(M=128, strategy="weighted")
    >>> model = model.learn(Session(X, Y[:, :2], np.array([0, 1]), np.arange(300)))
    >>> model = model.learn(Session(X, Y[:, 2:], np.array([2, 3]), np.arange(300)))
    >>> model.classes_.tolist(), model.proba(X).shape
    ([0, 1, 2, 3], (300, 4))
    """

    def __init__(self, M: int = 2048, include_x: bool = True, strategy: str = "weighted", alpha: float | None = None,
                 balance: bool = False, pseudo_threshold: Any = 0.7, n_lambdas: int = 13, val_fraction: float = 0.2,
                 precision: str = "float64", seed: int = 0, device: str = "cpu") -> None:
        self.M = M
        self.include_x = include_x
        self.strategy = strategy
        self.alpha = alpha
        self.balance = balance
        self.pseudo_threshold = pseudo_threshold
        self.n_lambdas = n_lambdas
        self.val_fraction = val_fraction
        self.precision = precision
        self.seed = seed
        self.device = device

    # ---- configuration -------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.strategy not in STRATEGIES:
            raise MlcilError(f"{self.name}: strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.alpha is not None and not 0.0 <= float(self.alpha) <= 1.0:
            raise MlcilError(f"{self.name}: alpha must be in [0, 1], got {self.alpha}")
        if self.alpha is not None and self.strategy in ("negative", "known"):
            raise MlcilError(f"{self.name}: alpha is fixed by strategy {self.strategy!r}; use strategy='weighted'")
        if self.precision not in ("float64", "float32"):
            raise MlcilError(f"{self.name}: precision must be 'float64' or 'float32', got {self.precision!r}")
        if int(self.M) < 1:
            raise MlcilError(f"{self.name}: M must be a positive number of random features, got {self.M}")
        if not (self.pseudo_threshold == "calibrated" or 0.0 < float(self.pseudo_threshold) < 1.0):
            raise MlcilError(f"{self.name}: pseudo_threshold must be in (0, 1) or 'calibrated', got {self.pseudo_threshold!r}")

    @property
    def has_frame(self) -> bool:
        """True once the feature map, λ and α are fixed (after the first session, or by :meth:`spawn`)."""
        return hasattr(self, "R_")

    @property
    def _per_session(self) -> bool:
        return self.strategy != "negative"

    def _features(self, X) -> torch.Tensor:
        return ridge.random_features(ridge.to_tensor(X, self.R_.device, self.mean_, self.scale_), self.R_,
                                     self.include_x)

    def _stats(self, X, Y: np.ndarray, weights: np.ndarray | None):
        return ridge.accumulate(X, Y, self.R_, self.mean_, self.scale_, self.include_x, weights,
                                precision=self.precision)

    # ---- learning ------------------------------------------------------------------------
    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        self._check_params()
        frame_new = not self.has_frame
        if frame_new:
            self._set_frame(X, Y)
        t = len(getattr(self, "session_classes_", []))
        tr, val = holdout_split(X.shape[0], self.val_fraction, int(self.seed) * 7919 + t)
        weights = ridge.imbalance_weights(Y) if self.balance else None
        w = (lambda rows: None) if weights is None else (lambda rows: weights[rows])
        G_tr, B_tr = self._stats(X[tr], Y[tr], w(tr))
        G_val, B_val = self._stats(X[val], Y[val], w(val)) if len(val) else (torch.zeros_like(G_tr), torch.zeros_like(B_tr))
        if frame_new and len(val):
            self._choose_lambda_alpha(G_tr, B_tr, X[tr], Y[tr], X[val], Y[val], w(tr))
        G_list = [g.clone() for g in getattr(self, "G_", [])]
        B_list = [b.clone() for b in getattr(self, "B_", [])]
        # pseudo-labels for old classes on this session's rows, from the model before this session
        if self.strategy == "pseudo" and self.is_fitted:
            _, B_pseudo = self._stats(X, self._pseudo_labels(X), weights)
            col = 0
            for s, cls in enumerate(self.session_classes_):
                B_list[s] += B_pseudo[:, col:col + len(cls)]
                col += len(cls)
        # calibration of the new classes on held-out rows, with the model trained without them
        a, b = np.ones(len(classes)), np.zeros(len(classes))
        thresholds = np.full(len(classes), 0.5)
        if len(val):
            G_all_tr = sum(G_list, G_tr)
            W_tmp = weighted_solve(G_all_tr, G_tr, B_tr, self.alpha_, self.lambda_)
            val_scores = (self._features(X[val]).to(torch.float64) @ W_tmp).cpu().numpy()
            a, b = fit_platt(val_scores, Y[val])
            thresholds = best_f1_thresholds(apply_platt(val_scores, a, b), Y[val])
        G_new, B_new = G_tr + G_val, B_tr + B_val
        if self._per_session or not G_list:
            G_list.append(G_new)
        else:
            G_list[0] = G_list[0] + G_new
        B_list.append(B_new)
        # commit
        self.G_, self.B_ = G_list, B_list
        self.session_classes_ = getattr(self, "session_classes_", []) + [classes.tolist()]
        self.session_rows_ = getattr(self, "session_rows_", []) + [int(X.shape[0])]
        self.platt_a_ = np.concatenate([getattr(self, "platt_a_", np.zeros(0)), a])
        self.platt_b_ = np.concatenate([getattr(self, "platt_b_", np.zeros(0)), b])
        self.thresholds_ = np.concatenate([getattr(self, "thresholds_", np.zeros(0)), thresholds])
        self._classes = np.concatenate([self.classes_, classes])
        self._solve()

    def _set_frame(self, X, Y: np.ndarray) -> None:
        """Fix the feature map from the first session: standardisation, R; λ and α defaults."""
        dev = ridge.resolve_device(self.device)
        self.n_features_ = int(X.shape[1])
        self.mean_, self.scale_ = ridge.standardizer(X)
        self.R_ = ridge.gaussian_projection(X.shape[1], int(self.M), self.seed, dev)
        self.lambda_ = None
        self.alpha_ = {"negative": 1.0, "known": 0.0}.get(self.strategy, self.alpha if self.alpha is not None
                                                          else DEFAULT_ALPHA)
        self.alpha_ = float(self.alpha_)

    def _choose_lambda_alpha(self, G_tr, B_tr, X_tr, Y_tr, X_val, Y_val, w_tr) -> None:
        """λ on held-out rows (all λ from one eigendecomposition); then α, if free, by
        simulating label absence inside the first session: its classes are split in two
        halves learned as two sessions, and α is scored on the held-out rows, which know
        every first-session label."""
        phi_val = self._features(X_val)
        lambdas = ridge.lambda_grid(G_tr, self.n_lambdas)
        best, self.val_map_, _ = select_lambda(G_tr, B_tr, phi_val, Y_val, lambdas)
        n_tr, n = len(Y_tr), len(Y_tr) + len(Y_val)
        lam = float(lambdas[best])
        self.lambda_ = lam * n / n_tr  # the final fit has n rows: keep λ's weight relative to the data
        if self.strategy not in ("weighted", "pseudo") or self.alpha is not None or Y_tr.shape[1] < 2:
            return
        k = Y_tr.shape[1]
        rng = np.random.default_rng(self.seed)
        phi_val64 = phi_val.to(torch.float64)
        scores = np.zeros(len(ALPHA_GRID))
        n_partitions = 2
        for _ in range(n_partitions):
            half = np.zeros(k, dtype=bool)
            half[rng.permutation(k)[: k // 2]] = True
            parts = []
            for mask in (half, ~half):
                rows = np.flatnonzero(Y_tr[:, mask].any(axis=1))
                G, B = self._stats(X_tr[rows], Y_tr[np.ix_(rows, np.flatnonzero(mask))],
                                   None if w_tr is None else w_tr[rows])
                parts.append((G, B, np.flatnonzero(mask)))
            G_all = parts[0][0] + parts[1][0]
            for i, alpha in enumerate(ALPHA_GRID):
                S = np.zeros((len(Y_val), k))
                for G, B, cols in parts:
                    S[:, cols] = (phi_val64 @ weighted_solve(G_all, G, B, alpha, lam)).cpu().numpy()
                scores[i] += np.nanmean(average_precision(Y_val, S)) if Y_val.any() else 0.0
        self.alpha_scores_ = (scores / n_partitions).tolist()
        self.alpha_ = float(ALPHA_GRID[int(np.argmax(scores))])

    def _pseudo_labels(self, X) -> np.ndarray:
        """n × len(classes_) pseudo-labels of the old classes: proba above the threshold."""
        P = self.proba(X)
        thr = self.thresholds_ if self.pseudo_threshold == "calibrated" else float(self.pseudo_threshold)
        return (P > thr).astype(np.uint8)

    def _solve(self) -> None:
        """Recompute W for every session group from the statistics."""
        if self.lambda_ is None:  # first session too small to hold rows out: middle of the grid
            self.lambda_ = float(ridge.lambda_grid(self.G_[0], self.n_lambdas)[self.n_lambdas // 2])
        G_all = sum(self.G_[1:], self.G_[0].clone())
        parts = []
        if not self._per_session:
            B = torch.cat(self.B_, dim=1)
            self.W_ = ridge.ridge_solve(G_all, B, self.lambda_)
            return
        suffix = None
        Ks = [None] * len(self.G_)
        for s in range(len(self.G_) - 1, -1, -1):  # K_s = Σ_{u≥s} G_u for pseudo, else G_s
            suffix = self.G_[s] if suffix is None else suffix + self.G_[s]
            Ks[s] = suffix if self.strategy == "pseudo" else self.G_[s]
        for s, B in enumerate(self.B_):
            if B.shape[1]:
                parts.append(weighted_solve(G_all, Ks[s], B, self.alpha_, self.lambda_))
        self.W_ = torch.cat(parts, dim=1) if parts else torch.zeros(G_all.shape[0], 0, dtype=torch.float64)

    # ---- prediction ----------------------------------------------------------------------
    def scores(self, X) -> np.ndarray:
        X = self._check_X(X)
        return ridge.predict(X, self.R_, self.mean_, self.scale_, self.include_x, self.W_)

    def proba(self, X) -> np.ndarray:
        return apply_platt(self.scores(X), self.platt_a_, self.platt_b_).astype(np.float32)

    # ---- exact operations ----------------------------------------------------------------
    def spawn(self) -> "Analytic":
        """An empty learner with this learner's frame (R, standardisation, λ, α).

        Feed it other data for the same sessions and :meth:`merge` it back: the result is
        exactly the learner fed both (distributed or federated learning).
        """
        if not self.has_frame:
            raise MlcilError(f"{self.name}: spawn needs a frame; learn a first session")
        twin = type(self)(**self.get_params())
        for key in ("n_features_", "mean_", "scale_", "R_", "lambda_", "alpha_"):
            setattr(twin, key, getattr(self, key))
        return twin

    def merge(self, other: "Analytic") -> "Analytic":
        """Add ``other``'s statistics to this learner's (same frame, same sessions); exact.

        Calibration and thresholds stay this learner's. Not exact for 'pseudo' (its labels
        depend on each learner's model) or with ``balance`` (weights depend on each shard).
        """
        if not isinstance(other, Analytic):
            raise MlcilError(f"{self.name}: merge expects an Analytic learner, got {type(other).__name__}")
        for key in ("mean_", "scale_"):
            if not np.array_equal(getattr(self, key), getattr(other, key)):
                raise MlcilError(f"{self.name}: merge needs the same frame ({key} differs); create the other learner with spawn()")
        if not torch.equal(self.R_.cpu(), other.R_.cpu()) or self.lambda_ != other.lambda_ or self.alpha_ != other.alpha_:
            raise MlcilError(f"{self.name}: merge needs the same frame (R, λ, α); create the other learner with spawn()")
        if self.strategy != other.strategy or self.include_x != other.include_x:
            raise MlcilError(f"{self.name}: merge needs the same strategy and features")
        if self.session_classes_ != other.session_classes_:
            raise MlcilError(
                f"{self.name}: merge needs the same sessions; got {self.session_classes_} and {other.session_classes_}"
            )
        self.G_ = [a + b.to(a.device) for a, b in zip(self.G_, other.G_)]
        self.B_ = [a + b.to(a.device) for a, b in zip(self.B_, other.B_)]
        self.session_rows_ = [a + b for a, b in zip(self.session_rows_, other.session_rows_)]
        self._solve()
        return self

    def _forget(self, keep: np.ndarray) -> None:
        """Drop classes: their columns of B go, the rows they came with stay as data.

        Exactly equals a learner fed the same sessions with those label columns removed.
        """
        col, B_list, sessions = 0, [], []
        for B, cls in zip(self.B_, self.session_classes_):
            k = len(cls)
            mask = keep[col:col + k]
            B_list.append(B[:, torch.as_tensor(mask, device=B.device)])
            sessions.append([c for c, m in zip(cls, mask) if m])
            col += k
        self.B_, self.session_classes_ = B_list, sessions
        self.platt_a_, self.platt_b_, self.thresholds_ = self.platt_a_[keep], self.platt_b_[keep], self.thresholds_[keep]
        self._solve()

    def forget_examples(self, X, Y, classes) -> "Analytic":
        """Subtract examples learned in the session of ``classes``: exact unlearning.

        X n×d and Y n×len(classes) must be the rows and labels that session was given
        (``classes`` in the same order as learned). Equals a learner never fed them.
        """
        if self.strategy == "pseudo" or self.balance:
            raise MlcilError(f"{self.name}: forget_examples is exact only without pseudo-labels and balance weights")
        X = self._check_X(X)
        classes = [int(c) for c in np.atleast_1d(classes)]
        if classes not in self.session_classes_:
            raise MlcilError(f"{self.name}: no session learned exactly the classes {classes}")
        Y = check_labels(Y, f"{self.name}: Y", n=X.shape[0], L=len(classes))
        s = self.session_classes_.index(classes)
        G, B = self._stats(X, Y, None)
        g_index = s if self._per_session else 0
        self.G_[g_index] = self.G_[g_index] - G
        self.B_[s] = self.B_[s] - B
        self.session_rows_[s] -= int(X.shape[0])
        self._solve()
        return self

    def _after_load(self) -> None:
        dev = ridge.resolve_device(self.device)
        self.R_, self.W_ = self.R_.to(dev), self.W_.to(dev)
        self.G_ = [g.to(dev) for g in self.G_]
        self.B_ = [b.to(dev) for b in self.B_]
