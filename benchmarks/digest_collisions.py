"""How often do the label memory's 64-bit row digests collide? (issue 12: "measure the probability at 10⁹ examples")

A collision at 64 bits is far too rare to observe, so the digest is checked where collisions are frequent: its
lowest b bits (b = 16..32) on hundreds of thousands of distinct rows — real rows of the shared datasets, the same rows
changed by one float32 ulp in one column (near-duplicates), and sparse binary rows (bag-of-words-like: few ones among
many columns, the most structured input). If the digest behaves as a uniformly random function, the number of
colliding pairs among n distinct rows is n(n − 1)/2 / 2^b at every b; the table compares counted with expected. The
full 64 bits are also checked for zero collisions, and the birthday bound gives the probability of at least one
collision among 10⁹ distinct examples: 1 − exp(−n(n − 1)/2⁶⁵).

    MLCIL_DATA=../shared/data python benchmarks/digest_collisions.py
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp

from mlcil import ridge
from mlcil.data import load_dataset

DATASETS = ("scene", "corel5k", "yeast", "emotions", "birds", "tmc2007-500", "enron", "medical")


def distinct_digests(blocks: list) -> np.ndarray:
    """Digests of the distinct rows of all blocks. A digest covers a row's nonzero entries, so rows of different
    widths are compared zero-padded to the widest: the rows are deduplicated by their padded float32 bytes."""
    width = max(X.shape[1] for X in blocks)
    X = np.vstack([np.pad(np.asarray(B.toarray() if sp.issparse(B) else B, dtype=np.float32),
                          ((0, 0), (0, width - B.shape[1]))) for B in blocks]) + np.float32(0.0)  # −0.0 -> 0.0
    _, first = np.unique(np.ascontiguousarray(X).view(np.dtype((np.void, 4 * width))), return_index=True)
    return ridge.row_digests(X[np.sort(first)])


def colliding_pairs(values: np.ndarray) -> int:
    _, counts = np.unique(values, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sparse-rows", type=int, default=300_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    real, near = [], []
    for name in DATASETS:
        X = load_dataset(name).X
        X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32)
        real.append(X)
        Y = X.copy()
        col = rng.integers(0, X.shape[1], size=X.shape[0])
        Y[np.arange(X.shape[0]), col] = np.nextafter(Y[np.arange(X.shape[0]), col], np.float32(np.inf))
        near.append(Y)
    # sparse binary rows: 5 ones among 2000 columns (distinct by construction after dedup)
    n_sp, width = args.sparse_rows, 2000
    cols = np.sort(rng.integers(0, width, size=(n_sp, 5)), axis=1)
    cols = np.unique(cols[(np.diff(cols, axis=1) > 0).all(axis=1)], axis=0)  # 5 distinct columns, distinct rows
    n_sp = len(cols)
    S = sp.csr_matrix((np.ones(n_sp * 5, np.float32), cols.ravel(), np.arange(0, n_sp * 5 + 1, 5)), shape=(n_sp, width))
    digests = {"shared datasets' rows": distinct_digests(real),
               "+ the same rows one ulp away": distinct_digests(real + near),
               "sparse binary rows (5 of 2000)": ridge.row_digests(S)}
    print("| rows | n distinct | bits | colliding pairs counted | expected n(n−1)/2/2^b | ratio |")
    print("|---|---|---|---|---|---|")
    for label, d in digests.items():
        n = len(d)
        for bits in (16, 20, 24, 28, 32, 64):
            low = d if bits == 64 else d & np.uint64((1 << bits) - 1)
            counted = colliding_pairs(low)
            expected = n * (n - 1) / 2 / 2.0 ** bits
            ratio = f"{counted / expected:.2f}" if expected >= 1 else "–"
            print(f"| {label} | {n:,} | {bits} | {counted:,} | {expected:,.3g} | {ratio} |")
    for n in (1e6, 1e8, 1e9, 1e10):
        print(f"P(at least one 64-bit collision among {n:.0e} distinct examples) = {ridge.collision_probability(n):.3g}")


if __name__ == "__main__":
    main()
