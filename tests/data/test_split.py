"""stratified_split: seeded, stratified per label, in mlcil.data (re-exported by mlcil.protocols)."""

import numpy as np
import pytest

from mlcil.data import stratified_split
from mlcil.errors import MlcilError


def _labels(n: int = 600, L: int = 6, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < np.linspace(0.05, 0.4, L)).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


def test_mask_size_share_per_label_and_seed():
    Y = _labels()
    test = stratified_split(Y, 0.3, seed=7)
    assert test.dtype == bool and test.shape == (600,)
    assert abs(int(test.sum()) - 180) <= 6  # iterative stratification trades exact size for label shares
    share = Y[test].sum(0) / Y.sum(0)
    assert np.all(np.abs(share - 0.3) < 0.05), share  # every label, rare ones included, about 30 % in test
    np.testing.assert_array_equal(test, stratified_split(Y, 0.3, seed=7))
    assert not np.array_equal(test, stratified_split(Y, 0.3, seed=8))


def test_better_stratified_than_a_random_split():
    """Worst label's deviation from the test share: iterative stratification beats a seeded random mask."""
    Y = _labels(n=300, L=8, seed=3)
    test = stratified_split(Y, 0.25, seed=0)
    random = np.zeros(300, bool)
    random[np.random.default_rng(0).permutation(300)[: int(test.sum())]] = True
    dev = lambda mask: np.max(np.abs(Y[mask].sum(0) / Y.sum(0) - 0.25))  # noqa: E731
    assert dev(test) < dev(random)


@pytest.mark.parametrize("size", [0.0, 1.0, -0.1, 1.5])
def test_bad_test_size(size):
    with pytest.raises(MlcilError, match=r"^test_size: expected a fraction in \(0, 1\)"):
        stratified_split(_labels(), size, 0)


def test_bad_labels_shape():
    with pytest.raises(MlcilError, match=r"^Y: expected an n×L label matrix, got shape \(5,\)"):
        stratified_split(np.ones(5), 0.3, 0)


def test_protocols_reexport_is_the_same_function():
    from mlcil import protocols
    from mlcil.protocols import protocol

    assert protocols.stratified_split is stratified_split and protocol.stratified_split is stratified_split
