"""Solving the ridge system A W = B, A = G + λI: Cholesky factor, leverages, leave-one-out, λ path.

Shapes: G D×D, B D×C, Φ m×D (rows to score), Y m×C, W D×C. Everything float64 NumPy (SciPy's LAPACK).
"""

from __future__ import annotations

import weakref
from contextlib import nullcontext

import numpy as np
import scipy.linalg

from mlcil.errors import MlcilError


class NotPositiveDefinite(MlcilError):
    """G + λI is not positive definite (λ too small for a singular or indefinite G)."""


def _shifted(G: np.ndarray, lam: float, overwrite: bool = False) -> np.ndarray:
    """A = G + λI as a new float64 array (G square); with ``overwrite`` in G itself where G is float64."""
    A = np.asarray(G, dtype=np.float64) if overwrite else np.array(G, dtype=np.float64, order="C")  # (a copy)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise MlcilError(f"ridge: G must be a square D×D array, got shape {A.shape}")
    A[np.diag_indices_from(A)] += float(lam)
    return A


def _lapack_dpotrf():
    """LAPACK's dpotrf from SciPy's Cython LAPACK table, callable through ctypes (which releases the GIL), or
    None where that table is not there."""
    try:
        import ctypes

        from scipy.linalg import cython_lapack

        capsule = cython_lapack.__pyx_capi__["dpotrf"]
        api = ctypes.pythonapi
        api.PyCapsule_GetName.restype, api.PyCapsule_GetName.argtypes = ctypes.c_char_p, [ctypes.py_object]
        api.PyCapsule_GetPointer.restype = ctypes.c_void_p
        api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        pointer = api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
        integer = ctypes.POINTER(ctypes.c_int)
        return ctypes.CFUNCTYPE(None, ctypes.c_char_p, integer, ctypes.c_void_p, integer, integer)(pointer)
    except Exception:  # pragma: no cover  (another SciPy build: NumPy's Cholesky below)
        return None


_DPOTRF: list = []  # [dpotrf or None], looked up on first use


def _cholesky_in_place(A: np.ndarray) -> bool:
    """A (D×D C-contiguous float64 symmetric, owned by the caller) overwritten by its lower Cholesky factor L
    (zeros above the diagonal); False when A is not positive definite, A then left as it was.

    LAPACK's dpotrf on A's memory, called through ctypes: the GIL is released while it runs (SciPy's
    wrappers hold it: a service's predictions froze during refreshes) and no D×D copy is made; NumPy's
    Cholesky, which also releases it, copies A twice and ran 1.5–2× slower here (D = 2432, one thread).
    Read as Fortran, A's memory is Aᵀ = A, and its upper factor U (A = UᵀU) is L in C order."""
    if not _DPOTRF:
        _DPOTRF.append(_lapack_dpotrf())
    dpotrf = _DPOTRF[0]
    D = A.shape[0]
    if dpotrf is None or not A.flags.c_contiguous or D == 0:
        try:
            A[...] = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            return False
        return True
    import ctypes

    diagonal = A.diagonal().copy()
    n, info = ctypes.c_int(D), ctypes.c_int(0)
    dpotrf(b"U", ctypes.byref(n), A.ctypes.data, ctypes.byref(n), ctypes.byref(info))
    if info.value != 0:  # A back from its strict upper triangle, which dpotrf does not touch, and its diagonal
        A[...] = np.triu(A, 1)
        A += A.T
        A[np.diag_indices(D)] = diagonal
        return False
    for r0 in range(0, D, 256):  # the strict upper triangle still holds A's entries: zeros, block by block
        r1 = min(r0 + 256, D)
        A[r0:r1, r1:] = 0.0
        block = A[r0:r1, r0:r1]
        block[np.triu_indices(r1 - r0, 1)] = 0.0
    return True


