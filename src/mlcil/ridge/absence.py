"""Label absence as linear algebra: the systems α G_all + (1 − α) K + λI and their dual forms.

For the classes C_s of session s, rows of other sessions count as negatives with weight α ∈ [0, 1]:
W_{C_s} = (α G_all + (1 − α) K_s + λI)⁻¹ B_s, with G_all the Gram matrix of every row and K_s that of the
rows whose C_s labels are known (docs/concepts/learners.md). α = 1 is one system for every class ('negative'),
α = 0 is each session on its own ('known').

- :func:`absence_system`, :func:`weighted_solve`: the system and its solve.
- :func:`eig_solve`, :class:`SessionSpectrum`: one session's G diagonalised once (or its n×n dual, for
  fewer rows than features, :func:`use_dual`), every λ from it.
- :func:`simulated_loo`, :func:`simulated_loo_dual`: closed-form leave-one-out scores of rows in a
  simulated stream (groups of classes learned as separate sessions), for every α: how an α is scored.

Everything is float64 NumPy/SciPy; no learner, no storage.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import scipy.linalg

from mlcil.ridge.solve import Factor, Tridiagonal, _in_coordinates, identity, is_identity, ridge_solve


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
    A = absence_system(G_all, K, alpha, 0.0, copy=False)
    return ridge_solve(A, B, lam, overwrite=A is not G_all and A is not K)  # (a new array: factored in place)


def use_dual(n: int, D: int) -> bool:
    """Whether a computation over n rows of D features runs in the n×n dual (:meth:`SessionSpectrum.dual`,
    :func:`simulated_loo_dual`): with fewer rows than features. The results are the same."""
    return n < D


def eig_solve(eig: tuple[np.ndarray, np.ndarray], B: np.ndarray, lam: float) -> np.ndarray:
    """W = (G + λI)⁻¹B from G's eigendecomposition G = V diag(s) Vᵀ (s (D,), V D×D): D×C float64."""
    s, V = eig
    scaled = _in_coordinates(V, B) / (np.maximum(s, 0.0) + lam)[:, None]
    return scaled if is_identity(V) else V @ scaled


