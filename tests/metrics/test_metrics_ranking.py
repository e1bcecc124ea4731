"""average_precision / mean_average_precision against scikit-learn."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mlcil.errors import MlcilError
from mlcil.metrics import average_precision, mean_average_precision
from mlcil.metrics import ranking


def sk_ap(y, s):
    """scikit-learn's AP per column; NaN where the column has no positive."""
    out = []
    for c in range(y.shape[1]):
        if y[:, c].sum() == 0:
            out.append(np.nan)
        else:
            out.append(average_precision_score(y[:, c], s[:, c]))
    return np.array(out)


def random_problem(seed, n, c, p=0.2, scores="uniform"):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < p).astype(np.uint8)
    y[rng.integers(n), :] = 1  # every class has a positive
    if scores == "uniform":
        s = rng.random((n, c))
    elif scores == "round1":
        s = np.round(rng.random((n, c)), 1)
    elif scores == "int4":
        s = rng.integers(0, 4, size=(n, c)).astype(float)
    elif scores == "normal":
        s = rng.normal(size=(n, c)) + 1.5 * y
    else:
        raise AssertionError(scores)
    return y, s


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 1), (50, 4), (300, 17)])
@pytest.mark.parametrize("kind", ["uniform", "normal", "round1", "int4"])
def test_matches_sklearn(seed, shape, kind):
    y, s = random_problem(seed, *shape, scores=kind)
    np.testing.assert_allclose(average_precision(y, s), sk_ap(y, s), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("p", [0.01, 0.5, 0.99])
def test_matches_sklearn_positive_rates(p):
    y, s = random_problem(3, 400, 9, p=p, scores="round1")
    np.testing.assert_allclose(average_precision(y, s), sk_ap(y, s), rtol=1e-12, atol=1e-14)


def test_matches_sklearn_across_blocks(monkeypatch):
    # Force many small class blocks (and a ragged last one): same answer as one block.
    y, s = random_problem(4, 64, 23, scores="int4")
    whole = average_precision(y, s)
    monkeypatch.setattr(ranking, "_BLOCK_ENTRIES", 64 * 5)
    np.testing.assert_array_equal(average_precision(y, s), whole)
    np.testing.assert_allclose(whole, sk_ap(y, s), rtol=1e-12)


def test_float32_and_list_inputs():
    y, s = random_problem(5, 120, 6, scores="normal")
    s32 = s.astype(np.float32)
    ref = sk_ap(y, s32)
    np.testing.assert_allclose(average_precision(y, s32), ref, rtol=1e-12)
    np.testing.assert_allclose(average_precision(y.astype(bool).tolist(), s32.tolist()), ref, rtol=1e-6)
    np.testing.assert_allclose(average_precision(y.astype(float), s), sk_ap(y, s), rtol=1e-12)


def test_all_equal_scores_give_prevalence():
    # One tie group: precision = prevalence at the only threshold.
    y = np.array([[1, 0], [0, 1], [0, 1], [1, 1], [0, 0]])
    s = np.full(y.shape, 0.3)
    ap = average_precision(y, s)
    np.testing.assert_allclose(ap, [2 / 5, 3 / 5])
    np.testing.assert_allclose(ap, sk_ap(y, s))


def test_single_positive():
    y = np.zeros((6, 3), dtype=int)
    y[2, 0] = y[5, 1] = y[0, 2] = 1
    s = np.array([[0.9, 0.1, 0.4], [0.8, 0.2, 0.4], [0.7, 0.3, 0.4],
                  [0.6, 0.4, 0.4], [0.5, 0.5, 0.1], [0.4, 0.6, 0.0]])
    ap = average_precision(y, s)
    # column 0: the positive is ranked 3rd -> 1/3; column 1: 1st -> 1; column 2: tied
    # with three negatives at the top -> 1/4.
    np.testing.assert_allclose(ap, [1 / 3, 1.0, 1 / 4])
    np.testing.assert_allclose(ap, sk_ap(y, s))


def test_all_positive_column_is_one():
    y = np.ones((5, 1), dtype=int)
    assert average_precision(y, np.arange(5.0)[:, None])[0] == 1.0


def test_no_positive_is_nan_and_excluded_from_map():
    y, s = random_problem(6, 40, 5, scores="round1")
    y[:, [1, 3]] = 0
    ap = average_precision(y, s)
    assert np.isnan(ap[[1, 3]]).all()
    assert np.isfinite(ap[[0, 2, 4]]).all()
    m, excluded = mean_average_precision(y, s)
    assert excluded.tolist() == [1, 3]
    assert excluded.dtype == np.int64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.mean([average_precision_score(y[:, c], s[:, c]) for c in (0, 2, 4)])
    assert m == pytest.approx(ref, rel=1e-12)
    assert isinstance(m, float)


def test_map_all_excluded_is_nan():
    y = np.zeros((4, 3), dtype=np.uint8)
    m, excluded = mean_average_precision(y, np.random.default_rng(0).random((4, 3)))
    assert np.isnan(m)
    assert excluded.tolist() == [0, 1, 2]


def test_map_matches_sklearn_macro():
    y, s = random_problem(7, 200, 12, scores="round1")
    m, excluded = mean_average_precision(y, s)
    assert excluded.size == 0
    assert m == pytest.approx(average_precision_score(y, s, average="macro"), rel=1e-12)


def test_empty_shapes():
    assert average_precision(np.zeros((0, 3)), np.zeros((0, 3))).shape == (3,)
    assert np.isnan(average_precision(np.zeros((0, 3)), np.zeros((0, 3)))).all()
    assert average_precision(np.zeros((4, 0)), np.zeros((4, 0))).shape == (0,)
    m, excluded = mean_average_precision(np.zeros((4, 0)), np.zeros((4, 0)))
    assert np.isnan(m) and excluded.size == 0


def test_does_not_modify_inputs():
    y, s = random_problem(8, 30, 4, scores="int4")
    y0, s0 = y.copy(), s.copy()
    average_precision(y, s)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(s, s0)


def test_invariant_to_monotone_transform():
    y, s = random_problem(9, 100, 5, scores="round1")
    np.testing.assert_allclose(average_precision(y, s), average_precision(y, 3 * s - 7), rtol=1e-15)


@pytest.mark.parametrize(
    "y, s, message",
    [
        (np.zeros((100, 5)), np.zeros((100, 4)), "scores: expected shape (100, 5) to match y_true, got (100, 4)"),
        (np.zeros(5), np.zeros(5), "y_true: expected a 2-D array of shape (n_examples, n_classes), got shape (5,)"),
        (np.zeros((5, 2)), np.zeros((5, 2, 1)), "scores: expected a 2-D array"),
        (np.full((3, 2), 2), np.zeros((3, 2)), "y_true: expected binary values (0/1 or bool), got 2 at [0, 0]"),
        (np.array([[0, 0.5]]), np.zeros((1, 2)), "y_true: expected binary values (0/1 or bool), got 0.5 at [0, 1]"),
        (np.array([[0, -1]]), np.zeros((1, 2)), "y_true: expected binary values"),
        (np.zeros((2, 2)), np.array([[0, np.nan], [np.inf, 0]]), "scores: expected finite values, got 2 NaN/inf entries (first nan at [0, 1])"),
        (np.zeros((2, 2)), np.array([["a", "b"], ["c", "d"]]), "scores: expected a numeric or boolean array, got dtype <U1"),
        (np.zeros((2, 2)), [[0.1, 0.2], [0.3]], "scores: expected a numeric array, could not convert it"),
    ],
)
def test_errors(y, s, message):
    with pytest.raises(MlcilError) as info:
        average_precision(y, s)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    with pytest.raises(MlcilError):
        mean_average_precision(y, s)


def test_large_problem_matches_sklearn():
    # 10k × 1000 with ties (scores rounded); speed is a benchmark's business, not a unit test's
    rng = np.random.default_rng(0)
    y = rng.random((10_000, 1000)) < 0.05
    s = rng.random((10_000, 1000)).round(3)
    ap = average_precision(y, s)
    cols = [0, 499, 999]
    np.testing.assert_allclose(ap[cols], sk_ap(y[:, cols], s[:, cols]), rtol=1e-12)
