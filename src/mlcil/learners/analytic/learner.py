"""``Analytic``: exact, exemplar-free multi-label continual learning (docs/concepts/learners.md); the class itself.

Random features φ(x) = ReLU(z(x)ᵀR) [⊕ z(x)] and ridge regression through sufficient statistics that only
grow by addition: per session s, G_s = Σ φφᵀ (D×D) and B_s = Σ φ yᵀ (D×|C_s|). For the classes C_s of
session s, W_{C_s} = (α G_all + (1 − α) K_s + λI)⁻¹ B_s (:mod:`mlcil.ridge.absence`). Because statistics
add, learning session by session equals one fit on the union with the same partial labels, learners fed
disjoint data merge exactly, and examples or classes are forgotten exactly.

This module holds the parameters, learning, the solve, scores, leave-one-out, ``from_statistics`` and
``set_lambda``. Each other concept is its own module of this package, mixed into the class: :mod:`.frame`
(feature map, scaling, budget), :mod:`.lambdas` (λ selection), :mod:`.absence` (α search, pseudo-labels),
:mod:`.prior` (name prior), :mod:`.memory` (label memory), :mod:`.calibration` (later recalibration),
:mod:`.exact` (spawn, merge, forgetting). Everything is NumPy/SciPy (torch only for a GPU ``device``, inside
the ridge core); scores and probabilities go through the one solved model, :class:`mlcil.ridge.RidgeModel`
(:attr:`Analytic.model_`). What each option does and what it measured: ``docs/learners/analytic.md``.
"""

from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np

from mlcil import ridge
from mlcil.data.dataset import check_labels
from mlcil.decide.calibration import apply_calibration, concat_calibration, fit_calibration, select_calibration
from mlcil.decide.thresholds import best_f1_thresholds
from mlcil.errors import MlcilError, NotFittedError
from mlcil.learners import label_memory
from mlcil.learners.analytic.absence import PSEUDO_CALIBRATIONS, STRATEGIES, LabelAbsence
from mlcil.learners.analytic.calibration import LaterCalibration
from mlcil.learners.analytic.exact import ExactOperations
from mlcil.learners.analytic.frame import SCALING_CHOICES, Frame
from mlcil.learners.analytic.lambdas import GCV_GRID, LAMBDA_SEARCHES, N_LAMBDAS, LambdaSelection
from mlcil.learners.analytic.memory import MEMORIES, MEMORY_KEYS, LabelMemory
from mlcil.learners.analytic.prior import NamePrior
from mlcil.learners.base import Learner, as_classes, register
from mlcil.ridge import absence as ridge_absence
from mlcil.ridge.absence import SessionSpectrum, absence_system, weighted_solve


#: parameters removed from :class:`Analytic` (issue 27) and the one value each is now fixed at.
REMOVED_OPTIONS = {"pseudo_calibration": "ridge", "n_lambdas": N_LAMBDAS}


class _RemovedOptions(type(Learner)):
    """Constructs a learner without the options it no longer has, so that a learner saved before their
    removal still loads (``Learner.load`` passes every saved parameter back): the fixed value is dropped
    silently, another one with a :class:`FutureWarning` naming what is used instead. A subclass that
    keeps one of them as its own parameter (``Joint``'s ``n_lambdas``) receives it as usual."""

    def __call__(cls, *args: Any, **kwargs: Any):
        own = set(cls._param_names())
        for key in [k for k in kwargs if k in REMOVED_OPTIONS and k not in own]:
            value = kwargs.pop(key)
            if value != REMOVED_OPTIONS[key]:
                warnings.warn(f"{cls.__name__}: option {key!r} was removed (it won on no measured dataset); "
                              f"{key}={value!r} is ignored and {REMOVED_OPTIONS[key]!r} used",
                              FutureWarning, stacklevel=2)
        return super().__call__(*args, **kwargs)