class Factor:
    """The lower Cholesky factor L of A = G + λI (A = LLᵀ), built once and reused for every solve.

    Raises :class:`NotPositiveDefinite` when A has no Cholesky factor. ``overwrite``: G is the caller's scratch
    array, factored in place (no D×D copy): it then holds L, or G + λI where A has no Cholesky factor.
    """

    def __init__(self, G: np.ndarray, lam: float, overwrite: bool = False) -> None:
        A = _shifted(G, lam, overwrite)
        if not np.isfinite(A).all():
            raise MlcilError("ridge: G has NaN or infinite entries")
        if not _cholesky_in_place(A):
            raise NotPositiveDefinite(f"ridge: G + λI is not positive definite at λ = {lam:g}")
        self.L, self.lam = A, float(lam)

    def solve(self, B: np.ndarray) -> np.ndarray:
        """W = A⁻¹B (B D×C -> D×C float64)."""
        # L is C-ordered: LAPACK reads it without a copy as the upper factor Lᵀ in Fortran order (A = UᵀU, U = Lᵀ).
        # Passed as the lower factor, SciPy would copy the D×D L into Fortran order on every solve.
        return scipy.linalg.cho_solve((self.L.T, False), np.asarray(B, dtype=np.float64), check_finite=False)

    def leverage(self, phi: np.ndarray) -> np.ndarray:
        """h_i = φ_iᵀ A⁻¹ φ_i for each row of ``phi`` (m×D) -> m."""
        return leverage(self.L, phi)

    def loo_scores(self, W: np.ndarray, phi: np.ndarray, Y: np.ndarray,
                   weights: np.ndarray | None = None) -> np.ndarray:
        """Leave-one-out scores of rows ``phi`` (already in the statistics) under W = A⁻¹B."""
        return loo_scores(self.L, W, phi, Y, weights)


def ridge_solve(G: np.ndarray, B: np.ndarray, lam: float, overwrite: bool = False) -> np.ndarray:
    """W = (G + λI)⁻¹ B by Cholesky; least squares where G + λI is not positive definite. D×C float64.
    ``overwrite``: G is the caller's scratch array (see :class:`Factor`)."""
    try:
        return Factor(G, lam, overwrite).solve(B)
    except NotPositiveDefinite:
        if overwrite:  # G is G + λI now
            lam = 0.0
        return scipy.linalg.lstsq(_shifted(G, lam), np.asarray(B, dtype=np.float64), lapack_driver="gelsy",
                                  check_finite=False)[0]


_controller = None  # threadpoolctl's view of the loaded BLAS libraries, found once (a scan costs ~3 ms)


