"""The feature map φ of the ridge core: input scaling, random ReLU features, optional raw input.

φ(x) = ReLU(z(x)ᵀR) ⊕ z(x)   (⊕ z(x) only with ``include_x``),   R d×M ~ N(0, 1/d), seeded,

where z is one of the input scalings (:data:`SCALINGS`):

- ``none``: z = x.
- ``standardize``: z = (x − μ) / σ per column (dense input only: centring densifies CSR).
- ``scale``: z = x / rms per column, rms = √(mean x²) (no centring: CSR stays CSR).
- ``l2``: z = x / ‖x‖₂ per row (nothing fitted; zero rows stay zero).

With ``clip`` = c, the per-column scalings (``standardize``, ``scale``) are winsorised: z ↦ min(max(z, −c), c),
in units of the column's fitted spread. Their statistics come from the first session; a later
session's rows can lie tens of spreads away (a column constant in the first session, a heavy tail),
and one such value then dominates ReLU(zᵀR). Sparse input stays sparse (only stored values change).

Wide sparse input (bag-of-words, 20–50k columns) never enters φ as dense columns unless asked:
zᵀR is a sparse × dense product (scipy, deterministic), rows are processed in chunks whose dense
width × rows stays under :data:`CHUNK_BYTES`, and ``include_x`` is chosen only for narrow input
(:data:`INCLUDE_X_MAX_FEATURES`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from mlcil.errors import MlcilError

SCALINGS = ("none", "standardize", "scale", "l2")
#: ``include_x='auto'`` adds the raw input to φ only up to this many input features. Measured with
#: ``benchmarks/include_x.py`` (README, "Wide inputs"): on the shared datasets the raw columns
#: add at most a few tenths of a point of last mAP beyond ~1000 features, while they make D = M + d
#: and the state (D² floats) grow quadratically.
INCLUDE_X_MAX_FEATURES = 1024
#: Bytes of dense float32 a chunk of rows may occupy (inputs or features), whatever d and M are.
CHUNK_BYTES = 64 << 20
#: Rows per chunk are also capped here (the cost per row is already amortised).
MAX_CHUNK_ROWS = 8192


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``'auto'``/None -> CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise MlcilError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r} ({exc})") from None


def rows_per_chunk(width: int, budget: int = CHUNK_BYTES) -> int:
    """Rows of a float32 block ``width`` wide that fit in ``budget`` bytes (at least 1)."""
    return int(max(1, min(MAX_CHUNK_ROWS, budget // (4 * max(int(width), 1)))))


def gaussian_projection(d: int, M: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """d×M float32 Gaussian matrix with entries N(0, 1/d), reproducible from ``seed`` on any device."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    R = torch.randn(int(d), int(M), generator=gen, dtype=torch.float32) / np.sqrt(d)
    return R.to(device)


def check_clip(clip) -> float | None:
    """``clip`` as a float (None stays None); a clear error unless it is a finite number > 0."""
    if clip is None:
        return None
    if isinstance(clip, bool) or not isinstance(clip, (int, float, np.integer, np.floating)) \
            or not np.isfinite(clip) or clip <= 0:
        raise MlcilError(f"clip: expected None or a finite number > 0 (in units of a column's spread), got {clip!r}")
    return float(clip)