@register("analytic")
class Analytic(Frame, LambdaSelection, LabelAbsence, NamePrior, LabelMemory, LaterCalibration, ExactOperations,
               Learner, metaclass=_RemovedOptions):
    """Random-feature ridge learner through sufficient statistics (the flagship).

    Args:
        M: number of random features (ReLU(zᵀR), R ~ N(0, 1/d), seeded).
        include_x: also use the scaled input z as features (D = M + d columns); 'auto' = only when
            d ≤ :data:`mlcil.ridge.INCLUDE_X_MAX_FEATURES` (wide inputs would make the D×D state huge).
        scaling: input scaling z(x): 'none', 'standardize' (dense only), 'scale' (per-column root
            mean square, no centring: sparse-safe), 'l2' (unit rows), or 'auto': each candidate
            ('none', 'standardize' or, for sparse input, 'scale', and 'l2') is scored by the same
            closed-form leave-one-out mAP that picks λ, on the first session (a sample of at most
            8000 rows, the first 512 random features), and the best is kept.
        clip: 'auto' (default), None or c > 0: winsorise the scaled input to [−c, c] spreads for the per-column
            scalings ('standardize', 'scale'; :class:`mlcil.ridge.FeatureMap`). Their statistics come from
            the first session, and a later row tens of spreads out (a column constant in the first
            session, a heavy tail) otherwise dominates its features. 'auto': c = 3 when those statistics come
            from fewer than 64 rows (:data:`~mlcil.learners.analytic.frame.AUTO_CLIP_ROWS`), none from more;
            the level in use is ``clip_``. What it gains and loses: ``docs/learners/analytic.md``. See also
            :meth:`fit_frame`.
        strategy: label-absence strategy: 'negative', 'known', 'weighted' or 'pseudo'.
        alpha: weight of absent labels as negatives (weighted/pseudo); None = choose on
            held-out rows of the first session by simulating label absence within it.
        balance: weight examples by the inverse square root of their positive classes'
            frequency within the session (L3A's sample weighting idea).
        pseudo_threshold: probability σ(s) of the ridge output s (L3A's rule, over the rows of every session so
            far) above which an old class becomes a pseudo-positive
            (0.7 as in L3A); 'calibrated' for per-class F1-optimal thresholds found on
            leave-one-out scores of the class's own session (on the Platt probability); 'soft'
            for the ridge output clipped to [0, 1] as a soft target.
        lambda_search: 'gcv' (default): λ re-chosen after every session by generalised cross-validation of each
            session's own rows and given labels, computed from that session's statistics alone (G_s, B_s, Σw y_c²
            per label, Σw: no row is kept; one eigendecomposition per session;
            :func:`mlcil.ridge.gcv_column_curves`), every label counted equally (its GCV divided by its mean
            squared target, as mAP averages labels whatever their frequency), summed over the labels and
            sessions, on a 25-point grid (10⁻⁵..10³ × the first session's mean eigenvalue)
            restricted to the λ whose effective degrees of freedom stay at most half the session's rows
            (:data:`mlcil.ridge.GCV_MAX_DOF`; GCV rewards interpolation beyond), and, when the first session
            has at least :data:`~mlcil.learners.analytic.lambdas.LOO_FLOOR_ROWS` rows, not below that session's
            leave-one-out mAP choice ('first' below; ``lambda_floor_``): from that many rows the ranking
            estimate is trusted over GCV's squared error, which picks too small a λ on wide word counts. With
            ``memory='labels'`` and one system for every class ('negative', or 'weighted' with α = 1) the learner solves
            ``joint``'s problem on the rows seen, so λ minimises the GCV of that union
            instead (G_all, B, the memory's label bits and example count), over a continuous λ (the grid
            brackets it, golden section refines it: :func:`mlcil.ridge.gcv_minimum`), re-chosen after merge
            and forgetting too: it equals ``Joint(lambda_search='gcv')``'s λ on the same rows and frame.
            Expert options (measured cases: ``docs/learners/analytic.md``): 'first': λ maximising the
            closed-form leave-one-out mAP of the first session on a 13-point log grid (10⁻⁴..10² × mean
            eigenvalue of its G), kept for the stream; 'sessions': re-chosen after every session from the
            leave-one-out mAP curve of each session's own classes on its own rows, summed over the sessions
            weighted by their numbers of classes.
            With 'sessions' or 'gcv' and 'known' the old classes' weights change only through λ.
        loo_rows: at most this many rows per session get leave-one-out scores (λ search,
            Platt calibration, per-class thresholds); every row is learned.
        precision: 'float64' or 'float32' multiplication when accumulating statistics
            (sums and solves are float64 either way).
        calibration: 'platt' or 'isotonic': per-class map from ridge score to probability,
            fitted on leave-one-out scores of the class's own session (no rows held out).
        calibrate_later: also recalibrate old classes after each later session, with that
            session's rows as their negatives (the rows' labels for old classes are absent; read as
            0, as ``negative`` does). Corrects the prior shift between a class's own session, where
            every row carries one of its classes, and the test population; a single-class session
            otherwise has no negative to calibrate on. Stores scores and labels of at most
            ``loo_rows`` rows per session pair, never inputs. Off by default (measurements:
            ``docs/learners/analytic.md``).
        memory_budget: bytes ('8GB', an int) or a fraction of RAM the state may take; None = the
            default budget (:func:`mlcil.ridge.memory_budget`). Checked before anything is allocated.
        memory: None (default: nothing kept per example) or 'labels': a label memory that keeps, per
            example seen, a 64-bit key and its given label bits — never its input (8 + ⌈T/8⌉ + ⌈L/8⌉
            bytes per example, :attr:`memory_bytes`). An example that reappears in a later session
            (the field's protocol) then enters the statistics once: no second φφᵀ in G, its new
            labels join B and its labels for the sessions it was given in count as known, so that with
            'negative' the learner equals :class:`~mlcil.learners.Joint` fit on the union of the rows
            (same λ and frame). :meth:`merge` (examples in one learner only), :meth:`forget` and
            :meth:`forget_examples` (which can then forget an example from every session by its input
            alone) stay exact. Works with a distributed engine: the digests and the table stay in
            the learning process, the engine accumulates the statistics of the new and of the
            reappearing rows. Not with ``balance`` (its weights are per session, an example has one row).
        memory_key: what identifies an example in the label memory: 'content' (a 64-bit digest of the
            input row's float32 values, :func:`mlcil.ridge.row_digests`: identical inputs are one
            example; two different rows collide with probability ≈ 2⁻⁶⁴, 2.7% for some pair among 10⁹
            examples — a collision makes the second example's row count as a reappearance of the
            first: its φφᵀ is missing from G once) or 'index' (the caller's ids, ``session.index``:
            no collision; tells apart examples with identical inputs).
        seed: seeds R and the held-out splits.
        device: where φ and the statistics' products run: 'cpu' (NumPy, the default), 'cuda'/'cuda:N' or
            'auto' (the ridge core's :class:`~mlcil.ridge.FeatureMap` and statistics on the GPU, through torch,
            imported only then). The state and every solve stay NumPy on the host.
        prior: β, weight of the name prior: when a session carries ``label_embeddings`` (one row per
            new class: its name, embedded by the text encoder that embedded X), each class c adds a
            pseudo-example e_c, positive for c and negative for the session's other classes, of weight
            β: G += β φ(e_c)φ(e_c)ᵀ, B[:, c] += β φ(e_c). A class has scores before its first example
            (:meth:`learn_names`), and the data outweigh the prior as examples arrive. The prior is
            statistics like the rest: ``merge`` counts it once, ``forget`` removes it with its class.
            0 = off; sessions without label embeddings are unaffected.

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
    mutable_params = frozenset({"device", "memory_budget", "prior"})  # may change after learning; every other is frozen

    distributable = True  # full-data passes go through the engine of learn(session, engine=...)

    # options removed by issue 27 (they won nowhere once the default was right): fixed here; a saved learner that
    # names them still loads (:class:`_RemovedOptions`), a non-default value with a warning
    pseudo_calibration = "ridge"
    n_lambdas = N_LAMBDAS

    def __init__(self, M: int = 2048, include_x: bool | str = "auto", scaling: str = "auto",
                 clip: float | str | None = "auto", strategy: str = "weighted",
                 alpha: float | None = None, balance: bool = False, pseudo_threshold: Any = 0.7,
                 loo_rows: int = 2000, precision: str = "float64", calibration: str = "platt",
                 calibrate_later: bool = False, memory_budget: Any = None, memory: str | None = None,
                 memory_key: str = "content", lambda_search: str = "gcv", seed: int = 0,
                 device: str = "cpu", prior: float = 1.0) -> None:
        self.M = M
        self.include_x = include_x
        self.scaling = scaling
        self.clip = clip
        self.strategy = strategy
        self.alpha = alpha
        self.balance = balance
        self.pseudo_threshold = pseudo_threshold
        self.loo_rows = loo_rows
        self.precision = precision
        self.calibration = calibration
        self.calibrate_later = calibrate_later
        self.memory_budget = memory_budget
        self.memory = memory
        self.memory_key = memory_key
        self.lambda_search = lambda_search
        self.seed = seed
        self.device = device
        self.prior = prior

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
        if isinstance(self.prior, bool) or not isinstance(self.prior, (int, float)) or not self.prior >= 0:
            raise MlcilError(f"{self.name}: prior must be a weight >= 0, got {self.prior!r}")
        if self.calibration not in ("platt", "isotonic"):
            raise MlcilError(f"{self.name}: calibration must be 'platt' or 'isotonic', got {self.calibration!r}")
        if isinstance(self.M, bool) or not isinstance(self.M, (int, np.integer)) or int(self.M) < 1:
            raise MlcilError(f"{self.name}: M must be a positive number of random features, got {self.M!r}")
        if self.include_x not in (True, False, "auto"):
            raise MlcilError(f"{self.name}: include_x must be True, False or 'auto', got {self.include_x!r}")
        if self.scaling not in SCALING_CHOICES:
            raise MlcilError(f"{self.name}: scaling must be one of {', '.join(SCALING_CHOICES)}, got {self.scaling!r}")
        if not (isinstance(self.clip, str) and self.clip == "auto"):
            try:
                ridge.check_clip(self.clip)
            except MlcilError as exc:
                raise MlcilError(f"{self.name}: {exc} (or 'auto')") from None
        if self.pseudo_calibration not in PSEUDO_CALIBRATIONS:
            raise MlcilError(f"{self.name}: pseudo_calibration must be 'ridge' or 'platt', got "
                             f"{self.pseudo_calibration!r}")
        if self.lambda_search not in LAMBDA_SEARCHES:
            raise MlcilError(f"{self.name}: lambda_search must be one of {', '.join(LAMBDA_SEARCHES)}, got "
                             f"{self.lambda_search!r}")
        if self.memory not in MEMORIES:
            raise MlcilError(f"{self.name}: memory must be None or 'labels', got {self.memory!r}")
        if self.memory_key not in MEMORY_KEYS:
            raise MlcilError(f"{self.name}: memory_key must be 'content' or 'index', got {self.memory_key!r}")
        if self.memory and self.balance:
            raise MlcilError(f"{self.name}: memory='labels' does not combine with balance=True (balance weights are "
                             "per session; with a label memory an example has one row)")
        if not (self.pseudo_threshold in ("calibrated", "soft") or 0.0 < float(self.pseudo_threshold) < 1.0):
            raise MlcilError(
                f"{self.name}: pseudo_threshold must be in (0, 1), 'calibrated' or 'soft', got {self.pseudo_threshold!r}"
            )

    @property
    def has_frame(self) -> bool:
        """True once the feature map, λ and α are fixed (after the first session, or by :meth:`spawn`)."""
        return hasattr(self, "R_")

    def _per_session(self, alpha: float | None = None) -> bool:
        """Whether a G per session is needed: not when every class solves against G_all
        ('negative', or 'weighted' whose α came out as 1), which then keeps one G."""
        alpha = self.alpha_ if alpha is None else alpha
        return self.strategy in ("known", "pseudo") or (self.strategy == "weighted" and alpha < 1.0)


    @property
    def model_(self) -> ridge.RidgeModel:
        """The solved model (the ridge core's :class:`~mlcil.ridge.RidgeModel`: feature map, W_, λ,
        calibration_, thresholds_) that :meth:`scores` and :meth:`proba` go through; rebuilt when any of
        them changes."""
        if not hasattr(self, "W_"):
            raise NotFittedError(f"{self.name}: not fitted yet; call learn(X, Y) first")
        parts = (self.feature_map, self.W_, self.calibration_, self.thresholds_)
        cached = getattr(self, "_model", None)
        if cached is None or cached[1] != self.lambda_ or any(a is not b for a, b in zip(cached[0], parts)):
            model = ridge.RidgeModel(parts[0], self.W_, self.lambda_, self.calibration_, self.thresholds_)
            self._model = cached = (parts, self.lambda_, model)
        return cached[2]

    # ---- learning ------------------------------------------------------------------------
    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        self._check_params()
        frame_new = not self.has_frame
        t = len(getattr(self, "session_classes_", []))
        weights = ridge.imbalance_weights(Y) if self.balance else None
        self._check_memory(X.shape[1], extra_sessions=1)
        recall = None  # with a label memory: (memory after this session, record of each row, first-seen rows)
        G_fresh = None  # with a label memory: the Gram matrix of the rows seen for the first time
        if frame_new:
            G_new, B_new = self._set_frame(X, Y, weights)
            G_fresh = G_new
            if self.memory:
                recall = label_memory.add_session(label_memory.empty(), self._memory_keys(X), Y)
        elif self.memory:
            recall = label_memory.add_session(getattr(self, "memory_", label_memory.empty()), self._memory_keys(X), Y)
            G_new, B_new, G_fresh = self._memory_statistics(X, Y, recall[2])
        else:
            G_new, B_new = self._stats(X, Y, weights)
        # leave-one-out rows: λ, calibration and thresholds without holding data out
        sub = np.sort(np.random.default_rng(int(self.seed) * 7919 + t).permutation(X.shape[0])[: int(self.loo_rows)])
        phi_sub = self._features(X[sub])
        Y_sub = np.asarray(Y[sub], dtype=np.float64)
        w_sub = None if weights is None else weights[sub]
        G_own, B_own = G_new, B_new  # this session's own statistics, before a name prior
        spectrum: list = []

        def own() -> SessionSpectrum:
            """G_own diagonalised once, B_own and the held-out rows in its coordinates (in the n×n dual when the
            session has fewer rows than features)."""
            if not spectrum:
                dual = ridge_absence.use_dual(X.shape[0], G_own.shape[0])  # (looked up here: tests turn it off)
                spectrum.append(SessionSpectrum.dual(self._features(X), Y, weights, sub) if dual
                                else SessionSpectrum.primal(G_own, B_own, phi_sub))
            return spectrum[0]

        evidence = getattr(self, "lambda_evidence_", None)
        label_curves = None  # 'gcv': this session's GCV curve of each of its classes (kept, so forget re-chooses λ)
        gcv = self.lambda_search == "gcv"
        union = not frame_new and self._union_gcv()  # λ from the union's statistics, after they are summed below
        if gcv and not union:  # evidence = −Σ_s GCV_s of each session's own rows and labels (higher is better)
            if frame_new:
                self.lambda_grid_ = ridge.lambda_grid(G_new, *GCV_GRID)
                self._set_lambda_floor(X.shape[0], G_new, own().B, own().phi, Y[sub], w_sub, own().eig)
            label_curves = self._label_gcv(G_new, own().B, Y, weights, own().eig)
            curve = label_curves.sum(axis=0)
            evidence = -curve if frame_new else evidence - curve
        if frame_new:
            lam = self._gcv_lambda(evidence) if gcv else self._choose_lambda(G_new, own().B, own().phi, Y[sub], w_sub,
                                                                             own().eig)
            alpha = self._choose_alpha(X, Y, weights, lam)
        else:
            lam, alpha = (self._gcv_lambda(evidence) if gcv and not union else self.lambda_), self.alpha_
        if G_new is None:  # a label memory with one shared system keeps no Gram of this session's rows
            G_prior, B_new, prior_phi = self._name_prior(0.0, B_new, len(classes))
            if prior_phi is not None:  # the names' pseudo-examples are new rows of the memory's Gram
                G_fresh = G_fresh + G_prior
        else:
            G_named, B_new, prior_phi = self._name_prior(G_new, B_new, len(classes))
            if self.memory and prior_phi is not None:  # the names' pseudo-examples are new rows of the memory's Gram
                G_fresh = G_fresh + (G_named - G_new)
            G_new = G_named
        G_list = list(getattr(self, "G_", []))  # (entries are replaced below, never changed in place)
        B_list = [b.copy() for b in getattr(self, "B_", [])]  # pseudo-labels add to these in place
        G_seen = getattr(self, "G_seen_", None)
        # pseudo-labels for old classes on this session's rows, from the model before this session
        pseudo_bits = self._add_pseudo_labels(X, weights, recall, G_list, B_list, G_fresh)
        per_session = self._per_session(alpha)
        if self.memory and per_session:  # G_s per session and the Gram of every example seen, once
            G_list.append(G_new)
            G_seen = G_fresh if G_seen is None else G_seen + G_fresh
        elif per_session or not G_list:
            G_list.append(G_fresh if self.memory else G_new)
        else:
            G_list[0] = G_list[0] + (G_fresh if self.memory else G_new)
        B_list.append(B_new)
        # calibrate the new classes on leave-one-out scores of their own session's rows
        G_all = self._gram_all(G_list, G_seen)
        own_system = frame_new and prior_phi is None  # the system is G_own + λI (G_all = K_s = G_own): own() solves it
        if gcv and self._union_gcv(alpha):  # (the first session's grid λ above only served the α search)
            yy, n = self._union_counts(Y, weights, None if recall is None else recall[0],
                                       self._prior_weights_after(len(classes), prior_phi is not None))
            if own_system:  # (B_list is [B_own])
                lam, curve = ridge.gcv_minimum(G_all, own().B, yy, n, self.lambda_grid_, eig=own().eig)
            else:
                lam, curve = ridge.gcv_minimum(G_all, np.concatenate(B_list, axis=1), yy, n, self.lambda_grid_)
            evidence = -curve
        if self.lambda_search == "sessions":
            if frame_new:
                evidence = np.nan_to_num(np.asarray(self.lambda_map_, dtype=np.float64), nan=0.0) * len(classes)
            else:
                if per_session and alpha == 0.0 and prior_phi is None:  # the system without λ is G_own
                    lam, evidence = self._reselect_lambda(G_new, own().B, own().phi, Y[sub], w_sub, evidence, lam,
                                                          own().eig)
                else:
                    lam, evidence = self._reselect_lambda(absence_system(G_all, G_new if per_session else G_all, alpha,
                                                                         0.0), B_new, phi_sub, Y[sub], w_sub,
                                                          evidence, lam)
        # with α = 0 (and no pseudo-labels) a session's weights never change afterwards: every later solve must
        # reproduce them bit for bit, so they come from the Cholesky factor that _solve uses, not from own()
        if own_system and not (alpha == 0.0 and self.strategy != "pseudo"):
            W_new = own().solve(lam)
            loo = ridge.loo_path_scores(G_new, own().B, own().phi, Y_sub, [lam], w_sub, own().eig)[0]
            factor, solve_last = None, (lambda B: W_new)  # noqa: E731  (the first session: B is B_own)
        else:
            K = G_new if per_session else G_all
            A = absence_system(G_all, K, alpha, 0.0, copy=False)
            factor = ridge.Factor(A, lam, overwrite=A is not G_all and A is not K)  # (a new array: factored in place)
            W_new = factor.solve(B_new)
            loo = ridge.loo_scores(factor.L, W_new, phi_sub, Y_sub, w_sub)
            solve_last = factor.solve
        calib = fit_calibration(self.calibration, loo, Y[sub])
        thresholds = best_f1_thresholds(apply_calibration(calib, loo), Y[sub])
        # commit
        self.lambda_, self.alpha_ = lam, alpha
        if evidence is not None:
            self.lambda_evidence_ = evidence
        if label_curves is not None:
            self.lambda_curves_ = self._stack_label_curves(frame_new, label_curves)
        self.G_, self.B_ = G_list, B_list
        if self.memory:
            self.memory_ = recall[0]
            if per_session:
                self.G_seen_ = G_seen
            if self.strategy == "pseudo":
                self.memory_pseudo_ = self._pseudo_bits_after(recall, pseudo_bits)
        self.session_classes_ = getattr(self, "session_classes_", []) + [classes.tolist()]
        self.session_rows_ = getattr(self, "session_rows_", []) + [int(X.shape[0])]
        self.calibration_ = concat_calibration(getattr(self, "calibration_", None), calib)
        self.thresholds_ = np.concatenate([getattr(self, "thresholds_", np.zeros(0)), thresholds])
        self._classes = np.concatenate([self.classes_, classes]) if self.is_fitted else classes
        self._keep_prior(prior_phi, len(classes))
        self._solve(last=solve_last)  # the last session's system is factored already: no second factorisation
        self._factor = None if factor is None else (t, factor.L)
        if self.calibrate_later:  # keep this session's calibration rows (scores and labels, no inputs)
            if len(getattr(self, "calib_data_", [])) != t:
                raise MlcilError(f"{self.name}: calibrate_later must be set before the first session")
            own = {"scores": loo.astype(np.float32), "labels": Y[sub].astype(np.uint8),
                   "weights": np.full(len(sub), X.shape[0] / max(len(sub), 1))}
            self.calib_data_ = getattr(self, "calib_data_", []) + [own]
            if t > 0:
                self._recalibrate_old(phi_sub, X.shape[0])


    def _gram_all(self, G_list: list | None = None, G_seen: np.ndarray | None = None) -> np.ndarray:
        """G_all: the Gram matrix of every row learned (of every example seen once, with a label memory).
        May be one of the stored matrices itself: read it, never change it in place."""
        if G_list is None:
            G_list, G_seen = self.G_, getattr(self, "G_seen_", None)
        if self.memory and G_seen is not None:
            return G_seen
        return sum(G_list[1:], G_list[0])

    def _known_grams(self) -> list[np.ndarray]:
        """K_s per session: the Gram matrix of the rows whose labels for C_s are known (or pseudo-labelled).
        Stored as is, except for 'pseudo' without memory: K_s = Σ_{u≥s} G_u (later rows are pseudo-labelled)."""
        if self.strategy != "pseudo" or self.memory:
            return list(self.G_)
        Ks, suffix = [None] * len(self.G_), None
        for s in range(len(self.G_) - 1, -1, -1):
            suffix = self.G_[s] if suffix is None else suffix + self.G_[s]
            Ks[s] = suffix
        return Ks

    def _solve(self, last=None) -> None:
        """Recompute W for every session group from the statistics.

        ``last``: B -> W for the last session's system (G_all + λI, or that session's absence system),
        when :meth:`_learn` has just factored it: reused instead of factoring the same matrix again."""
        self._factor = None  # the statistics changed: a cached factor no longer matches
        if not self._per_session():
            B = np.concatenate(self.B_, axis=1)
            self.W_ = last(B) if last is not None else ridge.ridge_solve(self._gram_all(), B, self.lambda_)
            return
        G_all = self._gram_all()
        Ks = self._known_grams()
        parts = []
        for s, B in enumerate(self.B_):
            if B.shape[1]:
                parts.append(last(B) if last is not None and s == len(self.B_) - 1 else
                             weighted_solve(G_all, Ks[s], B, self.alpha_, self.lambda_))
        self.W_ = np.concatenate(parts, axis=1) if parts else np.zeros((G_all.shape[0], 0))


    # ---- prediction ----------------------------------------------------------------------
    def scores(self, X) -> np.ndarray:
        """n × len(classes_) ridge scores φ(x)ᵀW (float32), through :attr:`model_`."""
        return self.model_.scores(self._check_X(X))

    def proba(self, X) -> np.ndarray:
        """n × len(classes_) calibrated probabilities (float32), through :attr:`model_`."""
        model = self.model_
        return model.proba_from_scores(model.scores(self._check_X(X))).astype(np.float32)

    def _session_rows(self, X, Y, classes, verb: str):
        """Validated (X, Y, session position) for rows said to belong to the session of ``classes``."""
        X = self._check_X(X)
        classes = np.atleast_1d(np.asarray(classes)).tolist()
        if classes not in self.session_classes_:
            raise MlcilError(f"{self.name}: {verb}: no session learned exactly the classes {classes}")
        Y = check_labels(Y, f"{self.name}: Y", n=X.shape[0], L=len(classes))
        return X, Y, self.session_classes_.index(classes)

    def leave_one_out(self, X, Y, classes, calibrated: bool = True, chunk: int = 4096) -> np.ndarray:
        """Out-of-sample predictions for the rows of a learned session, in closed form.

        Row i is scored on the session's classes by the model fitted without row i: with
        A the session's normal matrix (λI included), W = A⁻¹B, ŷ = φᵀW and leverage
        h = w·φᵀA⁻¹φ, that model predicts (ŷ − h·y) / (1 − h) (Sherman–Morrison): one
        Cholesky factor, no refit. This is what the label-error audit feeds to cleanlab.

        Args:
            X: n×d rows and Y: n×len(classes) labels exactly as the session with ``classes``
                was given them (the learner keeps no examples, so it cannot check this:
                rows it never learned get meaningless values).
            classes: the session's classes, in learned order.
            calibrated: return probabilities (this learner's calibration) instead of ridge scores.
        Returns:
            n×len(classes) float64.
        """
        X, Y, s = self._session_rows(X, Y, classes, "leave_one_out")
        classes = self.session_classes_[s]
        cached = getattr(self, "_factor", None)
        if cached is not None and cached[0] == s:
            L = cached[1]
        else:
            G_all = self._gram_all()
            K = self._known_grams()[s] if self._per_session() else G_all
            L = ridge.Factor(absence_system(G_all, K, self.alpha_ if self._per_session() else 1.0, 0.0, copy=False),
                             self.lambda_).L
        col = sum(len(c) for c in self.session_classes_[:s])
        W = self.W_[:, col:col + len(classes)]
        weights = ridge.imbalance_weights(Y) if self.balance else None
        out = np.empty(Y.shape, dtype=np.float64)
        for start in range(0, X.shape[0], chunk):
            rows = slice(start, start + chunk)
            w = None if weights is None else weights[rows]
            out[rows] = ridge.loo_scores(L, W, self._features(X[rows]), np.asarray(Y[rows], dtype=np.float64), w)
        if calibrated:
            keep = np.isin(self.classes_, classes)
            out = apply_calibration(select_calibration(self.calibration_, keep), out)
        return out

    # ---- a learner from statistics; λ fixed ----------------------------------------------------
    @classmethod
    def from_statistics(cls, fmap: ridge.FeatureMap, stats: ridge.Stats, lam: float, classes,
                        calibration: dict[str, np.ndarray] | None = None, thresholds: np.ndarray | None = None,
                        seed: int = 0) -> Self:
        """A fitted learner from a feature map and ridge statistics, whose scores and probabilities equal
        ``ridge.RidgeModel.solve(fmap, stats, lam, calibration, thresholds)``'s.

        The learner holds one session with every class (strategy 'negative', α = 1; ``lambda_search='first'``:
        λ stays ``lam``, the statistics carry no labels to re-choose it from): it saves and loads like
        any learner, and can learn further sessions (new classes), merge, forget and
        :meth:`set_lambda` exactly. This is how statistics gathered elsewhere (the tagging service, an
        engine) become a learner.

        Args:
            fmap: the feature map φ (input dimension d, D features); its R, scaling, spread statistics,
                include_x, clip and device are copied.
            stats: the statistics of the rows learned: G D×D, B D×C, n rows.
            lam: the ridge λ (finite, > 0).
            classes: C class names (str) or integer ids, one per column of B, distinct.
            calibration: per-class calibration in :func:`mlcil.decide.calibration.fit_calibration`'s format
                (``{'a', 'b'}`` Platt or ``{'x', 'y'}`` isotonic); None = :data:`mlcil.ridge.DEFAULT_PLATT` for
                every class (stored as that Platt map).
            thresholds: (C,) decision thresholds on probabilities; None = :data:`mlcil.ridge.DEFAULT_THRESHOLD`.
            seed: the learner's ``seed`` (its later sessions' held-out rows; R is ``fmap``'s, not redrawn).
        Returns:
            the fitted learner (``classes_`` = ``classes``).
        """
        if not isinstance(fmap, ridge.FeatureMap):
            raise MlcilError(f"from_statistics: fmap: expected a mlcil.ridge.FeatureMap, got {type(fmap).__name__}")
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) \
                or not np.isfinite(lam) or lam <= 0:
            raise MlcilError(f"from_statistics: lam: expected a finite number > 0, got {lam!r}")
        model = ridge.RidgeModel.solve(fmap, stats, float(lam), calibration, thresholds)  # checks every shape
        C = model.n_classes
        labels = as_classes(classes, "from_statistics: classes")
        if len(labels) != C or C == 0:
            raise MlcilError(f"from_statistics: classes: expected {C} class names or ids (one per column of "
                             f"stats.B, at least one), got {len(labels)}")
        if len(np.unique(labels)) != C:
            raise MlcilError("from_statistics: classes contains duplicates")
        if model.calibration is None:
            a, b = ridge.DEFAULT_PLATT
            calib = {"a": np.full(C, float(a)), "b": np.full(C, float(b))}
        else:
            calib = {k: v.copy() for k, v in model.calibration.items()}
        params = {"M": fmap.M, "include_x": fmap.include_x, "scaling": fmap.scaling, "clip": fmap.clip,
                  "strategy": "negative", "lambda_search": "first", "calibration": "isotonic" if "x" in calib else "platt", "seed": int(seed),
                  "device": fmap.device}
        learner = cls(**{k: v for k, v in params.items() if k in cls._param_names()})
        learner.n_features_ = fmap.d
        learner.include_x_ = fmap.include_x
        learner.scaling_ = fmap.scaling
        learner.clip_ = fmap.clip
        learner.shift_ = None if fmap.shift is None else fmap.shift.copy()
        learner.scale_ = None if fmap.scale is None else fmap.scale.copy()
        learner.R_ = fmap.R.copy()
        learner.lambda_, learner.alpha_ = model.lam, 1.0
        learner.G_, learner.B_ = [stats.G.copy()], [stats.B.copy()]
        learner.session_classes_ = [labels.tolist()]
        learner.session_rows_ = [int(stats.n)]
        learner.calibration_ = calib
        learner.thresholds_ = (np.full(C, float(ridge.DEFAULT_THRESHOLD)) if model.thresholds is None
                               else model.thresholds.copy())
        learner.W_ = model.W
        learner._classes = labels
        learner._keep_prior(None, C)
        return learner

    def set_lambda(self, lam: float) -> Self:
        """Re-solve the learned statistics with λ = ``lam`` fixed: W_ changes, nothing else.

        The calibration and thresholds fitted at the previous λ are kept (they map this λ's scores as
        they mapped the old one's). With ``lambda_search='first'`` λ stays ``lam`` for later sessions;
        'sessions' and 'gcv' choose λ again after the next session (and the union's GCV after merge and
        forgetting). Returns self.
        """
        if not self.is_fitted:
            raise NotFittedError(f"{self.name}: not fitted yet, no statistics to re-solve; call learn(X, Y) first")
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) \
                or not np.isfinite(lam) or lam <= 0:
            raise MlcilError(f"{self.name}: set_lambda: lam must be a finite number > 0, got {lam!r}")
        before = self.lambda_, self.W_
        try:
            self.lambda_ = float(lam)
            self._solve()
        except BaseException:
            self.lambda_, self.W_ = before
            raise
        return self

    def _after_load(self) -> None:
        """NumPy state (files written while the state was torch tensors load as arrays too); caches rebuilt."""
        self.R_ = np.ascontiguousarray(self.R_, dtype=np.float32)
        self.W_ = np.asarray(self.W_, dtype=np.float64)
        self.G_ = [np.asarray(g, dtype=np.float64) for g in self.G_]
        self.B_ = [np.asarray(b, dtype=np.float64) for b in self.B_]
        for key in ("prior_phi_", "G_seen_"):
            if hasattr(self, key):
                setattr(self, key, np.asarray(getattr(self, key), dtype=np.float64))
        self._fmap = self._model = None

