"""Per-class thresholds and decisions against brute-force references."""

import numpy as np
import pytest

from mlcil.decide import Decider, best_f1_thresholds, precision_thresholds, top_k
from mlcil.errors import MlcilError


def brute_f1(p, y, t):
    pred = p >= t
    return 2 * (y[pred]).sum() / (pred.sum() + y.sum())


@pytest.mark.parametrize("ties", [False, True])
def test_best_f1_thresholds_against_brute_force(ties):
    rng = np.random.default_rng(0)
    P = rng.random((80, 4))
    if ties:
        P = np.round(P, 1)  # many tied probabilities: ">=" takes a whole tie
    Y = (rng.random((80, 4)) < 0.3).astype(np.uint8)
    got = best_f1_thresholds(P, Y)
    for c in range(4):
        best = max(brute_f1(P[:, c], Y[:, c], t) for t in P[:, c])
        assert np.isclose(brute_f1(P[:, c], Y[:, c], got[c]), best)


def test_class_without_positive_gets_fallback():
    assert best_f1_thresholds(np.array([[0.3], [0.9]]), np.array([[0], [0]])).tolist() == [0.5]


@pytest.mark.parametrize("target", [0.5, 0.7, 0.9])
def test_precision_thresholds_are_the_lowest_reaching_the_target(target):
    rng = np.random.default_rng(1)
    P = rng.random((100, 3))
    Y = (rng.random((100, 3)) < P).astype(np.uint8)  # calibrated: precision grows with the threshold
    got = precision_thresholds(P, Y, target)
    for c in range(3):
        ok = [t for t in P[:, c] if Y[P[:, c] >= t, c].mean() >= target]
        if ok:
            assert got[c] == min(ok)
        else:
            assert got[c] > P[:, c].max()


def test_precision_target_out_of_range():
    with pytest.raises(MlcilError, match="target"):
        precision_thresholds(np.ones((2, 1)), np.ones((2, 1)), 1.5)


def test_top_k_picks_k_largest_per_row():
    S = np.array([[0.1, 0.5, 0.3, 0.9], [4.0, 3.0, 2.0, 1.0]])
    assert top_k(S, 2).tolist() == [[False, True, False, True], [True, True, False, False]]
    assert top_k(S, 10).all()  # k larger than the number of classes: every class


def test_decider_rules():
    P = np.array([[0.85, 0.6, 0.1]])
    assert Decider().decide(P).tolist() == [[True, False, False]]  # the field's 0.8
    assert Decider("per-class", thresholds=np.array([0.9, 0.5, 0.05])).decide(P).tolist() == [[False, True, True]]
    assert Decider("top-k", k=2).decide(P).tolist() == [[True, True, False]]
    with pytest.raises(MlcilError, match="rule"):
        Decider("median")
    with pytest.raises(MlcilError, match="thresholds"):
        Decider("per-class")


def test_weights_count_rows_repeated():
    """A row of integer weight w acts as w copies of the row (F1 thresholds and Platt alike)."""
    from mlcil.decide import fit_platt

    rng = np.random.default_rng(4)
    P = rng.random((50, 2))
    Y = (rng.random((50, 2)) < P).astype(np.uint8)
    w = rng.integers(1, 4, size=50)
    rep = np.repeat(np.arange(50), w)
    np.testing.assert_array_equal(best_f1_thresholds(P, Y, w), best_f1_thresholds(P[rep], Y[rep]))
    a, b = fit_platt(P, Y, weights=w)
    a2, b2 = fit_platt(P[rep], Y[rep])
    np.testing.assert_allclose(a, a2, rtol=0.05)
    np.testing.assert_allclose(b, b2, rtol=0.05, atol=0.05)
