"""Data for the engine tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mlcil.protocols import Session


def make_sessions(n: int = 360, d: int = 10, seed: int = 0, sparse: bool = False) -> list[Session]:
    """Two sessions of a learnable multi-label problem (3 + 2 classes), different rows, dense or CSR."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n, d)).astype(np.float32)
    if sparse:  # non-negative, mostly zero: a bag-of-words shape
        X = np.where(rng.random(X.shape) < 0.7, 0.0, np.abs(X)).astype(np.float32)
    A = rng.normal(size=(d, 5))
    Y = (X @ A / np.sqrt(d) * 3 + rng.normal(scale=0.3, size=(2 * n, 5)) > 0.8).astype(np.uint8)
    Xs = sp.csr_matrix(X) if sparse else X
    return [Session(Xs[:n], Y[:n, :3], np.array([0, 1, 2]), np.arange(n), t=0),
            Session(Xs[n:], Y[n:, 3:], np.array([3, 4]), np.arange(n, 2 * n), t=1)]
