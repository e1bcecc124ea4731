"""``L3A``: Label-Augmented Analytic Adaptation (Zhang et al., ICML 2025) on frozen embeddings."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from mlcil.errors import MlcilError
from mlcil.learners.base import Learner, register
from mlcil.ridge import check_budget

#: F1 threshold L3A reports its CF1/OF1 at (its codebase's decision threshold on σ(score)).
L3A_F1_THRESHOLD = 0.525
#: rows of φ computed at once (bounds the transient n×H block)
_CHUNK_ROWS = 2048


def frequency_weights(Y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """L3A's per-row weights ω (n,) of its weighted analytic classifier.

    ``Y``: n×C 0/1 labels of the session (pseudo-labels included); ``counts``: C positives per class
    seen so far (this session included). Per class f_c = n_c^(−½) (0 for a class without a positive),
    rescaled so the factors average 1 over the C classes; ω_i = mean of f_c over row i's positive
    classes, and 1 for a row without a positive.
    """
    counts = np.asarray(counts, dtype=np.float64)
    inv = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0)
    f = len(inv) * inv / max(float(inv.sum()), 1e-12)
    Yf = np.asarray(Y, dtype=np.float64)
    k = Yf.sum(axis=1)
    return np.where(k > 0, (Yf @ f) / np.maximum(k, 1.0), 1.0)


@register("l3a")
class L3A(Learner):
    """L3A (Zhang et al., "L3A: Label-Augmented Analytic Adaptation for Multi-Label Class
    Incremental Learning", ICML 2025), written from the paper's equations on frozen embeddings.

    Buffer layer (fixed after the first session): φ(x) = ReLU(((x − μ)/σ) W + b), W (d×H) and
    b (H,) drawn U(−1/√d, 1/√d) from ``seed`` (``nn.Linear``'s initialisation); μ, σ are the first
    session's column means and standard deviations when ``standardize`` (else 0 and 1).

    Session t (its rows X_t, labels Y_t for its new classes):

    1. pseudo-labels (label augmentation): an old class c is positive on row i where
       σ(φ(x_i)ᵀ β_c) > ``pseudo_threshold`` (0.7 in the paper), else 0;
    2. counts n_c += positives of the augmented labels Ỹ_t; ω = :func:`frequency_weights`;
    3. the weighted analytic classifier, cumulatively: A += Φ_tᵀ Ω Φ_t, C = [C, 0] + Φ_tᵀ Ω Ỹ_t,
       β = (A + γ I)⁻¹ C. This equals the paper's recursive (Woodbury) update of R = (A + γI)⁻¹
       and β (tests/learners/test_l3a.py checks it against a transcription of that update).

    Scores: φ(x)ᵀ β; ``proba``: σ(score) (the paper's outputs); ``predict`` decides at ``threshold``
    (0.525, L3A's reporting threshold).

    State: A (H×H float64), C and β (H×C float64), W, b, μ, σ and per-class counts; never a row.
    The backbone is frozen here as in the paper (it is pre-trained and frozen before the
    analytic phase), so nothing differs from the paper except where its features come from.
    ``forget`` is not supported (pseudo-labels and weights couple the classes).

    Args:
        hidden: H, units of the random ReLU buffer (4096).
        gamma: γ, ridge regulariser (1000, the paper's public VOC configuration).
        pseudo_threshold: σ(score) above which an old class is pseudo-labelled positive (0.7); None = off.
        weighted: use the frequency weights ω (else ω = 1).
        standardize: standardise inputs with the first session's statistics before the buffer.
        threshold: probability threshold of ``predict`` (0.525).
        seed: seed of the buffer's random weights.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 5)).astype(np.float32)
    >>> model = L3A(hidden=32, gamma=1.0).learn(X, (X[:, :2] > 0).astype(np.uint8))
    >>> model.learn(X, (X[:, 2:3] > 0).astype(np.uint8)).scores(X).shape
    (40, 3)
    """

    def __init__(self, hidden: int = 4096, gamma: float = 1000.0, pseudo_threshold: float | None = 0.7,
                 weighted: bool = True, standardize: bool = False, threshold: float = L3A_F1_THRESHOLD,
                 seed: int = 0) -> None:
        self.hidden = hidden
        self.gamma = gamma
        self.pseudo_threshold = pseudo_threshold
        self.weighted = weighted
        self.standardize = standardize
        self.threshold = threshold
        self.seed = seed

    mutable_params = frozenset({"threshold"})

    # ---- checks ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, (int, np.integer)) or self.hidden < 1:
            raise MlcilError(f"l3a: hidden: expected a positive integer (units of the buffer), got {self.hidden!r}")
        if not isinstance(self.gamma, (int, float)) or isinstance(self.gamma, bool) or not self.gamma > 0:
            raise MlcilError(f"l3a: gamma: expected a positive ridge regulariser, got {self.gamma!r}")
        p = self.pseudo_threshold
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1):
            raise MlcilError(f"l3a: pseudo_threshold: expected a probability in [0, 1] or None, got {p!r}")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
            raise MlcilError(f"l3a: threshold: expected a probability in [0, 1], got {t!r}")

    # ---- the buffer layer -----------------------------------------------------------------
    def _init_buffer(self, X) -> None:
        d, H = X.shape[1], int(self.hidden)
        check_budget("l3a", {"statistics A (H×H float64)": 8 * H * H, "its factor": 8 * H * H,
                             "buffer weights (d×H float64, twice)": 16 * d * H,
                             "a block of φ": 8 * H * min(_CHUNK_ROWS, X.shape[0])},
                     hint="choose a smaller hidden (the paper uses 4096 to 8192)")
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / np.sqrt(d)
        self.W_ = rng.uniform(-bound, bound, size=(d, H))
        self.b_ = rng.uniform(-bound, bound, size=H)
        if self.standardize:
            mu, sd = _column_stats(X)
        else:
            mu, sd = np.zeros(d), np.ones(d)
        self.mu_, self.sd_ = mu, sd

    def _phi(self, X) -> np.ndarray:
        """n×H buffer features (float64). The standardisation folds into W and b, so a CSR X is
        never densified: ((x − μ)/σ) W + b = x (W/σ) + (b − (μ/σ) W)."""
        folded = vars(self).get("_folded")
        if folded is None or folded[0] is not self.W_:
            folded = (self.W_, self.W_ / self.sd_[:, None], self.b_ - (self.mu_ / self.sd_) @ self.W_)
            self._folded = folded
        _, Wf, bf = folded
        Z = sp.csr_matrix(X, dtype=np.float64) @ Wf if sp.issparse(X) else np.asarray(X, dtype=np.float64) @ Wf
        return np.maximum(np.asarray(Z) + bf, 0.0)

    def _chunks(self, X):
        for start in range(0, X.shape[0], _CHUNK_ROWS):
            yield slice(start, start + _CHUNK_ROWS), self._phi(X[start:start + _CHUNK_ROWS])

    # ---- learning -------------------------------------------------------------------------
    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        self._check_params()
        first = not self.is_fitted
        if first:
            self._init_buffer(X)
            H = int(self.hidden)
            self.A_ = np.zeros((H, H))
            self.C_ = np.zeros((H, 0))
            self.beta_ = np.zeros((H, 0))
            self.counts_ = np.zeros(0)
            self.n_features_ = int(X.shape[1])
        k_old, k_new = self.C_.shape[1], Y.shape[1]
        Yt = np.zeros((X.shape[0], k_old + k_new))
        Yt[:, k_old:] = Y
        if k_old and self.pseudo_threshold is not None:
            for rows, P in self._chunks(X):
                Yt[rows, :k_old] = _sigmoid(P @ self.beta_) > self.pseudo_threshold
        counts = np.concatenate([self.counts_, np.zeros(k_new)]) + Yt.sum(axis=0)
        w = frequency_weights(Yt, counts) if self.weighted else np.ones(X.shape[0])
        A = self.A_.copy()
        C = np.concatenate([self.C_, np.zeros((self.C_.shape[0], k_new))], axis=1)
        for rows, P in self._chunks(X):
            Pw = P * w[rows, None]
            A += P.T @ Pw
            C += Pw.T @ Yt[rows]
        self.beta_ = _ridge_solve(A, C, float(self.gamma))
        self.A_, self.C_, self.counts_ = A, C, counts
        self.session_classes_ = [*getattr(self, "session_classes_", []), np.asarray(classes)]
        self._classes = np.concatenate([self.classes_, classes]) if not first else np.asarray(classes)

    def scores(self, X) -> np.ndarray:
        """n × len(classes_) scores φ(x)ᵀβ."""
        X = self._check_X(X)
        out = np.empty((X.shape[0], self.beta_.shape[1]))
        for rows, P in self._chunks(X):
            out[rows] = P @ self.beta_
        return out

    @property
    def decision_thresholds_(self) -> np.ndarray:
        """``threshold`` (0.525 by default, L3A's) for every class."""
        return np.full(len(self.classes_), float(self.threshold))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _ridge_solve(A: np.ndarray, C: np.ndarray, gamma: float) -> np.ndarray:
    """(A + γI)⁻¹ C by Cholesky (A is a PSD Gram, so A + γI is positive definite)."""
    M = A.copy()
    M[np.diag_indices_from(M)] += gamma
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(M, lower=True, check_finite=False), C,
                                      check_finite=False)
    except np.linalg.LinAlgError:
        raise MlcilError(f"l3a: A + γI is not positive definite (γ={gamma}); raise gamma") from None


def _column_stats(X) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (float64; 1 where a column is constant)."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        mu = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
        sd = np.sqrt(np.maximum(sq - mu**2, 0.0))
    else:
        X64 = np.asarray(X, dtype=np.float64)
        mu, sd = X64.mean(axis=0), X64.std(axis=0)
    return mu, np.where(sd > 1e-12, sd, 1.0)
