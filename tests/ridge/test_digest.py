"""Row digests against a pure-Python re-computation; storage independence; occurrence; birthday bound."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil import ridge
from mlcil.errors import MlcilError

MASK = (1 << 64) - 1


def mix_py(x: int) -> int:
    x &= MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def digest_py(row) -> int:
    """The documented formula, one Python integer at a time."""
    total = 0x9E3779B97F4A7C15
    for j, v in enumerate(np.asarray(row, dtype=np.float32)):
        if v != 0:
            bits = int(np.float32(v).view(np.uint32))
            total = (total + mix_py((j << 32) | bits)) & MASK
    return mix_py(total)


def test_matches_python_reference_dense_and_csr():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 7)).astype(np.float32)
    X[rng.random(X.shape) < 0.4] = 0
    expected = [digest_py(r) for r in X]
    assert ridge.row_digests(X).tolist() == expected
    assert ridge.row_digests(sp.csr_matrix(X)).tolist() == expected
    assert ridge.row_digests(X.astype(np.float64)).tolist() == expected  # values are read as float32


def test_storage_does_not_matter():
    X = np.array([[0.0, 1.5, 0.0, -2.0], [0.0, -0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    # the same rows with an explicit stored zero, unsorted indices and a duplicate entry that sums to the value
    data = np.array([-2.0, 0.0, 1.0, 0.5, 0.0, 3.0], dtype=np.float32)
    indices = np.array([3, 0, 1, 1, 2, 0])
    indptr = np.array([0, 4, 5, 6])
    csr = sp.csr_matrix((data, indices, indptr), shape=(3, 4))
    np.testing.assert_array_equal(ridge.row_digests(csr), ridge.row_digests(X))
    zero = np.zeros((1, 4), dtype=np.float32)
    assert ridge.row_digests(X[1:2])[0] == ridge.row_digests(zero)[0]  # −0.0 is 0.0


def test_any_change_changes_the_digest():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 50)).astype(np.float32)
    variants = [x.copy() for _ in range(4)]
    variants[0][0, 3] = np.nextafter(x[0, 3], np.float32(np.inf))  # one ulp
    variants[1][0, [3, 4]] = x[0, [4, 3]]                              # two values swapped
    variants[2][0, 7] = 0
    variants[3] = np.hstack([x[:, :-1], np.zeros((1, 1), np.float32)])
    digests = {int(ridge.row_digests(v)[0]) for v in [x] + variants}
    assert len(digests) == 5


def test_chunked_dense_equals_one_block(monkeypatch):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 9)).astype(np.float32)
    whole = ridge.row_digests(X)
    monkeypatch.setattr("mlcil.ridge.digest._CHUNK_BYTES", 8 * 9 * 7)  # 7 rows per chunk
    np.testing.assert_array_equal(ridge.row_digests(X), whole)


def test_id_digests_and_bad_ids():
    d = ridge.id_digests(np.arange(1000))
    assert len(np.unique(d)) == 1000
    assert abs(np.mean(d % np.uint64(4) == 0) - 0.25) < 0.05  # contiguous ids spread over shards
    with pytest.raises(MlcilError, match="ids"):
        ridge.id_digests(np.array([0.5, 1.5]))


def test_occurrence_counts_earlier_equal_keys():
    keys = np.array([7, 3, 7, 7, 3, 1, 7], dtype=np.uint64)
    seen: dict[int, int] = {}
    expected = []
    for k in keys.tolist():
        expected.append(seen.get(k, 0))
        seen[k] = seen.get(k, 0) + 1
    assert ridge.occurrence(keys).tolist() == expected


@pytest.mark.parametrize("n,bits", [(20, 8), (100, 12), (3000, 24)])
def test_collision_probability_is_the_birthday_bound(n, bits):
    exact = 1.0 - math.prod(1.0 - i / 2 ** bits for i in range(n))
    assert ridge.collision_probability(n, bits) == pytest.approx(exact, rel=0.05, abs=1e-3)
    assert ridge.collision_probability(1e9) == pytest.approx(0.0267, abs=5e-4)
