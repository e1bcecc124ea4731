"""The name prior of :class:`~mlcil.learners.analytic.Analytic` (zero-shot cold start, ``prior`` = β).

When a session carries ``label_embeddings`` (one row e_c per new class: its name, embedded by the encoder
that embedded the inputs), each class c adds a pseudo-example, positive for c and negative for the session's
other classes, of weight β: G += β φ(e_c)φ(e_c)ᵀ, B[:, c] += β φ(e_c). It is statistics like the rest: the
learner keeps each class's φ(e_c) and β (``prior_phi_``, ``prior_weight_``) so that merge counts it once and
forgetting a class removes it.

Pure functions on arrays, and :class:`NamePrior`, the learner's thin methods over them.
"""

from __future__ import annotations

from typing import Self

import numpy as np

from mlcil.decide.calibration import concat_calibration, fit_calibration
from mlcil.errors import MlcilError
from mlcil.learners.base import as_classes


def check_names(E, k: int, d: int, who: str) -> np.ndarray:
    """``label_embeddings`` as k×d float32 (one finite row per new class), or an MlcilError naming ``who``."""
    E = np.asarray(E, dtype=np.float32)
    if E.ndim != 2 or E.shape != (k, d):
        raise MlcilError(f"{who}: label_embeddings: expected {k}×{d} (one row per new class, "
                         f"the inputs' dimension), got shape {E.shape}")
    if not np.isfinite(E).all():
        raise MlcilError(f"{who}: label_embeddings contain NaN or inf")
    return E


def prior_statistics(phi: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """(β ΦᵀΦ D×D, β Φᵀ D×k) of the names' pseudo-examples Φ = φ(E) (k×D float64)."""
    return beta * (phi.T @ phi), beta * phi.T


def prior_gram(prior_phi: np.ndarray, prior_weight: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Σ_c β_c φ(e_c)φ(e_c)ᵀ (D×D) over the class columns selected by the boolean ``cols`` (C,), from the
    per-class prior rows ``prior_phi`` (C×D) and weights ``prior_weight`` (C,)."""
    phi = prior_phi[np.flatnonzero(cols)]
    w = np.asarray(prior_weight[cols], dtype=np.float64)
    return (phi * w[:, None]).T @ phi


class NamePrior:
    """The learner's name-prior methods (mixed into :class:`~mlcil.learners.analytic.Analytic`)."""

    def _prior_weights_after(self, k: int, named: bool) -> np.ndarray | None:
        """β per class once this session's k classes are added (None without a name prior)."""
        before = getattr(self, "prior_weight_", None)
        if not named:
            return before
        return np.concatenate([np.zeros(0) if before is None else before, np.full(k, float(self.prior))])

    def _check_names(self, E, k: int) -> np.ndarray:
        return check_names(E, k, self.n_features_, self.name)

    def _name_prior(self, G: np.ndarray, B: np.ndarray, k: int):
        """(G + β ΦᵀΦ, B + β Φᵀ, Φ) with Φ = φ(E) of this session's label embeddings; unchanged without them."""
        E = getattr(self, "_names", None)
        if E is None or not float(self.prior) > 0:
            return G, B, None
        phi = self._features(self._check_names(E, k)).astype(np.float64)
        G_prior, B_prior = prior_statistics(phi, float(self.prior))
        return G + G_prior, B + B_prior, phi

    def _keep_prior(self, phi: np.ndarray | None, k: int) -> None:
        """Remember each class's prior row φ(e_c) and weight (zero without a prior) for merge and forget."""
        D = self.G_[0].shape[0]
        rows = np.zeros((k, D)) if phi is None else phi
        self.prior_phi_ = np.concatenate([getattr(self, "prior_phi_", rows[:0]), rows])
        self.prior_weight_ = np.concatenate([getattr(self, "prior_weight_", np.zeros(0)),
                                             np.full(k, 0.0 if phi is None else float(self.prior))])

    def _prior_gram(self, cols: np.ndarray) -> np.ndarray:
        """Σ_c β_c φ(e_c)φ(e_c)ᵀ over the given class columns."""
        return prior_gram(self.prior_phi_, self.prior_weight_, cols)

    def learn_names(self, classes, label_embeddings) -> Self:
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