class SessionSpectrum:
    """One session's own G = Σ w φφᵀ diagonalised once, with its B and held-out rows in the coordinates of
    G's eigenvectors: every λ of the ridge core's paths (:func:`mlcil.ridge.loo_path_scores`,
    :func:`mlcil.ridge.choose_lambda`, :func:`mlcil.ridge.gcv_curve`, :func:`mlcil.ridge.gcv_minimum`, given
    ``eig``, ``B`` and ``phi``) and W = (G + λI)⁻¹B (:meth:`solve`) from one decomposition.

    Attributes:
        eig: (s, V) for the ridge core's ``eig`` arguments.
        B: the session's B in the coordinates of V (with ``eig``).
        phi: the held-out rows' φ in the same coordinates (computed when first read: GCV does not need them).
    """

    def __init__(self, eig: tuple[np.ndarray, np.ndarray], B: np.ndarray, phi: np.ndarray | Callable[[], np.ndarray],
                 solve: Callable[[float], np.ndarray]) -> None:
        self.eig, self.B, self._phi, self._solve = eig, B, phi, solve

    @property
    def phi(self) -> np.ndarray:
        if callable(self._phi):
            self._phi = self._phi()
        return self._phi

    def solve(self, lam: float) -> np.ndarray:
        """W = (G + λI)⁻¹B for the session's own B (D×C float64)."""
        return self._solve(lam)

    @classmethod
    def primal(cls, G: np.ndarray, B: np.ndarray, phi_sub: np.ndarray) -> "SessionSpectrum":
        """From G's own eigendecomposition G = V diag(s) Vᵀ (O(D³)), in the coordinates of V (``eig`` is
        (s, I)): through one tridiagonal reduction (:class:`mlcil.ridge.solve.Tridiagonal`), V itself is never
        formed; the held-out rows are rotated only when :attr:`phi` is read."""
        tri = Tridiagonal(G)
        s = tri.s
        B_rot = tri.rotate(B)
        phi_sub = np.asarray(phi_sub, dtype=np.float64)
        return cls((s, identity(len(s))), B_rot, lambda: tri.rotate(phi_sub.T).T,
                   lambda lam: tri.unrotate(B_rot / (np.maximum(s, 0.0) + lam)[:, None]))

    @classmethod
    def dual(cls, phi: np.ndarray, Y: np.ndarray, weights: np.ndarray | None, sub: np.ndarray) -> "SessionSpectrum":
        """In the n×n dual of the session's rows (n×D φ, n×C labels Y, weights; ``sub``: the held-out rows), for
        fewer rows than features: O(n²D + n³) instead of O(D³).

        With Ψ = diag(√w)Φ and ΨΨᵀ = U diag(s) Uᵀ, G = ΨᵀΨ has the eigenvalues s (and 0 on the complement) with
        eigenvectors v = Ψᵀu/√s. In the coordinates of those v, B = Ψᵀ√w·Y is diag(√s)Uᵀ(√w·Y) and a row
        φ_i = Ψ_i/√w_i is U_i·√s/√w_i: nothing divides by √s, and G's null space, orthogonal to every row, drops
        out of every quantity (``eig`` is (s, I)). W = Ψᵀ U diag(1/(s + λ)) Uᵀ(√w·Y) (push-through identity).
        U is never formed (:class:`mlcil.ridge.solve.Tridiagonal`): its rows ``sub`` only when :attr:`phi` is read.
        """
        Psi = np.asarray(phi, dtype=np.float64)
        root = np.ones(len(Psi)) if weights is None else np.sqrt(np.asarray(weights, dtype=np.float64))
        if weights is not None:
            Psi = Psi * root[:, None]
        tri = Tridiagonal(Psi @ Psi.T)
        s = np.maximum(tri.s, 0.0)
        rs = np.sqrt(s)
        UtY = tri.rotate(root[:, None] * np.asarray(Y, dtype=np.float64))
        sub = np.asarray(sub)

        def phi_sub() -> np.ndarray:  # U[sub] = (UᵀE)ᵀ with E the columns ``sub`` of the n×n identity
            E = np.zeros((len(Psi), len(sub)))
            E[sub, np.arange(len(sub))] = 1.0
            return tri.rotate(E).T * (rs[None, :] / root[sub][:, None])

        return cls((s, identity(len(s))), UtY * rs[:, None], phi_sub,
                   lambda lam: Psi.T @ tri.unrotate(UtY / (s + lam)[:, None]))


def simulated_loo(parts: Sequence[tuple], G_all: np.ndarray, n_parts_of_row: np.ndarray, alpha: float, lam: float,
                  phi: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Leave-one-out scores of the rows ``phi`` (n×D) in a simulated stream: n × Y.shape[1] float64.

    ``parts``: per group p of classes learned as one session, (G_p D×D, B_p D×|cols|, cols, n-boolean
    membership of the scored rows); ``G_all``: the Gram matrix of every row; ``n_parts_of_row``: how many
    times each scored row is in G_all; Y (n×C) and w (n,): the scored rows' labels and weights.
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
            A = absence_system(G_all, G, alpha, 0.0, copy=False)
            factor = Factor(A, lam, overwrite=A is not G_all and A is not G)
            shared = factor if alpha == 1.0 else None
        h = factor.leverage(phi)
        yhat = phi @ factor.solve(B)
        inside = member.astype(float)
        weight = w * (alpha * n_parts_of_row + (1 - alpha) * inside)
        S[:, cols] = (yhat - (w * inside * h)[:, None] * Y[:, cols]) / np.maximum(1 - weight * h, 1e-6)[:, None]
    return S


def simulated_loo_dual(K: np.ndarray, groups: Sequence[tuple], n_all: np.ndarray, alpha: float, lam: float,
                       loo: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:func:`simulated_loo` in the n×n dual, for fewer sampled rows n than features: the same scores.

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
