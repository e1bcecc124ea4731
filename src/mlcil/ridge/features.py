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

Everything is NumPy/SciPy on the CPU by default (``device='cpu'``). With ``device='cuda'`` (or
``'auto'`` on a machine with a GPU) torch is imported when φ is first computed and the products zᵀR
(and, in :mod:`mlcil.ridge.stats`, the Gram products) run on the GPU; results come back as NumPy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

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
#: ``scaling='l2'``: a row whose largest |component| lies outside this range (and is not 0) is first
#: multiplied by 2⁻ᵉ, e the binary exponent of that component (exact; x/‖x‖ is unchanged), so that its
#: squared norm neither overflows (1e19² in float32) nor underflows (1e-25²).
L2_SAFE_RANGE = (2.0 ** -40, 2.0 ** 40)

_DEVICE_NAME = re.compile(r"(cpu|cuda(:[0-9]+)?)")


def _cuda_available() -> bool:
    try:
        import torch  # the GPU path only: never imported for device='cpu'
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: Any = "cpu") -> str:
    """The device name φ and the Gram products run on: 'cpu' (NumPy), 'cuda' or 'cuda:N' (torch).

    ``'auto'``/None -> 'cuda' when torch is installed and sees a GPU, else 'cpu' (only these import
    torch, to ask). A ``torch.device`` is accepted by its name.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return "cuda" if _cuda_available() else "cpu"
    name = device if isinstance(device, str) else str(device) if type(device).__name__ == "device" else None
    if name is None or not _DEVICE_NAME.fullmatch(name):
        raise MlcilError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    return name


def _torch():
    """torch, for the GPU path; a clear error when it is not installed."""
    try:
        import torch
    except ImportError:
        raise MlcilError("device 'cuda' needs torch: pip install torch (or use device='cpu')") from None
    return torch


def rows_per_chunk(width: int, budget: int = CHUNK_BYTES) -> int:
    """Rows of a float32 block ``width`` wide that fit in ``budget`` bytes (at least 1)."""
    return int(max(1, min(MAX_CHUNK_ROWS, budget // (4 * max(int(width), 1)))))


# ---- torch's CPU normal sampler, in NumPy ----------------------------------------------------------
# R was drawn with torch.randn(d, M, generator=torch.Generator().manual_seed(seed)) / √d; these functions
# draw the same numbers without torch (tested against torch to 1e-6 relative). torch's generator is the
# 32-bit Mersenne twister seeded like NumPy's legacy RandomState (init_genrand of the seed's low 32 bits),
# so both give the same raw stream. A float32 uniform is the low 24 bits of one draw × 2⁻²⁴; a double
# uniform the low 53 bits of two draws (the first as the high word) × 2⁻⁵³.
_NORMAL_BLOCKS = 1 << 16  # Box–Muller blocks per step of :func:`_torch_randn` (bounded temporaries)


def _uniform24(rs: np.random.RandomState, n: int) -> np.ndarray:
    """n float32 uniforms in [0, 1) as torch's CPU generator makes them for float32."""
    raw = rs.randint(0, 2 ** 32, size=n, dtype=np.uint32)
    return (raw & np.uint32(0xFFFFFF)).astype(np.float32) * np.float32(2.0 ** -24)


def _box_muller16(U: np.ndarray) -> np.ndarray:
    """k×16 float32 uniforms -> k×16 standard normals, torch's ``normal_fill_16`` (its AVX2 form).

    For j < 8: u1 = 1 − U[j], u2 = U[j+8], r = √(−2 ln u1), θ = 2π·u2 in float32,
    out[j] = r cos θ, out[j+8] = r sin θ. ln, cos and sin are evaluated in float64 and rounded, so the
    result does not depend on the CPU (torch's vectorised float32 versions differ by an ulp or two).
    """
    f32 = np.float32
    log = np.log((f32(1.0) - U[:, :8]).astype(np.float64)).astype(f32)
    r = np.sqrt(f32(-2.0) * log)
    theta = (f32(2.0 * np.pi) * U[:, 8:]).astype(np.float64)
    return np.concatenate([r * np.cos(theta).astype(f32), r * np.sin(theta).astype(f32)], axis=1)


