"""The one solved ridge model: W = (G + λI)⁻¹B with its feature map, calibration and thresholds.

Every door scores through :class:`RidgeModel` — the ``analytic`` and ``joint`` learners and the
tagging service alike: scores s = φ(x)ᵀW (n×C), probabilities p = calibration(s) per class (Platt
or isotonic, :mod:`mlcil.decide.calibration`; :data:`DEFAULT_PLATT` for a class without its own),
decisions p ≥ threshold (:data:`DEFAULT_THRESHOLD` for a class without its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mlcil.decide.calibration import apply_calibration, apply_platt
from mlcil.errors import MlcilError
from mlcil.ridge.features import FeatureMap
from mlcil.ridge.solve import ridge_solve
from mlcil.ridge.stats import Stats

#: (a, b) of a class without its own calibration: p = σ(4s − 2), so p = 0.5 at the ridge score 0.5
#: (halfway between the targets 0 and 1), 0.88 at 1 and 0.12 at 0.
DEFAULT_PLATT = (4.0, -2.0)
#: decision threshold on probabilities of a class without its own
DEFAULT_THRESHOLD = 0.5


def _check_calibration(calibration, C: int) -> dict[str, np.ndarray] | None:
    if calibration is None:
        return None
    if not isinstance(calibration, dict):
        raise MlcilError(f"calibration: expected None or a dict {{'a', 'b'}} (Platt) or {{'x', 'y'}} (isotonic), "
                         f"got {type(calibration).__name__}")
    keys = set(calibration)
    if keys == {"a", "b"}:
        out = {k: np.asarray(calibration[k], dtype=np.float64) for k in ("a", "b")}
        for k, v in out.items():
            if v.shape != (C,):
                raise MlcilError(f"calibration['{k}']: expected shape ({C},) (one per class), got {v.shape}")
        return out
    if keys == {"x", "y"}:
        out = {k: np.asarray(calibration[k], dtype=np.float64) for k in ("x", "y")}
        for k, v in out.items():
            if v.ndim != 2 or v.shape[0] != C or v.shape != out["x"].shape:
                raise MlcilError(f"calibration['{k}']: expected shape ({C}, K) like calibration['x'], got {v.shape}")
        return out
    raise MlcilError(f"calibration: expected keys {{'a', 'b'}} (Platt) or {{'x', 'y'}} (isotonic), "
                     f"got {sorted(keys)}")


@dataclass(frozen=True, eq=False)
class RidgeModel:
    """A solved ridge model; immutable (build a new one to change anything).

    Attributes:
        fmap: the feature map φ (input dimension d, output dimension D).
        W: D×C float64 weights.
        lam: the ridge λ that W was solved with.
        calibration: per-class parameters in :func:`mlcil.decide.calibration.fit_calibration`'s format,
            ``{'a', 'b'}`` (Platt, each (C,)) or ``{'x', 'y'}`` (isotonic knots, each C×K); None =
            :data:`DEFAULT_PLATT` for every class.
        thresholds: (C,) decision thresholds on probabilities; None = :data:`DEFAULT_THRESHOLD` for every class.

    Example:
        >>> import numpy as np
        >>> from mlcil import ridge
        >>> X = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
        >>> Y = (X[:, :2] > 0).astype(np.uint8)
        >>> fmap = ridge.FeatureMap.fit(X, M=64, scaling="standardize", include_x=True)
        >>> model = ridge.RidgeModel.solve(fmap, ridge.partial_statistics(fmap, X, Y), lam=1.0)
        >>> model.scores(X).shape, model.predict(X).dtype
        ((300, 2), dtype('uint8'))
        >>> bool((model.predict(X) == Y).mean() > 0.85)  # a step function, fitted by ridge: 89% right
        True
    """

    fmap: FeatureMap
    W: np.ndarray
    lam: float
    calibration: dict[str, np.ndarray] | None = None
    thresholds: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.fmap, FeatureMap):
            raise MlcilError(f"fmap: expected a mlcil.ridge.FeatureMap, got {type(self.fmap).__name__}")
        W = np.asarray(self.W, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] != self.fmap.D:
            raise MlcilError(f"W: expected shape (D, C) with D = {self.fmap.D} (the feature map's output), "
                             f"got {W.shape}")
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "lam", float(self.lam))
        C = W.shape[1]
        object.__setattr__(self, "calibration", _check_calibration(self.calibration, C))
        if self.thresholds is not None:
            t = np.asarray(self.thresholds, dtype=np.float64)
            if t.shape != (C,):
                raise MlcilError(f"thresholds: expected shape ({C},) (one per class) or None, got {t.shape}")
            object.__setattr__(self, "thresholds", t)

    @classmethod
    def solve(cls, fmap: FeatureMap, stats: Stats, lam: float, calibration: dict[str, np.ndarray] | None = None,
              thresholds: np.ndarray | None = None) -> "RidgeModel":
        """W = (G + λI)⁻¹B from ``stats`` (Cholesky; least squares where G + λI is not positive definite).

        C = 0 classes gives a D×0 W.
        """
        if not isinstance(stats, Stats):
            raise MlcilError(f"stats: expected a mlcil.ridge.Stats, got {type(stats).__name__}")
        if stats.D != fmap.D:
            raise MlcilError(f"stats: G is {stats.D}×{stats.D} but the feature map has D = {fmap.D} features")
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) \
                or not np.isfinite(lam) or lam < 0:
            raise MlcilError(f"lam: expected a finite number >= 0, got {lam!r}")
        W = ridge_solve(stats.G, stats.B, float(lam)) if stats.C else np.zeros((stats.D, 0))
        return cls(fmap, W, float(lam), calibration, thresholds)

    @property
    def n_classes(self) -> int:
        """C, the number of score columns."""
        return int(self.W.shape[1])

    def _check_X(self, X):
        if sp.issparse(X):
            if X.ndim != 2 or X.shape[1] != self.fmap.d:
                raise MlcilError(f"X: expected n×{self.fmap.d} rows, got a sparse matrix of shape {X.shape}")
            return sp.csr_matrix(X)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.fmap.d:
            raise MlcilError(f"X: expected an n×{self.fmap.d} array (dense or CSR), got shape {X.shape}")
        if X.dtype.kind not in "biuf":
            raise MlcilError(f"X: expected real numbers, got dtype {X.dtype}")
        return X

    def scores(self, X) -> np.ndarray:
        """Ridge scores φ(x)ᵀW: n×C float32, computed chunk by chunk (X n×d, dense or CSR)."""
        X = self._check_X(X)
        if self.n_classes == 0:
            return np.zeros((X.shape[0], 0), dtype=np.float32)
        return self.fmap.predict(X, self.W)

    def proba_from_scores(self, S: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of scores S (n×C): n×C float64 in [0, 1]."""
        S = np.asarray(S, dtype=np.float64)
        if S.ndim != 2 or S.shape[1] != self.n_classes:
            raise MlcilError(f"S: expected n×{self.n_classes} scores, got shape {S.shape}")
        if self.calibration is None:
            a, b = DEFAULT_PLATT
            return apply_platt(S, np.full(self.n_classes, a), np.full(self.n_classes, b))
        return np.clip(apply_calibration(self.calibration, S), 0.0, 1.0)

    def proba(self, X) -> np.ndarray:
        """Calibrated probabilities of rows X: n×C float64 in [0, 1]."""
        return self.proba_from_scores(self.scores(X))

    def decide(self, P: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """n×C bool decisions: P ≥ ``threshold`` when given, else P ≥ each class's own threshold."""
        P = np.asarray(P)
        if P.ndim != 2 or P.shape[1] != self.n_classes:
            raise MlcilError(f"P: expected n×{self.n_classes} probabilities, got shape {P.shape}")
        if threshold is not None:
            return P >= float(threshold)
        t = np.full(self.n_classes, DEFAULT_THRESHOLD) if self.thresholds is None else self.thresholds
        return P >= t

    def predict(self, X, threshold: float | None = None) -> np.ndarray:
        """Label sets of rows X as n×C uint8 multi-hot: :meth:`decide` of :meth:`proba`."""
        return self.decide(self.proba(X), threshold).astype(np.uint8)
