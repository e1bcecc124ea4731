"""Random-feature ridge regression through sufficient statistics (DESIGN.md §3.1).

Pure functions on torch tensors (CPU or CUDA). Shapes: X n×d, Φ n×M, Y n×C,
G = ΦᵀΦ (M×M), B = ΦᵀY (M×C), W (M×C). Statistics and solves are float64.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``'auto'``/None -> CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def standardizer(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (mean, scale) for standardisation; sparse X is scaled, not centred.

    Constant features get scale 1 so they map to 0 instead of dividing by zero.
    """
    if sp.issparse(X):
        mean = np.zeros(X.shape[1], dtype=np.float64)
        sq = np.asarray(X.multiply(X).mean(axis=0)).ravel()
        scale = np.sqrt(sq)
    else:
        X64 = np.asarray(X, dtype=np.float64)
        mean, scale = X64.mean(axis=0), X64.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return mean.astype(np.float32), scale.astype(np.float32)


def gaussian_projection(d: int, M: int, seed: int, device: torch.device) -> torch.Tensor:
    """d×M float32 Gaussian matrix with entries N(0, 1/d), reproducible from ``seed`` on any device."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    R = torch.randn(d, M, generator=gen, dtype=torch.float32) / np.sqrt(d)
    return R.to(device)


def to_tensor(X, device: torch.device, mean=None, scale=None) -> torch.Tensor:
    """Dense float32 tensor of (X − mean) / scale; CSR input is densified here, per call."""
    if sp.issparse(X):
        X = X.toarray()
    T = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
    if mean is not None:
        T = (T - torch.as_tensor(mean, device=device)) / torch.as_tensor(scale, device=device)
    return T


def random_features(Z: torch.Tensor, R: torch.Tensor, include_x: bool = False) -> torch.Tensor:
    """φ(z) = ReLU(zᵀR), optionally concatenated with z. Z n×d -> n×(M [+ d])."""
    phi = torch.relu(Z @ R)
    return torch.cat([phi, Z], dim=1) if include_x else phi


def statistics(phi: torch.Tensor, Y: torch.Tensor, weights: torch.Tensor | None = None,
               precision: str = "float64", gram: bool = True):
    """G = Φᵀ diag(w) Φ and B = Φᵀ diag(w) Y, returned in float64. Φ n×M, Y n×C, w n.

    ``precision='float64'`` multiplies in float64; ``'float32'`` multiplies in float32
    (about twice as fast on CPU, much faster on GPU) and returns the products in float64,
    so that sums over chunks and the solve stay float64. ``gram=False`` skips G (None).
    """
    dtype = torch.float64 if precision == "float64" else torch.float32
    phi_ = phi.to(dtype)
    wphi = phi_ if weights is None else phi_ * weights.to(dtype)[:, None]
    G = (wphi.T @ phi_).to(torch.float64) if gram else None
    return G, (wphi.T @ Y.to(dtype)).to(torch.float64)


def lambda_grid(G: torch.Tensor, n: int = 13, low: float = -4.0, high: float = 2.0) -> np.ndarray:
    """λ values on a log grid scaled by the mean eigenvalue of G (trace / M)."""
    scale = float(torch.trace(G)) / G.shape[0]
    return max(scale, 1e-12) * np.logspace(low, high, n)


def ridge_factor(G: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(A, L): A = G + λI and its Cholesky factor L, or None when A is not positive definite
    (λ tiny, G singular)."""
    A = G.clone()
    A.diagonal().add_(lam)
    L, info = torch.linalg.cholesky_ex(A)
    return A, (L if int(info) == 0 else None)


def ridge_solve(G: torch.Tensor, B: torch.Tensor, lam: float) -> torch.Tensor:
    """W = (G + λI)⁻¹ B by Cholesky (float64)."""
    A, L = ridge_factor(G, lam)
    if L is None:  # not positive definite at this λ: fall back to lstsq
        return torch.linalg.lstsq(A, B).solution
    return torch.cholesky_solve(B, L)