def _serial_normals(rs: np.random.RandomState, n: int) -> np.ndarray:
    """torch's path for fewer than 16 values: Box–Muller on double uniforms, the sine kept for the next value."""
    out = np.empty(n, dtype=np.float64)
    cached = None
    for i in range(n):
        if cached is not None:
            out[i], cached = cached, None
            continue
        raw = rs.randint(0, 2 ** 32, size=4, dtype=np.uint32).astype(np.uint64)
        u1, u2 = (((raw[0::2] << np.uint64(32)) | raw[1::2]) & np.uint64((1 << 53) - 1)) * 2.0 ** -53
        r = np.sqrt(-2.0 * np.log1p(-u2))
        theta = 2.0 * np.pi * u1
        out[i], cached = r * np.cos(theta), r * np.sin(theta)
    return out.astype(np.float32)


def _torch_randn(n: int, seed: int) -> np.ndarray:
    """n float32 standard normals equal to ``torch.randn(n, generator=torch.Generator().manual_seed(seed))``.

    torch (a contiguous float32 tensor of ≥ 16 values) fills n uniforms, turns each block of 16 into
    normals, and when n is not a multiple of 16 recomputes the last 16 values from 16 fresh uniforms.
    """
    rs = np.random.RandomState(int(seed) & 0xFFFFFFFF)
    if n < 16:
        return _serial_normals(rs, n)
    out = np.empty(n, dtype=np.float32)
    k = n // 16
    for a in range(0, k, _NORMAL_BLOCKS):
        b = min(a + _NORMAL_BLOCKS, k)
        out[16 * a:16 * b] = _box_muller16(_uniform24(rs, 16 * (b - a)).reshape(-1, 16)).ravel()
    if n % 16:
        rs.randint(0, 2 ** 32, size=n - 16 * k, dtype=np.uint32)  # the tail's first uniforms, overwritten
        out[n - 16:] = _box_muller16(_uniform24(rs, 16).reshape(1, 16)).ravel()
    return out


def gaussian_projection(d: int, M: int, seed: int, device: Any = None) -> np.ndarray:
    """d×M float32 Gaussian matrix with entries N(0, 1/d), reproducible from ``seed`` on any machine.

    The values are those of ``torch.randn(d, M, generator=torch.Generator().manual_seed(seed)) / √d``
    on an AVX2 CPU (to float32 rounding of ln, cos and sin), computed without torch. ``device`` is
    accepted for compatibility and ignored: R lives on the host (a GPU map copies it once).
    """
    d, M = int(d), int(M)
    if d < 0 or M < 0:
        raise MlcilError(f"gaussian_projection: expected d >= 0 and M >= 0, got d = {d}, M = {M}")
    R = _torch_randn(d * M, seed).reshape(d, M)
    if d:
        R /= np.float32(np.sqrt(d))
    return R


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


def _l2_exponents(top: np.ndarray) -> np.ndarray:
    """Per row: e with 2⁻ᵉ·max|x| in [0.5, 1) where max|x| (``top``) lies outside :data:`L2_SAFE_RANGE`
    and is not 0; 0 elsewhere (those rows stay as they are)."""
    lo, hi = L2_SAFE_RANGE
    out = (top > hi) | ((top < lo) & (top > 0))
    _, e = np.frexp(np.where(out, top, 1.0))
    return np.where(out, e, 0)