def fit_scaling(X, scaling: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(shift, scale) per column for ``scaling`` fitted on X (float32, shape (d,)), or None where unused.

    Columns with zero spread get scale 1, so they map to 0 (standardize) or stay as they are.
    """
    if scaling not in SCALINGS:
        raise MlcilError(f"scaling: expected one of {', '.join(SCALINGS)}, got {scaling!r}")
    if scaling in ("none", "l2"):
        return None, None
    def blocks():  # float64 row blocks, bounded memory
        step = rows_per_chunk(X.shape[1])
        return (np.asarray(X[i:i + step], dtype=np.float64) for i in range(0, X.shape[0], step))

    n = max(X.shape[0], 1)
    if scaling == "standardize":
        if sp.issparse(X):
            raise MlcilError("scaling='standardize' centres columns, which densifies sparse input; "
                             "use scaling='scale' (no centring) or 'l2'")
        mean = sum((b.sum(axis=0) for b in blocks()), np.zeros(X.shape[1])) / n  # two passes, float64
        var = sum((((b - mean) ** 2).sum(axis=0) for b in blocks()), np.zeros(X.shape[1])) / n
        std = np.sqrt(var)
        return mean.astype(np.float32), np.where(std > 1e-12, std, 1.0).astype(np.float32)
    # scale: root mean square per column, no centring
    if sp.issparse(X):
        sq = np.asarray(X.multiply(X).sum(axis=0), dtype=np.float64).ravel()
    else:
        sq = sum(((b * b).sum(axis=0) for b in blocks()), np.zeros(X.shape[1]))
    rms = np.sqrt(sq / n)
    return None, np.where(rms > 1e-12, rms, 1.0).astype(np.float32)


class FeatureMap:
    """φ for fixed (R, scaling, include_x): a pure function of its arrays, on one torch device.

    Args:
        R: d×M float32 projection (see :func:`gaussian_projection`).
        scaling: one of :data:`SCALINGS`.
        shift, scale: per-column arrays from :func:`fit_scaling` (None where the scaling has none).
        include_x: append z(x) to the random features (D = M + d).
        clip: winsorise z to [−clip, clip] for the per-column scalings ('standardize', 'scale'); None = off.
    """

    def __init__(self, R: torch.Tensor, scaling: str = "none", shift: np.ndarray | None = None,
                 scale: np.ndarray | None = None, include_x: bool = False, clip: float | None = None) -> None:
        if scaling not in SCALINGS:
            raise MlcilError(f"scaling: expected one of {', '.join(SCALINGS)}, got {scaling!r}")
        self.clip = check_clip(clip)
        self.R = R
        self.scaling = scaling
        self.shift = None if shift is None else np.asarray(shift, dtype=np.float32)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float32)
        self.include_x = bool(include_x)
        self._R_np: np.ndarray | None = None

    @classmethod
    def fit(cls, X, M: int, seed: int = 0, scaling: str = "none", include_x: bool = False,
            device: str | torch.device = "cpu", clip: float | None = None) -> "FeatureMap":
        """A map for inputs like X: scaling fitted on X, R drawn from ``seed``."""
        shift, scale = fit_scaling(X, scaling)
        return cls(gaussian_projection(X.shape[1], M, seed, resolve_device(device)), scaling, shift, scale, include_x,
                   clip)

    @property
    def d(self) -> int:
        """Input features."""
        return int(self.R.shape[0])

    @property
    def M(self) -> int:
        """Random features."""
        return int(self.R.shape[1])

    @property
    def D(self) -> int:
        """Output features: M, plus d with ``include_x``."""
        return self.M + (self.d if self.include_x else 0)

    @property
    def device(self) -> torch.device:
        return self.R.device

    def chunk_rows(self) -> int:
        """Rows per chunk so that inputs and features of a chunk stay under :data:`CHUNK_BYTES`."""
        return rows_per_chunk(self.D + (self.d if self.include_x else 0))

    def _R_host(self) -> np.ndarray:
        if self._R_np is None:
            self._R_np = self.R.detach().cpu().numpy()
        return self._R_np

    @property
    def clips(self) -> bool:
        """Whether z is winsorised: a ``clip`` is set and the scaling is per column."""
        return self.clip is not None and self.scaling in ("standardize", "scale")

    def _scaled_sparse(self, X: sp.csr_matrix) -> sp.csr_matrix:
        X = sp.csr_matrix(X, dtype=np.float32)
        if self.scaling == "scale":
            Z = sp.csr_matrix(X @ sp.diags(1.0 / self.scale))
            if self.clips:
                np.clip(Z.data, -self.clip, self.clip, out=Z.data)
            return Z
        if self.scaling == "l2":
            norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel())
            return sp.diags((1.0 / np.where(norms > 0, norms, 1.0)).astype(np.float32)) @ X
        return X

    def _scaled_dense(self, Z: torch.Tensor) -> torch.Tensor:
        if self.scaling in ("standardize", "scale"):
            if self.scaling == "standardize":
                Z = Z - torch.as_tensor(self.shift, device=Z.device)
            Z = Z / torch.as_tensor(self.scale, device=Z.device)
            return Z.clamp(-self.clip, self.clip) if self.clips else Z
        if self.scaling == "l2":
            norms = torch.linalg.vector_norm(Z, dim=1, keepdim=True)
            return Z / torch.where(norms > 0, norms, torch.ones_like(norms))
        return Z

    def inputs(self, X) -> torch.Tensor | sp.csr_matrix:
        """z(X) for one block: a dense float32 tensor on the device, or CSR (scaled) for sparse X."""
        if sp.issparse(X):
            return self._scaled_sparse(X)
        return self._scaled_dense(torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.device))

    def __call__(self, X) -> torch.Tensor:
        """φ(X) for one block of rows (dense ndarray or CSR): n×D float32 tensor on the device.

        Callers keep blocks small (:meth:`chunks`): a block is densified to n×D.
        """
        Z = self.inputs(X)
        if sp.issparse(Z):
            proj = torch.from_numpy(np.asarray(Z @ self._R_host(), dtype=np.float32)).to(self.device)
            phi = torch.relu(proj)
            if self.include_x:
                phi = torch.cat([phi, torch.from_numpy(Z.toarray()).to(self.device)], dim=1)
            return phi
        phi = torch.relu(Z @ self.R)
        return torch.cat([phi, Z], dim=1) if self.include_x else phi

    def chunks(self, X, chunk: int | None = None) -> Iterator[tuple[slice, torch.Tensor]]:
        """Yield (row slice, φ of those rows) over X in bounded chunks."""
        step = int(chunk) if chunk else self.chunk_rows()
        for start in range(0, X.shape[0], step):
            rows = slice(start, min(start + step, X.shape[0]))
            yield rows, self(X[rows])

    def predict(self, X, W: torch.Tensor) -> np.ndarray:
        """Scores φ(X)W as an n×C float32 ndarray, chunk by chunk (W D×C float64)."""
        out = np.empty((X.shape[0], W.shape[1]), dtype=np.float32)
        for rows, phi in self.chunks(X):
            out[rows] = (phi.to(torch.float64) @ W).float().cpu().numpy()
        return out

    def to(self, device: str | torch.device) -> "FeatureMap":
        """The same map on another device."""
        return type(self)(self.R.to(resolve_device(device)), self.scaling, self.shift, self.scale, self.include_x,
                          self.clip)

    def same_as(self, other: "FeatureMap") -> bool:
        """True when both maps compute the same φ (same R, scaling, fitted arrays, include_x, clip)."""
        def eq(a, b):
            return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        return (self.scaling == other.scaling and self.include_x == other.include_x and self.clip == other.clip
                and eq(self.shift, other.shift)
                and eq(self.scale, other.scale) and self.R.shape == other.R.shape
                and torch.equal(self.R.cpu(), other.R.cpu()))
