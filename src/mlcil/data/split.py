"""Seeded train/test splits of multi-label data (for datasets without an official split)."""

from __future__ import annotations

import numpy as np

from mlcil.errors import MlcilError


def stratified_split(Y: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """Seeded multi-label stratified train/test split (iterative stratification).

    Args:
        Y: n×L binary labels.
        test_size: test fraction, in (0, 1).
        seed: seeds the split.
    Returns:
        (n,) bool mask of the test rows. Uses the maintained ``iterative-stratification``
        package (Sechidis et al. 2011; Szymański & Kajdanowicz 2017).
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    if not 0.0 < test_size < 1.0:
        raise MlcilError(f"test_size: expected a fraction in (0, 1), got {test_size}")
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise MlcilError(f"Y: expected an n×L label matrix, got shape {Y.shape}")
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    _, test = next(splitter.split(np.zeros((len(Y), 1)), Y))
    mask = np.zeros(len(Y), dtype=bool)
    mask[test] = True
    return mask
