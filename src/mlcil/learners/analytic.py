"""``Analytic``: exact, exemplar-free multi-label continual learning (DESIGN.md §3.1).

Random features φ(x) = ReLU(z(x)ᵀR) [⊕ z(x)] (z = an input scaling chosen with λ by leave-one-out
on the first session; the ridge core's :class:`~mlcil.ridge.FeatureMap`) and ridge regression through
sufficient statistics that only grow by addition: per session s, G_s = Σ φφᵀ (D×D) and
B_s = Σ φ yᵀ (D×|C_s|).

Label absence: for the classes C_s introduced in session s, rows of other sessions are
negatives with weight α:

    W_{C_s} = (α G_all + (1 − α) K_s + λI)⁻¹ B_s,   K_s = G_s  (K_s = Σ_{u≥s} G_u for ``pseudo``)

α = 1 is ``negative`` (one G for everything), α = 0 is ``known`` (old weights never change),
``weighted`` picks α on held-out rows of the first session, ``pseudo`` also pseudo-labels
old classes on each new session with the current model (KRT's dynamic pseudo-labels,
L3A's rule σ(ridge output) > 0.7). Because statistics add, learning session by session equals
one fit on the union with the same partial labels, learners fed disjoint data merge exactly, and
examples or classes are forgotten exactly (see :meth:`merge`, :meth:`forget`,
:meth:`forget_examples`).

Label memory (``memory='labels'``): per example seen, a 64-bit key and its given label bits, never
its input. G_all then sums φφᵀ over examples, not over rows: an example that reappears in a later
session (the field's protocol) adds its new labels to B and no second φφᵀ, K_s still sums the rows
whose C_s labels were given, so the learner equals the fit on the union of the examples with every
given label (with ``negative``, :class:`~mlcil.learners.Joint` on the same rows, frame and λ).

λ is chosen on the first session (default), or re-chosen after every session: from the leave-one-out
evidence of each session's own rows (``lambda_search='sessions'``), or from the generalised
cross-validation of each session's statistics (``lambda_search='gcv'``); the feature map stays the
first session's.

Everything is NumPy/SciPy (torch only for a GPU ``device``, inside the ridge core); the linear algebra
goes through :mod:`mlcil.ridge`, and :meth:`Analytic.scores` and :meth:`Analytic.proba` through the one
solved model, :class:`mlcil.ridge.RidgeModel` (:attr:`Analytic.model_`). :meth:`Analytic.from_statistics`
builds a fitted learner from a feature map and statistics gathered elsewhere (the tagging service),
:meth:`Analytic.set_lambda` re-solves with λ fixed. A session with fewer rows than features is
diagonalised in the n×n dual of its rows (:class:`SessionSpectrum`), the same numbers at O(n²D) instead
of O(D³) (measured in ``benchmarks/results/small_data.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from mlcil.data.dataset import check_features, check_labels
from mlcil.decide.calibration import (apply_calibration, concat_calibration, fit_calibration,
                                     select_calibration, sigmoid)
from mlcil.decide.thresholds import best_f1_thresholds
from mlcil.engines import resolve_engine
from mlcil.errors import MlcilError, NotFittedError
from mlcil import ridge
from mlcil.learners import label_memory
from mlcil.learners.base import Learner, as_classes, register
from mlcil.metrics import average_precision

STRATEGIES = ("negative", "known", "weighted", "pseudo")
#: α values tried when ``alpha`` is None (weighted, pseudo).
ALPHA_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
#: α used when the first session has a single class (nothing to simulate).
DEFAULT_ALPHA = 0.1
#: rows of the first session sampled for the α search.
ALPHA_SEARCH_ROWS = 4000
#: rows of the first session sampled to choose the input scaling (``scaling='auto'``).
SCALING_SEARCH_ROWS = 8000
#: random features used while choosing the scaling (the first columns of R): the ranking of scalings
#: needs far fewer features than the final fit, and the search costs one eigendecomposition per candidate.
SCALING_SEARCH_FEATURES = 512
#: values of ``scaling`` (the ridge core's scalings, plus 'auto').
SCALING_CHOICES = ("auto", *ridge.SCALINGS)
#: values of ``pseudo_calibration``: the probability pseudo-labels threshold.
PSEUDO_CALIBRATIONS = ("ridge", "platt")
#: values of ``lambda_search``: λ chosen on the first session only, or re-chosen after every session
#: (from leave-one-out mAP, or from GCV on each session's statistics).
LAMBDA_SEARCHES = ("first", "sessions", "gcv")
#: the λ grid of ``lambda_search='gcv'``: (points, log10 low, log10 high) × the first session's mean
#: eigenvalue. Wider and finer than the leave-one-out grid: a GCV curve costs no mAP per point.
GCV_GRID = (25, -5.0, 3.0)
#: values of ``memory``: None (exemplar-free, nothing per example) or 'labels' (label memory).
MEMORIES = (None, "labels")
#: values of ``memory_key``: what identifies an example in the label memory.
MEMORY_KEYS = ("content", "index")


def absence_system(G_all: np.ndarray, K: np.ndarray, alpha: float, lam: float, copy: bool = True) -> np.ndarray:
    """A = α G_all + (1 − α) K + λI (D×D float64): the normal matrix where rows outside K weigh α.

    A new array, except with ``copy=False``, λ = 0 and α ∈ {0, 1}: then K or G_all itself (to read only)."""
    if not copy and not lam and alpha in (0.0, 1.0):
        return K if alpha == 0.0 else G_all
    if alpha == 0.0:
        A = np.array(K, dtype=np.float64)
    elif alpha == 1.0:
        A = np.array(G_all, dtype=np.float64)
    else:
        A = alpha * G_all
        A += (1.0 - alpha) * K
    if lam:
        A[np.diag_indices_from(A)] += lam
    return A


def weighted_solve(G_all: np.ndarray, K: np.ndarray, B: np.ndarray, alpha: float, lam: float) -> np.ndarray:
    """W = (α G_all + (1 − α) K + λI)⁻¹ B by Cholesky (float64; D×C)."""
    return ridge.ridge_solve(absence_system(G_all, K, alpha, 0.0, copy=False), B, lam)


def use_dual(n: int, D: int) -> bool:
    """Whether a computation over n rows of D features runs in the n×n dual (:meth:`SessionSpectrum.dual`, the
    α search's :meth:`Analytic._simulated_loo_dual`): with fewer rows than features. The results are the same."""
    return n < D


def eig_solve(eig: tuple[np.ndarray, np.ndarray], B: np.ndarray, lam: float) -> np.ndarray:
    """W = (G + λI)⁻¹B from G's eigendecomposition G = V diag(s) Vᵀ (s (D,), V D×D): D×C float64."""
    s, V = eig
    return V @ ((V.T @ np.asarray(B, dtype=np.float64)) / (np.maximum(s, 0.0) + lam)[:, None])


class SessionSpectrum:
    """One session's own G = Σ w φφᵀ diagonalised once, with its B and held-out rows in the coordinates of
    G's eigenvectors: every λ of the ridge core's paths (:func:`mlcil.ridge.loo_path_scores`,
    :func:`mlcil.ridge.choose_lambda`, :func:`mlcil.ridge.gcv_curve`, :func:`mlcil.ridge.gcv_minimum`, given
    ``eig``, ``B`` and ``phi``) and W = (G + λI)⁻¹B (:meth:`solve`) from one decomposition.

    Attributes:
        eig: (s, V) for the ridge core's ``eig`` arguments.
        B: the session's B in the coordinates of V (with ``eig``).
        phi: the held-out rows' φ in the same coordinates.
    """

    def __init__(self, eig: tuple[np.ndarray, np.ndarray], B: np.ndarray, phi: np.ndarray, solve) -> None:
        self.eig, self.B, self.phi, self._solve = eig, B, phi, solve

    def solve(self, lam: float) -> np.ndarray:
        """W = (G + λI)⁻¹B for the session's own B (D×C float64)."""
        return self._solve(lam)

    @classmethod
    def primal(cls, G: np.ndarray, B: np.ndarray, phi_sub: np.ndarray) -> "SessionSpectrum":
        """From G's own eigendecomposition (O(D³)); V is G's eigenvectors, B and φ stay as they are."""
        eig = ridge.eigh(G)
        return cls(eig, B, phi_sub, lambda lam: eig_solve(eig, B, lam))

    @classmethod
    def dual(cls, phi: np.ndarray, Y: np.ndarray, weights: np.ndarray | None, sub: np.ndarray) -> "SessionSpectrum":
        """In the n×n dual of the session's rows (n×D φ, n×C labels Y, weights; ``sub``: the held-out rows), for
        fewer rows than features: O(n²D + n³) instead of O(D³).

        With Ψ = diag(√w)Φ and ΨΨᵀ = U diag(s) Uᵀ, G = ΨᵀΨ has the eigenvalues s (and 0 on the complement) with
        eigenvectors v = Ψᵀu/√s. In the coordinates of those v, B = Ψᵀ√w·Y is diag(√s)Uᵀ(√w·Y) and a row
        φ_i = Ψ_i/√w_i is U_i·√s/√w_i: nothing divides by √s, and G's null space, orthogonal to every row, drops
        out of every quantity (``eig`` is (s, I)). W = Ψᵀ U diag(1/(s + λ)) Uᵀ(√w·Y) (push-through identity).
        """
        Psi = np.asarray(phi, dtype=np.float64)
        root = np.ones(len(Psi)) if weights is None else np.sqrt(np.asarray(weights, dtype=np.float64))
        if weights is not None:
            Psi = Psi * root[:, None]
        s, U = ridge.eigh(Psi @ Psi.T)
        s = np.maximum(s, 0.0)
        rs = np.sqrt(s)
        UtY = U.T @ (root[:, None] * np.asarray(Y, dtype=np.float64))
        phi_sub = U[sub] * (rs[None, :] / root[sub][:, None])
        return cls((s, np.eye(len(s))), UtY * rs[:, None], phi_sub,
                   lambda lam: Psi.T @ (U @ (UtY / (s + lam)[:, None])))


@register("analytic")
class Analytic(Learner):
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
        clip: None (default) or c > 0: winsorise the scaled input to [−c, c] spreads for the per-column
            scalings ('standardize', 'scale'; :class:`mlcil.ridge.FeatureMap`). Their statistics come from
            the first session, and a later row tens of spreads out (a column constant in the first
            session, a heavy tail) otherwise dominates its features. Measured (README, "Heavy tails"):
            birds B0-C4 (audio, 47 rows in the first session, 11 of 260 columns constant there) gains
            14 last-mAP points at c = 3 and ``joint`` 13; over the sweep's 35 datasets (one seed) birds and
            langlog gain, slashdot (−2.1), ohsumed (−1.0) and hoc (−0.6) lose (word counts under 'scale'),
            30 move by 0.5 or less. Off by default. See also :meth:`fit_frame`.
        strategy: label-absence strategy: 'negative', 'known', 'weighted' or 'pseudo'.
        alpha: weight of absent labels as negatives (weighted/pseudo); None = choose on
            held-out rows of the first session by simulating label absence within it.
        balance: weight examples by the inverse square root of their positive classes'
            frequency within the session (L3A's sample weighting idea).
        pseudo_threshold: probability above which an old class becomes a pseudo-positive
            (0.7 as in L3A); 'calibrated' for per-class F1-optimal thresholds found on
            leave-one-out scores of the class's own session (on the Platt probability); 'soft'
            for the ridge output clipped to [0, 1] as a soft target.
        pseudo_calibration: the probability behind pseudo-labels. 'ridge' (default): σ(s) of the
            ridge output s, L3A's rule (σ(s) > 0.7 ⟺ s > 0.85): s is regressed on 0/1 targets over
            the rows of every session so far, the population a new session's rows come from.
            'platt': the class's Platt calibration, fitted on its own session only, where every row
            carries one of that session's classes (a single-class session has no negative at all):
            it over-predicts on later sessions and pseudo-positives flood (README, label absence).
        n_lambdas: size of the log λ grid (10⁻⁴..10² × mean eigenvalue of the first session's G),
            searched by leave-one-out mAP: closed form, all λ from one eigendecomposition.
        lambda_search: 'first' (default): λ is chosen on the first session only; 'sessions': re-chosen
            after every session, from the leave-one-out mAP curve of each session's own classes on its
            own rows (one eigendecomposition per session), summed over the sessions so far weighted by
            their numbers of classes. Measured (README, "Label absence" and the sweep): 'sessions'
            gains where the first session's λ is a poor guess for the stream (langlog +9.2, corel5k
            with 50 classes +3.5, birds +1.7, stackex_chess +1.5, emotions B0-C2 +0.9, yeast +0.4)
            but loses 2.3 on scene B0-C2, where each session's own rows (one class each, mutually
            exclusive) score a two-class discrimination whose curve drifts to a 3-30x larger λ, and
            1.0 on slashdot; so it is an option, not the default. Use it when the first session is
            small or later sessions carry many classes.
            'gcv': re-chosen after every session by generalised cross-validation of each session's own
            rows and given labels, computed from that session's statistics alone (G_s, B_s, Σw‖y‖², Σw:
            no row is kept; one eigendecomposition per session; :func:`mlcil.ridge.gcv_curve`), summed
            over the sessions, on a 25-point grid (10⁻⁵..10³ × the first session's mean eigenvalue)
            restricted to the λ whose effective degrees of freedom stay at most half the session's rows
            (:data:`mlcil.ridge.GCV_MAX_DOF`; GCV rewards interpolation beyond). Measured
            (``benchmarks/lambda_search.py``, 3 seeds, last mAP against 'first'): image600 +13.2, langlog
            +6.5, slashdot +6.2, corel5k +3.4, stackex_chess +1.5, emotions +1.3 (B2-C1) and +0.9
            (B0-C2), birds +1.1; level on scene, yeast, enron and tmc2007-500; medical −0.9 (sessions of
            about 45 rows for D ≈ 3,500: the cap binds and the best λ lies beyond it); over the 35
            datasets of the sweep (one seed) 11 gain more than 0.5 and 6 lose more (the wide word counts
            rcv1sub1–4 up to −1.6, ohsumed, medical). With
            ``memory='labels'`` and one system for every class ('negative', or 'weighted' with α = 1) the
            learner solves ``joint``'s problem on the rows seen, so λ minimises the GCV of that union
            instead (G_all, B, the memory's label bits and example count), over a continuous λ (the grid
            brackets it, golden section refines it: :func:`mlcil.ridge.gcv_minimum`), re-chosen after merge
            and forgetting too: it equals ``Joint(lambda_search='gcv')``'s λ on the same rows and frame.
            Not the default: the README's tables were measured with 'first'.
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
            ``loo_rows`` rows per session pair, never inputs. Off by default: measured on five
            datasets it lowered ECE on three but CF1 at 0.8 on four (README, "Decisions").
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

    def __init__(self, M: int = 2048, include_x: bool | str = "auto", scaling: str = "auto", clip: float | None = None,
                 strategy: str = "weighted",
                 alpha: float | None = None, balance: bool = False, pseudo_threshold: Any = 0.7,
                 pseudo_calibration: str = "ridge", n_lambdas: int = 13,
                 loo_rows: int = 2000, precision: str = "float64", calibration: str = "platt",
                 calibrate_later: bool = False, memory_budget: Any = None, memory: str | None = None,
                 memory_key: str = "content", lambda_search: str = "first", seed: int = 0,
                 device: str = "cpu", prior: float = 1.0) -> None:
        self.M = M
        self.include_x = include_x
        self.scaling = scaling
        self.clip = clip
        self.strategy = strategy
        self.alpha = alpha
        self.balance = balance
        self.pseudo_threshold = pseudo_threshold
        self.pseudo_calibration = pseudo_calibration
        self.n_lambdas = n_lambdas
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
        try:
            ridge.check_clip(self.clip)
        except MlcilError as exc:
            raise MlcilError(f"{self.name}: {exc}") from None
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
    def feature_map(self) -> ridge.FeatureMap:
        """The fitted feature map φ (the ridge core's :class:`~mlcil.ridge.FeatureMap`) on ``device``."""
        cached = getattr(self, "_fmap", None)
        if cached is None or cached[0] is not self.R_ or cached[1] != self.device:
            fmap = ridge.FeatureMap(self.R_, self.scaling_, self.shift_, self.scale_, self.include_x_, self.clip,
                                    device=self.device)
            self._fmap = cached = (self.R_, self.device, fmap)
        return cached[2]

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

    def _features(self, X) -> np.ndarray:
        """φ(X) of a bounded block of rows (n×D float32)."""
        return self.feature_map(X)

    def _stats(self, X, Y: np.ndarray, weights: np.ndarray | None, gram: bool = True):
        st = resolve_engine(self._engine).statistics(self.feature_map, X, Y, weights, precision=self.precision,
                                                     gram=gram)
        return (st.G if gram else None), st.B

    # ---- learning ------------------------------------------------------------------------
    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        self._check_params()
        frame_new = not self.has_frame
        t = len(getattr(self, "session_classes_", []))
        weights = ridge.imbalance_weights(Y) if self.balance else None
        self._check_memory(X.shape[1], extra_sessions=1)
        recall = None  # with a label memory: (memory after this session, record of each row, first-seen rows)
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
                spectrum.append(SessionSpectrum.dual(self._features(X), Y, weights, sub)
                                if use_dual(X.shape[0], G_own.shape[0]) else SessionSpectrum.primal(G_own, B_own, phi_sub))
            return spectrum[0]

        evidence = getattr(self, "lambda_evidence_", None)
        gcv = self.lambda_search == "gcv"
        union = not frame_new and self._union_gcv()  # λ from the union's statistics, after they are summed below
        if gcv and not union:  # evidence = −Σ_s GCV_s of each session's own rows and labels (higher is better)
            if frame_new:
                self.lambda_grid_ = ridge.lambda_grid(G_new, *GCV_GRID)
            curve = self._session_gcv(G_new, own().B, Y, weights, own().eig)
            evidence = -curve if frame_new else evidence - curve
        if frame_new:
            lam = self._gcv_lambda(evidence) if gcv else self._choose_lambda(G_new, own().B, own().phi, Y[sub], w_sub,
                                                                             own().eig)
            alpha = self._choose_alpha(X, Y, weights, lam)
        else:
            lam, alpha = (self._gcv_lambda(evidence) if gcv and not union else self.lambda_), self.alpha_
        G_named, B_new, prior_phi = self._name_prior(G_new, B_new, len(classes))
        if self.memory and prior_phi is not None:  # the names' pseudo-examples are new rows of the memory's Gram
            G_fresh = G_fresh + (G_named - G_new)
        G_new = G_named
        G_list = list(getattr(self, "G_", []))  # (entries are replaced below, never changed in place)
        B_list = [b.copy() for b in getattr(self, "B_", [])]  # pseudo-labels add to these in place
        G_seen = getattr(self, "G_seen_", None)
        pseudo_bits = None
        # pseudo-labels for old classes on this session's rows, from the model before this session
        if self.strategy == "pseudo" and self.is_fitted:
            if self.memory:
                pseudo_bits = self._memory_pseudo(X, recall, G_list, B_list, G_fresh)
            else:
                _, B_pseudo = self._stats(X, self._pseudo_labels(X), weights, gram=False)
                col = 0
                for s, cls in enumerate(self.session_classes_):
                    B_list[s] += B_pseudo[:, col:col + len(cls)]
                    col += len(cls)
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
            factor = ridge.Factor(absence_system(G_all, G_new if per_session else G_all, alpha, 0.0, copy=False), lam)
            W_new = factor.solve(B_new)
            loo = ridge.loo_scores(factor.L, W_new, phi_sub, Y_sub, w_sub)
            solve_last = factor.solve
        calib = fit_calibration(self.calibration, loo, Y[sub])
        thresholds = best_f1_thresholds(apply_calibration(calib, loo), Y[sub])
        # commit
        self.lambda_, self.alpha_ = lam, alpha
        if evidence is not None:
            self.lambda_evidence_ = evidence
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

    def _resolved_include_x(self, d: int) -> bool:
        return bool(d <= ridge.INCLUDE_X_MAX_FEATURES) if self.include_x == "auto" else bool(self.include_x)

    def _scaling_candidates(self, X) -> list[str]:
        if self.scaling != "auto":
            return [self.scaling]
        return ["none", "scale" if ridge.features.sp.issparse(X) else "standardize", "l2"]

    def _check_memory(self, d: int, extra_sessions: int) -> None:
        """Refuse before allocating when the state and the solve's work space would exceed the budget."""
        include_x = self.include_x_ if self.has_frame else self._resolved_include_x(d)
        D = int(self.M) + (d if include_x else 0)
        per_session = self._per_session(getattr(self, "alpha_", 0.0))
        n_G = len(getattr(self, "G_", [])) + (extra_sessions if per_session or not getattr(self, "G_", []) else 0)
        n_G += 1 if self.memory and per_session and not hasattr(self, "G_seen_") else 0  # G_seen_
        gram = D * D * 8
        check_budget = ridge.check_budget
        check_budget(self.name, {f"{n_G} Gram matrix(es) G (D = {D})": n_G * gram,
                                 "solve work space (G_all, A, factor, eigenvectors)": 4 * gram},
                     self.memory_budget,
                     hint=f"lower M (now {self.M})" + (f" or set include_x=False (d = {d} input features)"
                                                       if include_x else ""))

    def fit_frame(self, X) -> "Analytic":
        """Fit the input scaling's per-column statistics on unlabelled rows of the domain, before the first session.

        X: n×d float (dense or CSR), no labels: e.g. a sample of the items the tagger will see. Without it
        'standardize' and 'scale' take their statistics from the first session's rows, which can be few and
        unlike later sessions' (birds: 47 rows, 11 of 260 columns constant in them), and no later statistic
        can change a scaling that is inside G. The first session still chooses the scaling ('auto') and draws
        R; only the statistics (mean, spread) come from X. Bounded memory (row chunks). Returns self.
        """
        if self.has_frame:
            raise MlcilError(f"{self.name}: fit_frame must come before the first session: the frame is fixed by then")
        X = check_features(X, f"{self.name}: fit_frame X")
        if X.shape[0] < 2:
            raise MlcilError(f"{self.name}: fit_frame X: expected at least 2 rows to fit a spread, got {X.shape[0]}")
        pool: dict[str, Any] = {"n_features": int(X.shape[1]), "rows": int(X.shape[0])}
        for candidate in ("scale",) if ridge.features.sp.issparse(X) else ("standardize", "scale"):
            pool[candidate] = ridge.fit_scaling(X, candidate)
        self._frame_pool = pool
        return self

    def _scaling_statistics(self, X, scaling: str):
        """(shift, scale) of ``scaling``: from :meth:`fit_frame`'s rows when given, else from X."""
        pool = getattr(self, "_frame_pool", None)
        if pool is not None and scaling in pool:
            return pool[scaling]
        return ridge.fit_scaling(X, scaling)

    def _set_frame(self, X, Y: np.ndarray, weights):
        """Fix the frame from the first session: include_x, the input scaling (chosen by leave-one-out
        mAP with λ when ``scaling='auto'``) and R. Returns the first session's (G, B)."""
        ridge.resolve_device(self.device)  # a clear error for a device name that is not one
        pool = getattr(self, "_frame_pool", None)
        if pool is not None and pool["n_features"] != X.shape[1]:
            raise MlcilError(f"{self.name}: session.X has {X.shape[1]} features, but fit_frame was given rows of "
                             f"{pool['n_features']}")
        self.n_features_ = int(X.shape[1])
        self.include_x_ = self._resolved_include_x(X.shape[1])
        R = ridge.gaussian_projection(X.shape[1], int(self.M), self.seed)
        candidates = self._scaling_candidates(X)
        scaling = candidates[0]
        if len(candidates) > 1:
            rng = np.random.default_rng(int(self.seed) * 7919 + 1)
            rows = np.sort(rng.permutation(X.shape[0])[:SCALING_SEARCH_ROWS])
            loo = np.sort(rng.permutation(len(rows))[: int(self.loo_rows)])
            Xs, Ys = X[rows], Y[rows]
            ws = None if weights is None else weights[rows]
            w_loo = None if ws is None else ws[loo]
            scores: dict[str, float] = {}
            R_search = R[:, :SCALING_SEARCH_FEATURES]
            for candidate in candidates:
                shift, scale = self._scaling_statistics(X, candidate)
                fmap = ridge.FeatureMap(R_search, candidate, shift, scale, self.include_x_, self.clip,
                                        device=self.device)
                st = ridge.partial_statistics(fmap, Xs, Ys, ws, precision=self.precision)
                if use_dual(len(rows), fmap.D):  # fewer rows than features: the eigendecomposition in the n×n dual
                    own = SessionSpectrum.dual(fmap(Xs), Ys, ws, loo)
                    _, maps = ridge.choose_lambda(st.G, own.B, own.phi, Ys[loo],
                                                  ridge.lambda_grid(st.G, self.n_lambdas), w_loo, own.eig)
                else:
                    _, maps = ridge.choose_lambda(st.G, st.B, fmap(Xs[loo]), Ys[loo],
                                                  ridge.lambda_grid(st.G, self.n_lambdas), w_loo)
                scores[candidate] = float(np.nanmax(maps)) if np.isfinite(maps).any() else float("nan")
                if candidate == candidates[0] or scores[candidate] > scores[scaling]:  # NaN never wins
                    scaling = candidate
            self.scaling_scores_ = scores
        self.scaling_ = scaling
        self.shift_, self.scale_ = self._scaling_statistics(X, scaling)
        self.frame_rows_ = int(pool["rows"]) if pool is not None and scaling in pool else int(X.shape[0])
        self.R_ = R
        self._fmap = None
        return self._stats(X, Y, weights)

    def _choose_lambda(self, G, B, phi_sub, Y_sub: np.ndarray, w_sub, eig=None) -> float:
        """λ maximising leave-one-out mAP on the first session (one eigendecomposition of G for the grid,
        ``eig`` when already computed)."""
        lambdas = ridge.lambda_grid(G, self.n_lambdas)
        lam, maps = ridge.choose_lambda(G, B, phi_sub, Y_sub, lambdas, w_sub, eig)
        self.lambda_map_ = maps.tolist()
        self.lambda_grid_ = np.asarray(lambdas)
        return lam

    @staticmethod
    def _target_sums(Y: np.ndarray, weights) -> tuple[float, float]:
        """(Σ w‖y‖², Σ w) of a block of rows: GCV's sum of squared targets and its row count."""
        Yf = np.asarray(Y, dtype=np.float64)
        w = np.ones(Yf.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        return float(w @ (Yf ** 2).sum(axis=1)), float(w.sum())

    def _session_gcv(self, G: np.ndarray, B: np.ndarray, Y: np.ndarray, weights, eig=None) -> np.ndarray:
        """GCV curve (:func:`mlcil.ridge.gcv_curve`) of this session's rows and given labels on the λ grid:
        the session alone (G_s, B_s, Σ w‖y‖², Σ w), rows of other sessions not read as negatives; finite
        only where the effective degrees of freedom stay at most half its rows. Summed over the classes."""
        yy, n = self._target_sums(Y, weights)
        curve = ridge.gcv_curve(G, B, yy, n, self.lambda_grid_, eig=eig)
        # a session too small for any λ of the grid (under about 7 rows) carries no evidence, rather than
        # ruling every λ out for the whole stream
        return curve if np.isfinite(curve).any() else np.zeros(len(curve))

    def _union_gcv(self, alpha: float | None = None) -> bool:
        """Whether λ minimises the GCV of the union of the sessions (``lambda_search='gcv'``, a label memory,
        and one system for every class: 'negative', or 'weighted' with α = 1). The learner then solves
        :class:`~mlcil.learners.Joint`'s ridge problem on the rows seen, and G_all, B and the memory's label bits
        are its sufficient statistics: λ is a function of them alone (:func:`mlcil.ridge.gcv_minimum`, a
        continuous minimum, so it does not depend on the grid's points), merge and forgetting re-choose it, and
        it equals ``Joint(lambda_search='gcv')``'s on the same rows and frame."""
        return self.lambda_search == "gcv" and bool(self.memory) and not self._per_session(alpha)

    def _union_counts(self, Y: np.ndarray, weights, memory: dict | None, prior: np.ndarray | None):
        """(Σ w‖y‖², Σ w) of the union's rows: from the label memory (its positive bits and examples; absent
        labels are 0 targets), or, without one (``Joint``: its one session is the union), from Y. The name
        prior's pseudo-examples (weights β, one positive each) count as rows."""
        if memory is not None:
            yy = float(label_memory.label_bits(memory).sum())
            n = float(label_memory.session_bits(memory).any(axis=1).sum())
        else:
            yy, n = self._target_sums(Y, weights)
        if prior is not None:
            yy, n = yy + float(np.sum(prior)), n + float(np.sum(prior))
        return yy, n

    def _prior_weights_after(self, k: int, named: bool) -> np.ndarray | None:
        """β per class once this session's k classes are added (None without a name prior)."""
        before = getattr(self, "prior_weight_", None)
        if not named:
            return before
        return np.concatenate([np.zeros(0) if before is None else before, np.full(k, float(self.prior))])

    def _reselect_union_lambda(self) -> None:
        """After merge or forgetting: λ re-chosen from the union's statistics (see :meth:`_union_gcv`)."""
        if self._union_gcv() and self.memory:
            yy, n = self._union_counts(None, None, self.memory_, getattr(self, "prior_weight_", None))
            self.lambda_, curve = ridge.gcv_minimum(self._gram_all(), np.concatenate(self.B_, axis=1), yy, n,
                                                    self.lambda_grid_)
            self.lambda_evidence_ = -curve

    def _gcv_lambda(self, evidence: np.ndarray) -> float:
        """The grid λ with the most evidence; ties (a flat curve: no evidence yet) go to the larger λ."""
        evidence = np.asarray(evidence)
        return float(self.lambda_grid_[len(evidence) - 1 - int(np.argmax(evidence[::-1]))])

    def _reselect_lambda(self, base: np.ndarray, B_new: np.ndarray, phi_sub: np.ndarray, Y_sub: np.ndarray,
                         w_sub, evidence: np.ndarray, lam: float, eig=None) -> tuple[float, np.ndarray]:
        """λ after a later session (``lambda_search='sessions'``): this session's leave-one-out mAP of its
        own classes on its own rows, for every λ of the first session's grid (one eigendecomposition of
        the system without λ, ``base``), is added to the evidence of the sessions before, weighted by
        its number of classes; λ = the grid value with the most evidence (``eig``: ``base``'s eigendecomposition
        when already computed). Returns (λ, evidence)."""
        lambdas = np.asarray(self.lambda_grid_)
        _, maps = ridge.choose_lambda(base, B_new, phi_sub, Y_sub, lambdas, w_sub, eig)
        if not np.isfinite(maps).any():  # no positive among the rows scored: no evidence, λ stays
            return lam, evidence
        evidence = evidence + np.nan_to_num(maps, nan=np.nanmin(maps)) * Y_sub.shape[1]
        return float(lambdas[int(np.argmax(evidence))]), evidence

    def _choose_alpha(self, X, Y: np.ndarray, weights, lam: float) -> float:
        """α for label absence. Fixed by 'negative' (1), 'known' (0) and by an explicit alpha;
        otherwise chosen by simulating label absence inside the first session: its classes are
        split into up to 3 random groups learned as separate sessions, and each α is scored by
        the leave-one-out mAP of the session's rows, which know every first-session label."""
        if self.strategy in ("negative", "known"):
            return {"negative": 1.0, "known": 0.0}[self.strategy]
        if self.alpha is not None:
            return float(self.alpha)
        k = Y.shape[1]
        if k < 2 or X.shape[0] < 10:
            return DEFAULT_ALPHA
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.permutation(X.shape[0])[: ALPHA_SEARCH_ROWS])  # α is one scalar: a sample suffices
        phi = self._features(X[rows]).astype(np.float64)
        Ys = Y[rows]
        ws = np.ones(len(rows)) if weights is None else weights[rows]
        loo = np.sort(rng.permutation(len(rows))[: min(int(self.loo_rows), 500)])
        dual = use_dual(len(rows), phi.shape[1])  # fewer rows than features: every system in the n×n dual
        K = phi @ phi.T if dual else None
        scores = np.zeros(len(ALPHA_GRID))
        repeats = 2
        for _ in range(repeats):
            group = rng.permutation(np.arange(k) % min(k, 3))
            groups = [(cols, Ys[:, cols].any(axis=1)) for cols in (np.flatnonzero(group == g) for g in np.unique(group))]
            # how many times each row is in G_all: once per group it is in, or once with a label memory
            # (a row in several groups is one example)
            n_all = np.ones(len(rows)) if self.memory else sum(member.astype(float) for _, member in groups)
            if dual:
                scores += [np.nanmean(average_precision(Ys[loo], self._simulated_loo_dual(
                    K, groups, n_all, alpha, lam, loo, Ys, ws))) for alpha in ALPHA_GRID]
                continue
            parts = []
            for cols, member in groups:
                wphi = phi * (ws * member)[:, None]
                parts.append((wphi.T @ phi, wphi.T @ Ys[:, cols].astype(np.float64), cols, member[loo]))
            if self.memory:
                G_all = (phi * ws[:, None]).T @ phi
            else:
                G_all = sum(p[0] for p in parts[1:]) + parts[0][0]
            scores += [np.nanmean(average_precision(Ys[loo], self._simulated_loo(parts, G_all, n_all[loo], alpha,
                                                                                lam, phi[loo], Ys[loo], ws[loo])))
                       for alpha in ALPHA_GRID]
        self.alpha_scores_ = (scores / repeats).tolist()
        return float(ALPHA_GRID[int(np.argmax(scores))])

    @staticmethod
    def _simulated_loo(parts, G_all, n_parts_of_row, alpha, lam, phi, Y, w) -> np.ndarray:
        """Leave-one-out scores of the rows ``phi`` in a simulated stream (see _choose_alpha).

        For group p, A_p = α G_all + (1 − α) G_p + λI; a row weighs w·(α·n_i + (1 − α)·[i ∈ p]) in
        A_p and adds w·[i ∈ p]·φy to B_p, so removing it gives (ŷ − w[i∈p]·h·y) / (1 − weight·h)
        with h = φᵀA_p⁻¹φ (Sherman–Morrison). With α = 1 every group has the same A_p: one factor."""
        S = np.zeros(Y.shape)
        phi = np.asarray(phi, dtype=np.float64)
        shared = None
        for G, B, cols, member in parts:
            if alpha == 1.0 and shared is not None:
                factor = shared
            else:
                factor = ridge.Factor(absence_system(G_all, G, alpha, 0.0, copy=False), lam)
                shared = factor if alpha == 1.0 else None
            h = factor.leverage(phi)
            yhat = phi @ factor.solve(B)
            inside = member.astype(float)
            weight = w * (alpha * n_parts_of_row + (1 - alpha) * inside)
            S[:, cols] = (yhat - (w * inside * h)[:, None] * Y[:, cols]) / np.maximum(1 - weight * h, 1e-6)[:, None]
        return S

    @staticmethod
    def _simulated_loo_dual(K: np.ndarray, groups, n_all: np.ndarray, alpha: float, lam: float, loo: np.ndarray,
                            Y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """:meth:`_simulated_loo` in the n×n dual, for fewer sampled rows n than features: the same scores.

        Every system is A_p = Φᵀ diag(c) Φ + λI over the n sampled rows Φ, c_i = w_i(α n_i + (1 − α)[i ∈ p])
        (K = ΦΦᵀ n×n; ``groups``: (class columns, n-boolean membership) per group; ``n_all``: times each row is
        in G_all; ``loo``: the held-out rows). Since A_p⁻¹Φᵀ = Φᵀ(diag(c) K + λI)⁻¹ (push-through identity),
        H = Φ A_p⁻¹ Φᵀ = (K diag(c) + λI)⁻¹ K: ŷ = H (w[i∈p]·y) and h = diag(H) on the held-out rows, one n×n
        LU per group and α instead of a D×D Cholesky factor. Returns len(loo) × Y.shape[1]."""
        S = np.zeros((len(loo), Y.shape[1]))
        Y = np.asarray(Y, dtype=np.float64)
        diagonal = np.diag_indices_from(K)
        at = np.arange(len(loo))
        shared = None
        for cols, member in groups:
            inside = member.astype(float)
            if alpha == 1.0 and shared is not None:
                H = shared
            else:
                A = K * (w * (alpha * n_all + (1 - alpha) * inside))[None, :]
                A[diagonal] += lam
                H = scipy.linalg.solve(A, K[:, loo], check_finite=False)  # H[:, loo] (H is symmetric)
                shared = H if alpha == 1.0 else None
            h = H[loo, at]
            yhat = H.T @ ((w * inside)[:, None] * Y[:, cols])
            weight = w[loo] * (alpha * n_all[loo] + (1 - alpha) * inside[loo])
            S[:, cols] = ((yhat - (w[loo] * inside[loo] * h)[:, None] * Y[loo][:, cols])
                          / np.maximum(1 - weight * h, 1e-6)[:, None])
        return S

    def _pseudo_labels(self, X) -> np.ndarray:
        """n × len(classes_) pseudo-labels of the old classes: probability above the threshold, the
        probability being σ(ridge output) ('ridge') or the Platt calibration ('platt')."""
        S = self.scores(X)
        if self.pseudo_threshold == "soft":  # the ridge output itself, clipped to [0, 1]
            return np.clip(S, 0.0, 1.0).astype(np.float64)
        if self.pseudo_threshold == "calibrated":  # F1-optimal thresholds of the Platt probability
            return (self.model_.proba_from_scores(S) > self.thresholds_).astype(np.uint8)
        P = sigmoid(S) if self.pseudo_calibration == "ridge" else self.model_.proba_from_scores(S)
        return (P > float(self.pseudo_threshold)).astype(np.uint8)

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

    # ---- name prior (zero-shot cold start) --------------------------------------------------
    def _check_names(self, E, k: int) -> np.ndarray:
        E = np.asarray(E, dtype=np.float32)
        if E.ndim != 2 or E.shape != (k, self.n_features_):
            raise MlcilError(f"{self.name}: label_embeddings: expected {k}×{self.n_features_} (one row per new class, "
                             f"the inputs' dimension), got shape {E.shape}")
        if not np.isfinite(E).all():
            raise MlcilError(f"{self.name}: label_embeddings contain NaN or inf")
        return E

    def _name_prior(self, G: np.ndarray, B: np.ndarray, k: int):
        """(G + β ΦᵀΦ, B + β Φᵀ, Φ) with Φ = φ(E) of this session's label embeddings; unchanged without them."""
        E = getattr(self, "_names", None)
        if E is None or not float(self.prior) > 0:
            return G, B, None
        phi = self._features(self._check_names(E, k)).astype(np.float64)
        beta = float(self.prior)
        return G + beta * (phi.T @ phi), B + beta * phi.T, phi

    def _keep_prior(self, phi: np.ndarray | None, k: int) -> None:
        """Remember each class's prior row φ(e_c) and weight (zero without a prior) for merge and forget."""
        D = self.G_[0].shape[0]
        rows = np.zeros((k, D)) if phi is None else phi
        self.prior_phi_ = np.concatenate([getattr(self, "prior_phi_", rows[:0]), rows])
        self.prior_weight_ = np.concatenate([getattr(self, "prior_weight_", np.zeros(0)),
                                             np.full(k, 0.0 if phi is None else float(self.prior))])

    def _prior_gram(self, cols: np.ndarray) -> np.ndarray:
        """Σ_c β_c φ(e_c)φ(e_c)ᵀ over the given class columns."""
        phi = self.prior_phi_[np.flatnonzero(cols)]
        w = np.asarray(self.prior_weight_[cols], dtype=np.float64)
        return (phi * w[:, None]).T @ phi

    def learn_names(self, classes, label_embeddings) -> "Analytic":
        """Add classes known only by name (zero-shot): a session made of their name pseudo-examples.

        ``label_embeddings``: k×d, row j = the embedded name (and description) of ``classes[j]``,
        by the encoder that embedded the inputs. Needs a learned first session (the frame) and
        ``prior`` > 0. Calibration is fitted on the names' own scores (each name positive for its
        class, negative for the others); ranking (AP) does not depend on it.
        """
        if not self.has_frame or not self.is_fitted:
            raise MlcilError(f"{self.name}: learn_names needs a learned first session (it fixes φ, λ and α)")
        if not float(self.prior) > 0:
            raise MlcilError(f"{self.name}: learn_names needs prior > 0 (the weight of a name), got {self.prior}")
        classes = as_classes(np.asarray(classes).ravel(), f"{self.name}: learn_names: classes")
        if (classes.dtype.kind == "U") != (self.classes_.dtype.kind == "U"):
            raise MlcilError(f"{self.name}: learn_names: classes {classes.tolist()} are not of the learner's kind "
                             f"({self.classes_[:3].tolist()}...): names and integer ids do not mix")
        if len(classes) == 0 or len(np.unique(classes)) != len(classes) or np.isin(classes, self.classes_).any():
            raise MlcilError(f"{self.name}: learn_names expects new, distinct classes, got {classes.tolist()}")
        E = self._check_names(label_embeddings, len(classes))
        before = dict(vars(self))
        try:
            self._names = E
            G, B, phi = self._name_prior(0.0, 0.0, len(classes))
            per_session = self._per_session()
            self.G_ = list(self.G_)
            if per_session:
                self.G_.append(G)
            else:
                self.G_[0] = self.G_[0] + G
            self.B_ = [*self.B_, B]
            self.session_classes_ = [*self.session_classes_, classes.tolist()]
            self.session_rows_ = [*self.session_rows_, 0]
            self._classes = np.concatenate([self.classes_, classes])
            self._keep_prior(phi, len(classes))
            self._solve()
            S = phi @ self.W_[:, -len(classes):]
            calib = fit_calibration(self.calibration, S, np.eye(len(classes), dtype=np.uint8))
            self.calibration_ = concat_calibration(self.calibration_, calib)
            self.thresholds_ = np.concatenate([self.thresholds_, np.full(len(classes), 0.5)])
            if self.calibrate_later:
                self.calib_data_ = [*self.calib_data_, {"scores": S.astype(np.float32),
                                                        "labels": np.eye(len(classes), dtype=np.uint8),
                                                        "weights": np.ones(len(classes))}]
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise
        finally:
            self.__dict__.pop("_names", None)
        return self

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
                        seed: int = 0) -> "Analytic":
        """A fitted learner from a feature map and ridge statistics, whose scores and probabilities equal
        ``ridge.RidgeModel.solve(fmap, stats, lam, calibration, thresholds)``'s.

        The learner holds one session with every class (strategy 'negative', α = 1): it saves and loads like
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
                  "strategy": "negative", "calibration": "isotonic" if "x" in calib else "platt", "seed": int(seed),
                  "device": fmap.device}
        learner = cls(**{k: v for k, v in params.items() if k in cls._param_names()})
        learner.n_features_ = fmap.d
        learner.include_x_ = fmap.include_x
        learner.scaling_ = fmap.scaling
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

    def set_lambda(self, lam: float) -> "Analytic":
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

    # ---- exact operations ----------------------------------------------------------------
    def spawn(self) -> "Analytic":
        """An empty learner with this learner's frame (R, standardisation, λ, α).

        Feed it other data for the same sessions and :meth:`merge` it back: the result is
        exactly the learner fed both (distributed or federated learning).
        """
        if not self.has_frame:
            raise MlcilError(f"{self.name}: spawn needs a frame; learn a first session")
        twin = type(self)(**self.get_params())
        for key in ("n_features_", "include_x_", "scaling_", "shift_", "scale_", "R_", "lambda_", "alpha_"):
            setattr(twin, key, getattr(self, key))
        if hasattr(self, "frame_rows_"):  # (learners saved before it existed have none)
            twin.frame_rows_ = self.frame_rows_
        if hasattr(self, "lambda_grid_"):  # the grid λ is re-chosen on (lambda_search='sessions'); no evidence yet
            twin.lambda_grid_ = self.lambda_grid_
            twin.lambda_evidence_ = np.zeros(len(self.lambda_grid_))
        return twin

    def merge(self, other: "Analytic") -> "Analytic":
        """Add ``other``'s statistics to this learner's (same frame, same sessions); exact.

        Calibration and thresholds stay this learner's. Not exact for 'pseudo' (its labels
        depend on each learner's model) or with ``balance`` (weights depend on each shard).
        With a label memory both learners must have one, and each example must have been fed to one
        of them only (shard by example, e.g. ``ridge.row_digests(X) % n_shards``): an example in both
        would count twice in G, and no input is kept to correct it, so that is refused.
        With ``lambda_search='gcv'`` and a label memory (one system for every class) λ is re-chosen from the
        merged statistics, exactly as one learner fed both shards. Otherwise, with ``lambda_search='sessions'``
        or ``'gcv'``, each learner re-chose λ on its own rows; the merged learner takes λ from their summed
        evidence (the statistics still add exactly; λ is then the one the
        pooled per-shard curves favour, not necessarily the one a single learner would have chosen).
        """
        if not isinstance(other, Analytic):
            raise MlcilError(f"{self.name}: merge expects an Analytic learner, got {type(other).__name__}")
        searched = self.lambda_search == other.lambda_search and self.lambda_search in ("sessions", "gcv")
        same_lambda = self.lambda_ == other.lambda_ or (searched and np.array_equal(self.lambda_grid_,
                                                                                    other.lambda_grid_))
        if not self.feature_map.same_as(other.feature_map) or not same_lambda or self.alpha_ != other.alpha_:
            raise MlcilError(f"{self.name}: merge needs the same frame (feature map, λ, α); create the other learner "
                             "with spawn()")
        if self.strategy != other.strategy:
            raise MlcilError(f"{self.name}: merge needs the same strategy")
        if self.session_classes_ != other.session_classes_:
            raise MlcilError(
                f"{self.name}: merge needs the same sessions; got {self.session_classes_} and {other.session_classes_}"
            )
        if self.memory or other.memory:
            merged_memory = self._merged_memory(other)
        other_G, other_B = other._without_prior()
        self.G_ = [a + b for a, b in zip(self.G_, other_G)]
        self.B_ = [a + b for a, b in zip(self.B_, other_B)]
        if self.memory:
            self.memory_ = merged_memory
            if hasattr(self, "G_seen_"):
                self.G_seen_ = self.G_seen_ + other._seen_without_prior()
        self.session_rows_ = [a + b for a, b in zip(self.session_rows_, other.session_rows_)]
        if self._union_gcv():  # λ from the merged union's statistics, as one learner fed both shards
            self._reselect_union_lambda()
        elif searched and hasattr(other, "lambda_evidence_"):
            # each learner chose λ on its own rows: λ from their pooled evidence (the statistics add exactly)
            self.lambda_evidence_ = getattr(self, "lambda_evidence_", 0.0) + other.lambda_evidence_
            if not np.array_equal(self.lambda_evidence_, other.lambda_evidence_) or self.lambda_ != other.lambda_:
                self.lambda_ = (self._gcv_lambda(self.lambda_evidence_) if self.lambda_search == "gcv" else
                                float(self.lambda_grid_[int(np.argmax(self.lambda_evidence_))]))
        self._solve()
        return self

    def _seen_without_prior(self) -> np.ndarray:
        """G_seen_ (label memory, per-session strategies) minus the name prior's Gram: what merge adds."""
        weights = getattr(self, "prior_weight_", None)
        if weights is None or not weights.any():
            return self.G_seen_
        return self.G_seen_ - self._prior_gram(np.ones(len(weights), dtype=bool))

    def _without_prior(self) -> tuple[list, list]:
        """(G_, B_) minus the name prior's contributions: what merge adds, so the prior counts once."""
        weights = getattr(self, "prior_weight_", None)
        if weights is None or not weights.any():
            return self.G_, self.B_
        G, B, col = list(self.G_), list(self.B_), 0
        for s, cls in enumerate(self.session_classes_):
            cols = np.zeros(len(weights), dtype=bool)
            cols[col:col + len(cls)] = True
            if weights[cols].any():
                g = s if self._per_session() else 0
                G[g] = G[g] - self._prior_gram(cols)
                B[s] = B[s] - self.prior_phi_[col:col + len(cls)].T * np.asarray(weights[cols], np.float64)[None, :]
            col += len(cls)
        return G, B

    def _forget(self, keep: np.ndarray) -> None:
        """Drop classes: their columns of B go, the rows they came with stay as data.

        Exactly equals a learner fed the same sessions with those label columns removed.
        """
        sizes = [len(c) for c in self.session_classes_]
        weights = getattr(self, "prior_weight_", None)
        if weights is not None:  # a forgotten class's name pseudo-example leaves G too
            col = 0
            self.G_ = list(self.G_)
            for s, k in enumerate(sizes):
                cols = np.zeros(len(keep), dtype=bool)
                cols[col:col + k] = ~keep[col:col + k]
                if weights[cols].any():
                    g = s if self._per_session() else 0
                    self.G_[g] = self.G_[g] - self._prior_gram(cols)
                col += k
            self.prior_phi_ = self.prior_phi_[np.flatnonzero(keep)]
            self.prior_weight_ = weights[keep]
        col, B_list, sessions = 0, [], []
        for B, cls in zip(self.B_, self.session_classes_):
            k = len(cls)
            mask = keep[col:col + k]
            B_list.append(B[:, mask])
            sessions.append([c for c, m in zip(cls, mask) if m])
            col += k
        self.B_, self.session_classes_ = B_list, sessions
        if self.memory:  # their label bits go too
            self.memory_ = label_memory.select_classes(self.memory_, keep)
        self.calibration_, self.thresholds_ = select_calibration(self.calibration_, keep), self.thresholds_[keep]
        if hasattr(self, "calib_data_"):
            col, data = 0, []
            for d, k in zip(self.calib_data_, sizes):
                mask = keep[col:col + k]
                data.append({"scores": d["scores"][:, mask], "labels": d["labels"][:, mask], "weights": d["weights"]})
                col += k
            self.calib_data_ = data
        self._reselect_union_lambda()
        self._solve()

    def forget_examples(self, X, Y=None, classes=None, ids=None) -> "Analytic":
        """Subtract examples learned in the session of ``classes``: exact unlearning.

        X n×d and Y n×len(classes) must be the rows and labels that session was given
        (``classes`` in the same order as learned). Equals a learner never fed them.

        With a label memory, rows are checked against it (an unknown row or other labels raise,
        and nothing changes), and ``Y`` and ``classes`` may be left out: each example is then
        forgotten from every session it was learned in, with the labels the memory holds. ``ids``:
        the examples' ids when ``memory_key='index'``.
        """
        if self.strategy == "pseudo" or self.balance:
            raise MlcilError(f"{self.name}: forget_examples is exact only without pseudo-labels and balance weights")
        if self.memory:
            return self._forget_remembered(X, Y, classes, ids)
        if Y is None or classes is None:
            raise MlcilError(f"{self.name}: forget_examples needs Y and classes (the session the rows were learned "
                             "in); only a learner with memory='labels' can find them itself")
        X, Y, s = self._session_rows(X, Y, classes, "forget_examples")
        G, B = self._stats(X, Y, None)
        g_index = s if self._per_session() else 0
        self.G_[g_index] = self.G_[g_index] - G
        self.B_[s] = self.B_[s] - B
        self.session_rows_[s] -= int(X.shape[0])
        self._solve()
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

    # ---- label memory (memory='labels') ----------------------------------------------------
    @property
    def memory_bytes(self) -> int | None:
        """Bytes the label memory keeps (keys and label bits, no input); None without one."""
        if not self.memory:
            return None
        pseudo = getattr(self, "memory_pseudo_", None)
        return (label_memory.nbytes(self.memory_) if hasattr(self, "memory_") else 0) + \
            (0 if pseudo is None else int(pseudo.nbytes))

    def _check_session(self, session):
        checked = super()._check_session(session)
        self._incoming_ids = np.asarray(session.index)  # the caller's ids, for memory_key='index'
        return checked

    def _memory_keys(self, X, ids=None) -> np.ndarray:
        """(n,) uint64 keys of the rows of X: content digests, or digests of the caller's ids."""
        if self.memory_key == "content":
            return ridge.row_digests(X)
        ids = getattr(self, "_incoming_ids", None) if ids is None else np.asarray(ids)
        if ids is None or ids.shape != (X.shape[0],):
            raise MlcilError(f"{self.name}: memory_key='index' needs one id per row (session.index, or ids=...) for "
                             f"{X.shape[0]} rows, got {None if ids is None else ids.shape}")
        return ridge.id_digests(ids)

    def _subset_stats(self, X, Y: np.ndarray, rows: np.ndarray, gram: bool = True):
        """(G, B) of the given rows (zeros when there are none); G is None when ``gram`` is False."""
        if len(rows) == 0:
            D = self.feature_map.D
            return (np.zeros((D, D)) if gram else None), np.zeros((D, Y.shape[1]))
        return self._stats(X[rows], np.asarray(Y)[rows], None, gram=gram)

    def _memory_statistics(self, X, Y: np.ndarray, fresh: np.ndarray):
        """(G of every row, B of every row, G of the rows seen for the first time) of a later session.
        Rows seen before add their new labels to B and no second φφᵀ to G_all; G of every row (K_s)
        is needed only by the strategies that keep a Gram matrix per session and by the per-session GCV
        curves of ``lambda_search='gcv'`` (not by the union's, :meth:`_union_gcv`)."""
        # the session's whole Gram for K_s, and for the per-session GCV curve (not needed by the union's)
        whole = self._per_session() or (self.lambda_search == "gcv" and not self._union_gcv())
        G_fresh, B_fresh = self._subset_stats(X, Y, np.flatnonzero(fresh))
        G_again, B_again = self._subset_stats(X, Y, np.flatnonzero(~fresh), gram=whole)
        G_new = G_fresh + G_again if whole else None
        return G_new, B_fresh + B_again, G_fresh

    def _memory_pseudo(self, X, recall, G_list: list, B_list: list, G_fresh: np.ndarray) -> np.ndarray:
        """Pseudo-label the old classes of each earlier session s on this session's rows whose labels for
        C_s are unknown (neither given nor pseudo-labelled before): their targets join B_s and their φφᵀ
        joins K_s. Rows whose labels the memory holds are not pseudo-labelled. Returns the n × T mask of
        (row, session) pairs that were."""
        _, records, fresh = recall
        T = len(self.session_classes_)
        open_ = np.ones((X.shape[0], T), dtype=bool)
        again = np.flatnonzero(~fresh)
        if again.size:
            known = label_memory.session_bits(self.memory_, records[again])
            pseudo = label_memory.unpack(self.memory_pseudo_[records[again]], T)
            open_[again] = ~(known | pseudo)
        targets = self._pseudo_labels(X).astype(np.float64)
        sizes = [len(c) for c in self.session_classes_]
        class_session = np.repeat(np.arange(T), sizes)
        _, B_pseudo = self._subset_stats(X, targets * open_[:, class_session], np.arange(X.shape[0]), gram=False)
        col = 0
        for s, k in enumerate(sizes):
            B_list[s] += B_pseudo[:, col:col + k]
            col += k
            G_again, _ = self._subset_stats(X, targets[:, :0], np.intersect1d(again, np.flatnonzero(open_[:, s])))
            G_list[s] = G_list[s] + (G_fresh + G_again)
        return open_

    def _pseudo_bits_after(self, recall, opened: np.ndarray | None) -> np.ndarray:
        """records × T packed bits of the (example, session) pairs pseudo-labelled so far."""
        memory, records, _ = recall
        N, T, _ = label_memory.size(memory)
        bits = np.zeros((N, T), dtype=bool)
        old = getattr(self, "memory_pseudo_", None)
        if old is not None:
            bits[:old.shape[0], :T - 1] = label_memory.unpack(old, T - 1)
        if opened is not None:
            bits[records, :opened.shape[1]] |= opened
        return label_memory.pack(bits)

    def _merged_memory(self, other: "Analytic") -> dict:
        if not (self.memory and other.memory) or self.memory_key != other.memory_key:
            raise MlcilError(f"{self.name}: merge needs both learners with the same label memory "
                             f"(memory={self.memory!r}/{other.memory!r}, memory_key={self.memory_key!r}/"
                             f"{other.memory_key!r})")
        if self.strategy == "pseudo":
            raise MlcilError(f"{self.name}: merge with a label memory is refused for 'pseudo' (each learner "
                             "pseudo-labelled with its own model)")
        return label_memory.concat(self.memory_, other.memory_)

    def _forget_remembered(self, X, Y, classes, ids) -> "Analytic":
        """forget_examples with a label memory: find the rows' records, subtract exactly what they added."""
        X = self._check_X(X)
        keys = self._memory_keys(X, ids)
        sizes = [len(c) for c in self.session_classes_]
        T = len(sizes)
        class_session = np.repeat(np.arange(T), sizes)
        if classes is not None:
            if Y is None:
                raise MlcilError(f"{self.name}: forget_examples: give Y with classes (the labels that session was "
                                 "given), or neither to forget the examples from every session")
            X, Y, s = self._session_rows(X, Y, classes, "forget_examples")
            records = label_memory.session_records(self.memory_, keys, s, Y, np.flatnonzero(class_session == s))
            sessions = np.zeros((X.shape[0], T), dtype=bool)
            sessions[:, s] = True
        else:
            if Y is not None:
                raise MlcilError(f"{self.name}: forget_examples: Y needs classes (the session it labels)")
            records = label_memory.example_records(self.memory_, keys)
            sessions = label_memory.session_bits(self.memory_, records)
        labels = label_memory.label_bits(self.memory_, records)
        memory, gone = label_memory.clear(self.memory_, records, sessions, class_session)
        per_session = self._per_session()
        G_list, B_list = list(self.G_), list(self.B_)
        rows_per_session = list(self.session_rows_)
        for s in range(T):
            rows = np.flatnonzero(sessions[:, s])
            if rows.size == 0:
                continue
            G_s, B_s = self._subset_stats(X, labels[:, class_session == s].astype(np.uint8), rows, gram=per_session)
            B_list[s] = B_list[s] - B_s
            if per_session:
                G_list[s] = G_list[s] - G_s
            rows_per_session[s] -= int(rows.size)
        G_gone, _ = self._subset_stats(X, labels[:, :0], np.flatnonzero(gone))
        if per_session:
            self.G_seen_ = self.G_seen_ - G_gone
        else:
            G_list[0] = G_list[0] - G_gone
        self.G_, self.B_, self.session_rows_, self.memory_ = G_list, B_list, rows_per_session, memory
        self._reselect_union_lambda()
        self._solve()
        return self
