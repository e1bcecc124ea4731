"""64-bit content digests of input rows: how a label memory recognises an example it has seen.

The digest of a row x (d floats) is

    digest(x) = mix(K + Σ_{j: x_j ≠ 0} mix((j << 32) | bits(x_j)))   (mod 2⁶⁴)

where bits(v) is the IEEE float32 bit pattern of v (−0.0 read as +0.0), j the column, K a fixed
constant and mix the SplitMix64 finaliser (a bijection of 64-bit words with full avalanche). It
depends only on the row's float32 values: a dense row and the same row in CSR (stored zeros or
not, indices in any order) get the same digest, in any process, on any CPU (integer arithmetic).
Two different rows collide with probability about 2⁻⁶⁴ when mix behaves as a random function;
``benchmarks/digest_collisions.py`` checks that on truncated digests, where collisions are
frequent enough to count, against the birthday formula :func:`collision_probability`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mlcil.errors import MlcilError

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_SEED = np.uint64(0x9E3779B97F4A7C15)
#: bytes of uint64 work space per chunk of a dense input
_CHUNK_BYTES = 32 << 20


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser applied elementwise to a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _pair_words(columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.uint32)  # −0.0 + 0.0 = +0.0
    return mix64((columns.astype(np.uint64) << np.uint64(32)) | bits.astype(np.uint64))


def row_digests(X) -> np.ndarray:
    """(n,) uint64 digests of the rows of X (n×d, dense or CSR; values read as float32).

    Equal rows get equal digests whatever their storage; rows that differ in any value or
    position get different digests except with probability ≈ 2⁻⁶⁴ per pair.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32, copy=True)
        X.sum_duplicates()
        X.eliminate_zeros()
        n = X.shape[0]
        rows = np.repeat(np.arange(n), np.diff(X.indptr))
        sums = np.zeros(n, dtype=np.uint64)
        np.add.at(sums, rows, _pair_words(X.indices, X.data))
        return mix64(sums + _SEED)
    X = np.asarray(X)
    if X.ndim != 2:
        raise MlcilError(f"row_digests: X must be n×d, got shape {X.shape}")
    n, d = X.shape
    out = np.empty(n, dtype=np.uint64)
    step = max(1, _CHUNK_BYTES // (8 * max(d, 1)))
    columns = np.arange(d)
    for start in range(0, n, step):
        block = np.asarray(X[start:start + step], dtype=np.float32)
        words = _pair_words(np.broadcast_to(columns, block.shape), block)
        words[block == 0] = 0  # zeros contribute nothing, as in CSR
        out[start:start + step] = mix64(words.sum(axis=1, dtype=np.uint64) + _SEED)
    return out


def id_digests(ids) -> np.ndarray:
    """(n,) uint64 digests of caller-given integer ids (e.g. dataset row ids), mixed so that any
    contiguous block of ids spreads over the whole 64-bit range (sharding by ``digest % k`` stays even)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise MlcilError(f"ids: expected a 1-d array of integers, got dtype {ids.dtype} and shape {ids.shape}")
    return mix64(ids.astype(np.int64).view(np.uint64) ^ _SEED)


def occurrence(keys: np.ndarray) -> np.ndarray:
    """(n,) int64: how many earlier entries of ``keys`` equal each entry (0 for the first of each value)."""
    keys = np.asarray(keys)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    start = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(keys)), 0))
    out = np.empty(len(keys), dtype=np.int64)
    out[order] = np.arange(len(keys)) - group_start
    return out


def collision_probability(n: float, bits: int = 64) -> float:
    """Probability that n distinct items get at least two equal ``bits``-bit digests, for uniformly
    random digests (birthday bound): 1 − exp(−n(n − 1) / 2^(bits + 1))."""
    return float(-np.expm1(-float(n) * (float(n) - 1.0) / 2.0 ** (bits + 1)))