def _one_thread():
    """BLAS/LAPACK limited to one thread while the block runs (a no-op without threadpoolctl)."""
    global _controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def eigh(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, V): eigenvalues (ascending) and eigenvectors of a symmetric matrix, with one BLAS thread.

    Measured here (benchmarks/cost.py): MKL's threaded symmetric eigensolver gains nothing
    from a second core on a 2560×2560 problem (2.4 s vs 2.2 s) and slows down over tenfold
    (2.7 s → 37 s) when another process competes for the cores; one thread avoids that.
    """
    G = np.asarray(G, dtype=np.float64)
    with _one_thread():  # LAPACK's divide and conquer (syevd), torch's algorithm; faster here than numpy's
        return scipy.linalg.eigh(G, driver="evd", check_finite=False)


class Tridiagonal:
    """G = Q Z diag(s) Zᵀ Qᵀ through one tridiagonal reduction G = Q T Qᵀ (LAPACK dsytrd, Householder reflectors
    kept) and T = Z diag(s) Zᵀ (dstemr): the spectrum s (ascending, as :func:`eigh`'s) and every quantity in the
    coordinates of G's eigenvectors V = QZ without forming V. :meth:`rotate` gives VᵀX, :meth:`unrotate` V X.

    The same eigenvalues and, up to each eigenvector's sign, the same coordinates as :func:`eigh` (float
    rounding apart), at a fraction of its cost: eigh's divide and conquer and its D×D back-transformation
    V = QZ are what costs; GCV needs only s and VᵀB (:func:`gcv_spectrum`). G symmetric D×D float64.
    """

    def __init__(self, G: np.ndarray) -> None:
        G = np.asarray(G, dtype=np.float64)
        if G.ndim != 2 or G.shape[0] != G.shape[1]:
            raise MlcilError(f"ridge: G must be a square D×D array, got shape {G.shape}")
        self.D = D = G.shape[0]
        if D < 3:  # (no reflector to keep: the D×D eigendecomposition itself)
            self.s, self._V = eigh(G)
            return
        lapack = scipy.linalg.lapack
        work, info = lapack.dsytrd_lwork(D, lower=1)
        # G.T: the Fortran-ordered view of the symmetric G (a plain copy instead of a transposing one)
        c, d, e, tau, info = lapack.dsytrd(G.T, lower=1, lwork=max(int(work), 1))
        if info != 0:
            raise MlcilError(f"ridge: tridiagonal reduction failed (LAPACK dsytrd info = {info})")
        self._reflectors, self._tau = c[1:, :-1], tau  # Q = diag(1, Q'), Q' = H(1)…H(D−1) as dormqr reads them
        self.s, self._Z = scipy.linalg.eigh_tridiagonal(d, e, lapack_driver="stemr", check_finite=False)
        self._V = None

    def _apply_q(self, X: np.ndarray, trans: str) -> np.ndarray:
        """QX (``trans`` 'N') or QᵀX ('T') for X D×k, by the stored reflectors (LAPACK dormqr)."""
        out = np.array(X, dtype=np.float64, order="F")
        if out.shape[1] == 0:
            return out
        lapack = scipy.linalg.lapack
        tail = np.asfortranarray(out[1:])
        _, work, _ = lapack.dormqr("L", trans, self._reflectors, self._tau, tail, lwork=-1)  # workspace query
        tail, _, info = lapack.dormqr("L", trans, self._reflectors, self._tau, tail,
                                      lwork=max(int(work[0]), tail.shape[1], 1), overwrite_c=1)
        if info != 0:
            raise MlcilError(f"ridge: applying the tridiagonal reduction failed (LAPACK dormqr info = {info})")
        out[1:] = tail
        return out

    def rotate(self, X: np.ndarray) -> np.ndarray:
        """VᵀX = ZᵀQᵀX (X D×k -> D×k float64)."""
        X = np.asarray(X, dtype=np.float64)
        if self._V is not None:
            return self._V.T @ X
        return self._Z.T @ self._apply_q(X, "T")

    def unrotate(self, X: np.ndarray) -> np.ndarray:
        """V X = Q Z X (X D×k -> D×k float64)."""
        X = np.asarray(X, dtype=np.float64)
        if self._V is not None:
            return self._V @ X
        return np.ascontiguousarray(self._apply_q(self._Z @ X, "N"))


_IDENTITIES: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()


def identity(n: int) -> np.ndarray:
    """A read-only n×n identity, one object per n while in use: the V of an ``eig = (s, V)`` whose quantities are
    already in the eigenvectors' coordinates (:class:`mlcil.ridge.SessionSpectrum`); the λ paths skip
    multiplying by it."""
    I = _IDENTITIES.get(n)
    if I is None:
        I = np.eye(n)
        I.flags.writeable = False
        _IDENTITIES[n] = I
    return I


def is_identity(V: np.ndarray) -> bool:
    """Whether V is :func:`identity`'s object (a lookup: never allocates one to compare)."""
    return V is _IDENTITIES.get(V.shape[0])


def _in_coordinates(V: np.ndarray, X: np.ndarray, left: bool = True) -> np.ndarray:
    """VᵀX (``left``) or X V, skipped when V is :func:`identity`'s object."""
    X = np.asarray(X, dtype=np.float64)
    if is_identity(V):  # (the identity: no product)
        return X
    return V.T @ X if left else X @ V


def lambda_grid(G: np.ndarray, n: int = 13, low: float = -4.0, high: float = 2.0) -> np.ndarray:
    """λ values on a log grid scaled by the mean eigenvalue of G (trace / D)."""
    G = np.asarray(G)
    scale = float(np.trace(G)) / max(G.shape[0], 1)
    return max(scale, 1e-12) * np.logspace(low, high, int(n))