def eigh(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition of a symmetric matrix; on CPU with one thread.

    Measured here (benchmarks/cost.py): MKL's threaded symmetric eigensolver gains nothing
    from a second core on a 2560×2560 problem (2.4 s vs 2.2 s) and slows down over tenfold
    (2.7 s → 37 s) when another process competes for the cores; one thread avoids that.
    """
    if G.device.type != "cpu":
        return torch.linalg.eigh(G)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(G)
    finally:
        torch.set_num_threads(threads)


def imbalance_weights(Y: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Per-example weights against class imbalance (L3A's weighting idea).

    w_i = mean over i's positive classes c of n_c^(−power), where n_c = positives of c;
    rows with no positive get the mean weight; normalised to mean 1. Y n×C -> n.
    """
    counts = np.maximum(Y.sum(axis=0), 1).astype(np.float64)
    per_class = counts ** (-power)
    npos = Y.sum(axis=1)
    w = (Y @ per_class) / np.maximum(npos, 1)
    w[npos == 0] = w[npos > 0].mean() if (npos > 0).any() else 1.0
    return w / w.mean()


def iter_features(X, R: torch.Tensor, mean, scale, include_x: bool, chunk: int = 4096):
    """Yield (row slice, Φ chunk) over X in chunks of ``chunk`` rows (bounded memory)."""
    for start in range(0, X.shape[0], chunk):
        rows = slice(start, min(start + chunk, X.shape[0]))
        yield rows, random_features(to_tensor(X[rows], R.device, mean, scale), R, include_x)


def accumulate(X, Y: np.ndarray, R: torch.Tensor, mean, scale, include_x: bool,
               weights: np.ndarray | None = None, chunk: int = 4096, precision: str = "float64",
               gram: bool = True):
    """Sufficient statistics (G, B) of rows X, labels Y (float64), chunk by chunk.

    ``gram=False`` skips G (returned as None) when only B = Σ w φ yᵀ is wanted.
    """
    M = R.shape[1] + (R.shape[0] if include_x else 0)
    G = torch.zeros(M, M, dtype=torch.float64, device=R.device) if gram else None
    B = torch.zeros(M, Y.shape[1], dtype=torch.float64, device=R.device)
    for rows, phi in iter_features(X, R, mean, scale, include_x, chunk):
        y = torch.as_tensor(np.asarray(Y[rows], dtype=np.float32), device=R.device)
        w = None if weights is None else torch.as_tensor(weights[rows], device=R.device)
        g, b = statistics(phi, y, w, precision, gram)
        if gram:
            G += g
        B += b
    return G, B


def predict(X, R: torch.Tensor, mean, scale, include_x: bool, W: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """Scores Φ(X) W as an n×C float32 ndarray, chunk by chunk."""
    out = np.empty((X.shape[0], W.shape[1]), dtype=np.float32)
    for rows, phi in iter_features(X, R, mean, scale, include_x, chunk):
        out[rows] = (phi.to(torch.float64) @ W).float().cpu().numpy()
    return out


def loo_path_scores(G: torch.Tensor, B: torch.Tensor, phi: torch.Tensor, Y: torch.Tensor, lambdas,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
    """Leave-one-out scores of rows ``phi`` (already inside G and B) for every λ, in closed form.

    With A = G + λI, ŷ = φᵀA⁻¹B and leverage h = w φᵀA⁻¹φ, the prediction of the fit without
    the row is (ŷ − h·y) / (1 − h) (Sherman–Morrison), so one eigendecomposition G = V diag(s) Vᵀ
    gives every λ: A⁻¹ = V diag(1/(s+λ)) Vᵀ. phi m×M, Y m×C, w m. Returns len(lambdas)×m×C float64.
    """
    s, V = eigh(G)
    s = s.clamp_min(0)
    P = phi.to(torch.float64) @ V
    Q = V.T @ B
    P2 = P * P
    Y64 = Y.to(torch.float64)
    w = None if weights is None else weights.to(torch.float64)
    out = []
    for lam in np.asarray(lambdas, dtype=np.float64):
        d = 1.0 / (s + lam)
        yhat = (P * d) @ Q
        h = P2 @ d
        if w is not None:
            h = h * w
        out.append(loo_correct(yhat, h, Y64))
    return torch.stack(out)


def loo_correct(yhat: torch.Tensor, h: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """(ŷ − h·y) / (1 − h), with 1 − h kept away from 0. yhat, Y m×C; h m."""
    return (yhat - h[:, None] * Y) / (1.0 - h).clamp_min(1e-6)[:, None]


def leverage(L: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """h_i = φ_iᵀ A⁻¹ φ_i for the rows of ``phi`` (m×M), given the Cholesky factor L of A (A = LLᵀ)."""
    Z = torch.linalg.solve_triangular(L, phi.to(torch.float64).T, upper=False)
    return (Z * Z).sum(dim=0)


def loo_scores(L: torch.Tensor, W: torch.Tensor, phi: torch.Tensor, Y: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Leave-one-out scores of rows ``phi`` under a fixed system A W = B (A includes λI),
    given the Cholesky factor L of A."""
    h = leverage(L, phi)
    if weights is not None:
        h = h * weights.to(torch.float64)
    return loo_correct(phi.to(torch.float64) @ W, h, Y.to(torch.float64))