class FeatureMap:
    """φ for fixed (R, scaling, include_x): a pure function of its arrays.

    Args:
        R: d×M float32 projection (see :func:`gaussian_projection`).
        scaling: one of :data:`SCALINGS`.
        shift, scale: per-column arrays (d,) from :func:`fit_scaling` (None where the scaling has none).
        include_x: append z(x) to the random features (D = M + d).
        clip: winsorise z to [−clip, clip] for the per-column scalings ('standardize', 'scale'); None = off.
        device: where zᵀR (and the statistics' Gram products) run: 'cpu' (NumPy), 'cuda'/'cuda:N'
            (torch, imported on first use) or 'auto' (see :func:`resolve_device`). φ is returned as
            NumPy float32 on every device.
    """

    def __init__(self, R: np.ndarray, scaling: str = "none", shift: np.ndarray | None = None,
                 scale: np.ndarray | None = None, include_x: bool = False, clip: float | None = None,
                 device: Any = "cpu") -> None:
        if scaling not in SCALINGS:
            raise MlcilError(f"scaling: expected one of {', '.join(SCALINGS)}, got {scaling!r}")
        self.clip = check_clip(clip)
        R = np.asarray(R, dtype=np.float32)
        if R.ndim != 2:
            raise MlcilError(f"R: expected a d×M float32 array, got shape {R.shape}")
        self.R = np.ascontiguousarray(R)
        self.scaling = scaling
        self.shift = None if shift is None else np.asarray(shift, dtype=np.float32)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float32)
        for name, value in (("shift", self.shift), ("scale", self.scale)):
            if value is not None and value.shape != (self.d,):
                raise MlcilError(f"{name}: expected shape ({self.d},) (one per input column), got {value.shape}")
        if scaling == "standardize" and (self.shift is None or self.scale is None):
            raise MlcilError("scaling='standardize' needs shift and scale (see fit_scaling)")
        if scaling == "scale" and self.scale is None:
            raise MlcilError("scaling='scale' needs scale (see fit_scaling)")
        self.include_x = bool(include_x)
        self.device = resolve_device(device)
        self._R_device = None  # (device name, torch copy of R there): the GPU path only

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_R_device"] = None  # a device copy never travels
        return state

    @classmethod
    def fit(cls, X, M: int, seed: int = 0, scaling: str = "none", include_x: bool = False,
            device: Any = "cpu", clip: float | None = None) -> "FeatureMap":
        """A map for inputs like X (n×d, dense or CSR): scaling fitted on X, R drawn from ``seed``."""
        shift, scale = fit_scaling(X, scaling)
        return cls(gaussian_projection(X.shape[1], M, seed), scaling, shift, scale, include_x, clip, device)

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

    def chunk_rows(self) -> int:
        """Rows per chunk so that inputs and features of a chunk stay under :data:`CHUNK_BYTES`."""
        return rows_per_chunk(self.D + (self.d if self.include_x else 0))

    @property
    def clips(self) -> bool:
        """Whether z is winsorised: a ``clip`` is set and the scaling is per column."""
        return self.clip is not None and self.scaling in ("standardize", "scale")

    def _check_width(self, X) -> None:
        if len(X.shape) != 2 or X.shape[1] != self.d:
            raise MlcilError(f"X: expected n×{self.d} rows (dense or CSR), got shape {tuple(X.shape)}")

    def _scaled_sparse(self, X) -> sp.csr_matrix:
        if self.scaling == "standardize":
            raise MlcilError("X: a map with scaling='standardize' centres columns, which densifies sparse input; "
                             "pass dense rows, or fit the map with scaling='scale' or 'l2'")
        X = sp.csr_matrix(X, dtype=np.float32)
        if not X.has_canonical_format:  # duplicates summed on a copy, never on the caller's matrix
            X = X.copy()
            X.sum_duplicates()
        if self.scaling == "scale":
            Z = sp.csr_matrix(X @ sp.diags(1.0 / self.scale))
            if self.clips:
                np.clip(Z.data, -self.clip, self.clip, out=Z.data)
            return Z
        if self.scaling == "l2":
            counts = np.diff(X.indptr)
            top = np.zeros(X.shape[0], dtype=np.float32)
            nz = counts > 0
            if X.nnz:
                top[nz] = np.maximum.reduceat(np.abs(X.data), X.indptr[:-1][nz])
            data = np.ldexp(X.data, -np.repeat(_l2_exponents(top), counts))  # exact; 2⁰ for rows in range
            norms = np.sqrt(np.add.reduceat(data.astype(np.float64) ** 2, X.indptr[:-1][nz])) if X.nnz else []
            row_norm = np.ones(X.shape[0])
            row_norm[nz] = norms
            data = (data / np.repeat(np.where(row_norm > 0, row_norm, 1.0), counts)).astype(np.float32)
            return sp.csr_matrix((data, X.indices.copy(), X.indptr.copy()), shape=X.shape)
        return X

    def _scaled_dense(self, X) -> np.ndarray:
        Z = np.ascontiguousarray(X, dtype=np.float32)
        if self.scaling in ("standardize", "scale"):
            Z = Z - self.shift if self.scaling == "standardize" else Z / self.scale  # a new array either way
            if self.scaling == "standardize":
                Z /= self.scale
            if self.clips:
                np.clip(Z, -self.clip, self.clip, out=Z)
            return Z
        if self.scaling == "l2":
            top = np.abs(Z).max(axis=1) if Z.size else np.zeros(Z.shape[0], dtype=np.float32)
            e = _l2_exponents(top)
            if e.any():  # rare: bring those rows into range by a power of two (exact)
                Z = np.ldexp(Z, -e[:, None]).astype(np.float32)
            norms = np.sqrt(np.einsum("ij,ij->i", Z, Z, dtype=np.float64))
            return (Z / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
        return Z

    def inputs(self, X) -> np.ndarray | sp.csr_matrix:
        """z(X) for one block: a dense float32 n×d array, or CSR (scaled) for sparse X."""
        if sp.issparse(X):
            self._check_width(X)
            return self._scaled_sparse(X)
        X = np.asarray(X)
        self._check_width(X)
        return self._scaled_dense(X)

    def __call__(self, X) -> np.ndarray:
        """φ(X) for one block of rows (dense ndarray or CSR): n×D float32 ndarray.

        Callers keep blocks small (:meth:`chunks`): a block is densified to n×D.
        """
        if self.device != "cpu":
            return self.on_device(X).cpu().numpy()
        Z = self.inputs(X)
        P = np.asarray(Z @ self.R, dtype=np.float32)  # dense: sgemm; CSR: scipy's sparse × dense
        np.maximum(P, 0, out=P)
        if not self.include_x:
            return P
        return np.concatenate([P, Z.toarray() if sp.issparse(Z) else Z], axis=1)

    def on_device(self, X, device: Any = None):
        """φ(X) as an n×D float32 torch tensor on ``device`` (default: the map's device): the GPU path.

        Imports torch. The scaling runs in NumPy, zᵀR on the device (CSR input: on the host, by scipy).
        """
        torch = _torch()
        name = resolve_device(self.device if device is None else device)
        dev = torch.device(name)
        if self._R_device is None or self._R_device[0] != name:  # R copied to a device once
            self._R_device = (name, torch.from_numpy(self.R).to(dev))
        R_dev = self._R_device[1]
        Z = self.inputs(X)
        if sp.issparse(Z):
            phi = torch.from_numpy(np.maximum(np.asarray(Z @ self.R, dtype=np.float32), 0)).to(dev)
            return torch.cat([phi, torch.from_numpy(Z.toarray()).to(dev)], dim=1) if self.include_x else phi
        Zt = torch.from_numpy(Z if Z.flags.writeable else Z.copy()).to(dev)  # torch wants writable memory
        phi = torch.relu(Zt @ R_dev)
        return torch.cat([phi, Zt], dim=1) if self.include_x else phi

    def chunks(self, X, chunk: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield (row slice, φ of those rows) over X in bounded chunks."""
        step = int(chunk) if chunk else self.chunk_rows()
        for start in range(0, X.shape[0], step):
            rows = slice(start, min(start + step, X.shape[0]))
            yield rows, self(X[rows])

    def predict(self, X, W: np.ndarray) -> np.ndarray:
        """Scores φ(X)W as an n×C float32 ndarray, chunk by chunk (W D×C, multiplied in float64)."""
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] != self.D:
            raise MlcilError(f"W: expected shape (D, C) with D = {self.D}, got {W.shape}")
        out = np.empty((X.shape[0], W.shape[1]), dtype=np.float32)
        if self.device != "cpu":
            torch = _torch()
            W_dev = torch.from_numpy(W).to(self.device)
            step = self.chunk_rows()
            for start in range(0, X.shape[0], step):
                rows = slice(start, min(start + step, X.shape[0]))
                out[rows] = (self.on_device(X[rows]).to(torch.float64) @ W_dev).float().cpu().numpy()
            return out
        for rows, phi in self.chunks(X):
            out[rows] = phi.astype(np.float64) @ W
        return out

    def to(self, device: Any) -> "FeatureMap":
        """The same map computing on another device."""
        return type(self)(self.R, self.scaling, self.shift, self.scale, self.include_x, self.clip, device)

    def same_as(self, other: "FeatureMap") -> bool:
        """True when both maps compute the same φ (same R, scaling, fitted arrays, include_x, clip)."""
        def eq(a, b):
            return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        return (self.scaling == other.scaling and self.include_x == other.include_x and self.clip == other.clip
                and eq(self.shift, other.shift) and eq(self.scale, other.scale)
                and self.R.shape == other.R.shape and np.array_equal(self.R, other.R))