def loo_correct(yhat: np.ndarray, h: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """(ŷ − h·y) / (1 − h), with 1 − h kept away from 0. yhat, Y m×C; h m."""
    return (yhat - h[:, None] * Y) / np.maximum(1.0 - h, 1e-6)[:, None]


def leverage(L: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """h_i = φ_iᵀ A⁻¹ φ_i for the rows of ``phi`` (m×D), given the lower Cholesky factor L of A."""
    Z = scipy.linalg.solve_triangular(L, np.asarray(phi, dtype=np.float64).T, lower=True, check_finite=False)
    return (Z * Z).sum(axis=0)


def loo_scores(L: np.ndarray, W: np.ndarray, phi: np.ndarray, Y: np.ndarray,
               weights: np.ndarray | None = None) -> np.ndarray:
    """Leave-one-out scores of rows ``phi`` under a fixed system A W = B (A includes λI). m×C float64.

    With ŷ = φᵀW and leverage h = w·φᵀA⁻¹φ, the fit without the row predicts (ŷ − h·y) / (1 − h)
    (Sherman–Morrison): no refit. L is the lower Cholesky factor of A.
    """
    h = leverage(L, phi)
    if weights is not None:
        h = h * np.asarray(weights, dtype=np.float64)
    return loo_correct(np.asarray(phi, dtype=np.float64) @ W, h, np.asarray(Y, dtype=np.float64))


def loo_path_scores(G: np.ndarray, B: np.ndarray, phi: np.ndarray, Y: np.ndarray, lambdas,
                    weights: np.ndarray | None = None, eig: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> np.ndarray:
    """Leave-one-out scores of rows ``phi`` (already inside G and B) for every λ, in closed form.

    One eigendecomposition G = V diag(s) Vᵀ gives every λ: A⁻¹ = V diag(1/(s+λ)) Vᵀ. ``eig`` reuses
    a decomposition already computed. Returns len(lambdas)×m×C float64.
    """
    s, V = eigh(G) if eig is None else eig
    s = np.maximum(s, 0)
    P = _in_coordinates(V, phi, left=False)
    Q = _in_coordinates(V, B)
    P2 = P * P
    Y64 = np.asarray(Y, dtype=np.float64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    out = []
    for lam in np.asarray(lambdas, dtype=np.float64):
        d = 1.0 / (s + lam)
        yhat = (P * d) @ Q
        h = P2 @ d
        if w is not None:
            h = h * w
        out.append(loo_correct(yhat, h, Y64))
    return np.stack(out) if out else np.zeros((0,) + Y64.shape)


#: GCV is trusted only while the effective degrees of freedom tr(H) stay at most this fraction of the
#: rows: as tr(H) approaches n (more features than rows, small λ) GCV's denominator vanishes with the
#: residual and it rewards interpolation. Measured on scene B0-C2 (sessions of ~420 rows, D = 2342):
#: without the cap GCV picks the grid's smallest λ and last mAP falls from 79.5 to 48.
GCV_MAX_DOF = 0.5


def gcv_curve(G: np.ndarray, B: np.ndarray, yy: float, n: float, lambdas, max_dof: float = GCV_MAX_DOF,
              eig: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Generalised cross-validation of ridge W = (G + λI)⁻¹B for every λ, from sufficient statistics alone.

    G = Σ w φφᵀ (D×D), B = Σ w φyᵀ (D×C), ``yy`` = Σ w ‖y‖² (a scalar over every column), ``n`` = Σ w.
    GCV(λ) = RSS(λ)/n / (1 − tr H(λ)/n)² with RSS = yy − 2 tr(WᵀB) + tr(WᵀGW) and tr H = Σ s/(s + λ)
    (s the eigenvalues of G): the rotation-invariant approximation of leave-one-out squared error,
    summed over the columns. λ where tr H > ``max_dof``·n get +inf. Returns len(lambdas) float64.
    """
    return _gcv_values(gcv_spectrum(G, B, eig), yy, n, lambdas, max_dof)


def gcv_column_curves(G: np.ndarray, B: np.ndarray, yy: np.ndarray, n: float, lambdas,
                      max_dof: float = GCV_MAX_DOF, eig=None) -> np.ndarray:
    """GCV of every column of B on its own: a C × len(lambdas) array whose column sums are :func:`gcv_curve`
    (up to its clamp of the summed RSS at 0). ``yy``: Σ w y_c² per column (C,); G, ``n``, ``max_dof`` as in
    :func:`gcv_curve` (the degrees of freedom, and so the cap, are shared by every column)."""
    s, V = eigh(G) if eig is None else eig
    s = np.maximum(s, 0)
    Q2 = _in_coordinates(V, B) ** 2  # D × C
    lambdas = np.asarray(lambdas, dtype=np.float64)
    out = np.full((Q2.shape[1], len(lambdas)), np.inf)
    for j, lam in enumerate(lambdas):
        denominator = _gcv_denominator(s, n, float(lam), max_dof)
        if denominator is not None:
            rss = np.maximum(np.asarray(yy, dtype=np.float64) - ((s + 2 * lam) / (s + lam) ** 2) @ Q2, 0.0)
            out[:, j] = rss / n / denominator
    return out


def gcv_spectrum(G: np.ndarray, B: np.ndarray, eig=None) -> tuple[np.ndarray, np.ndarray]:
    """(s, q²): eigenvalues of G (clamped at 0) and Σ_c (vᵢᵀb_c)² per eigenvector: all GCV needs from G, B."""
    s, V = eigh(G) if eig is None else eig
    q2 = (_in_coordinates(V, B) ** 2).sum(axis=1)
    return np.maximum(s, 0), q2


def gcv_at(spectrum: tuple[np.ndarray, np.ndarray], yy: float, n: float, lam: float,
           max_dof: float = GCV_MAX_DOF) -> float:
    """GCV at one λ from :func:`gcv_spectrum` (+inf beyond the degrees-of-freedom cap)."""
    s, q2 = spectrum
    denominator = _gcv_denominator(s, n, lam, max_dof)
    if denominator is None:
        return float("inf")
    rss = max(float(yy) - float(np.sum(q2 * (s + 2 * lam) / (s + lam) ** 2)), 0.0)
    return rss / n / denominator


def _gcv_denominator(s: np.ndarray, n: float, lam: float, max_dof: float) -> float | None:
    """GCV's (1 − tr H/n)² at λ, tr H = Σ s/(s + λ) (s: G's eigenvalues clamped at 0); None where no row is
    counted (n ≤ 0) or tr H exceeds ``max_dof``·n (GCV then rewards interpolation)."""
    dof = float(np.sum(s / (s + lam)))
    if n <= 0 or dof > max_dof * n:
        return None
    return (1.0 - dof / n) ** 2


def _gcv_values(spectrum, yy: float, n: float, lambdas, max_dof: float) -> np.ndarray:
    return np.array([gcv_at(spectrum, yy, n, lam, max_dof) for lam in np.asarray(lambdas, dtype=np.float64)])


#: golden-section steps that refine GCV's grid minimum in log λ: the bracket shrinks by 0.618 a step,
#: from two grid steps wide (a factor 4.6 on the 25-point grid) to a relative width below 1e-7.
GCV_REFINE_STEPS = 40


def gcv_minimum(G: np.ndarray, B: np.ndarray, yy: float, n: float, lambdas, max_dof: float = GCV_MAX_DOF,
                eig=None) -> tuple[float, np.ndarray]:
    """(λ*, curve): GCV minimised over a continuous λ, from the statistics alone.

    The grid ``lambdas`` (increasing) brackets the minimum: its argmin (ties and an all-infinite curve go
    to the larger λ), then golden-section search in log λ between the grid neighbours. λ* therefore does
    not depend on where the grid's points fall, only on its range: two learners with equal statistics
    and different grids agree on λ* (to the search's tolerance) when both grids bracket the same minimum.
    """
    lambdas = np.asarray(lambdas, dtype=np.float64)
    spectrum = gcv_spectrum(G, B, eig)
    curve = _gcv_values(spectrum, yy, n, lambdas, max_dof)
    i = len(curve) - 1 - int(np.argmin(curve[::-1]))
    if not np.isfinite(curve[i]):
        return float(lambdas[-1]), curve
    f = lambda t: gcv_at(spectrum, yy, n, float(np.exp(t)), max_dof)  # noqa: E731
    lo, hi = np.log(lambdas[max(i - 1, 0)]), np.log(lambdas[min(i + 1, len(lambdas) - 1)])
    best_t, best = np.log(lambdas[i]), curve[i]
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(GCV_REFINE_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    for t, v in ((a, fa), (b, fb)):
        if v < best:
            best_t, best = t, v
    return float(np.exp(best_t)), curve


def choose_lambda(G: np.ndarray, B: np.ndarray, phi: np.ndarray, Y: np.ndarray, lambdas,
                  weights: np.ndarray | None = None, eig=None) -> tuple[float, np.ndarray]:
    """(λ, mAP per λ): the λ of ``lambdas`` maximising leave-one-out mAP of rows ``phi`` with labels Y.

    mAP is the mean AP over the columns of Y with at least one positive (scikit-learn's
    non-interpolated AP). Without any positive, or with fewer than 3 rows, returns the middle λ and
    NaNs.
    """
    from mlcil.metrics import average_precision  # metrics never import the ridge core

    lambdas = np.asarray(lambdas, dtype=np.float64)
    Y = np.asarray(Y)
    if not Y.any() or len(Y) < 3:
        return float(lambdas[len(lambdas) // 2]), np.full(len(lambdas), np.nan)
    path = loo_path_scores(G, B, phi, Y, lambdas, weights, eig)
    maps = np.array([np.nanmean(average_precision(Y, scores)) for scores in path])
    return float(lambdas[int(np.nanargmax(maps))]), maps
