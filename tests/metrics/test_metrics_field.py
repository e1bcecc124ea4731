"""The MLCIL codebases' metric semantics (mlcil.metrics.field) against direct re-computations.

Every reference below is written here, loop by loop, from the rules the module documents
(KRT / CSC / L3A: AP over numpy's argsort reversed, divided by #positives + 1e-8; per-class
P, R, F1 = 0 when TP = 0; overall scores by plain division), or is scikit-learn (MULTI-LANE's
and L3A's zero-division-0 scores). None calls the function under test.
"""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from mlcil.errors import MlcilError
from mlcil.metrics import (decide_threshold, field_average_precision, field_mean_average_precision,
                           field_threshold_metrics, mean_average_precision, threshold_metrics)
from mlcil.metrics import field

KEYS = ["CP", "CR", "CF1", "OP", "OR", "OF1"]


def ref_ap(y, s):
    """Per column: rank by np.argsort(column)[::-1]; precision at each positive's rank."""
    out = []
    for c in range(y.shape[1]):
        order = np.argsort(s[:, c])[::-1]
        hits, total = 0, 0.0
        for rank, i in enumerate(order, start=1):
            if y[i, c]:
                hits += 1
                total += hits / rank
        out.append(total / (int(y[:, c].sum()) + 1e-8))
    return np.array(out)


def ref_prf(y, pred, undefined):
    """Per class with explicit branches, then the means; overall by plain division."""
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    ps, rs, fs = [], [], []
    TP = NP = NG = 0
    for c in range(y.shape[1]):
        tp = int(np.sum(y[:, c] & pred[:, c]))
        n_pred, n_pos = int(pred[:, c].sum()), int(y[:, c].sum())
        if tp > 0:
            p, r = tp / n_pred, tp / n_pos
            ps.append(p), rs.append(r), fs.append(2 * p * r / (p + r))
        else:
            ps.append(0.0), rs.append(0.0), fs.append(0.0)
        TP, NP, NG = TP + tp, NP + n_pred, NG + n_pos
    bad = math.nan if undefined == "nan" else 0.0
    op = TP / NP if NP else bad
    orr = TP / NG if NG else bad
    if math.isnan(op) or math.isnan(orr):
        of1 = math.nan
    else:
        of1 = 2 * op * orr / (op + orr) if op + orr > 0 else bad
    return {"CP": np.mean(ps), "CR": np.mean(rs), "CF1": np.mean(fs), "OP": op, "OR": orr, "OF1": of1}


def sk_prf(y, pred):
    """L3A's calculate_metrics_sk semantics through scikit-learn (zero_division=0)."""
    kw = dict(zero_division=0)
    return {"CP": precision_score(y, pred, average=None, **kw).mean(),
            "CR": recall_score(y, pred, average=None, **kw).mean(),
            "CF1": f1_score(y, pred, average=None, **kw).mean(),
            "OP": precision_score(y, pred, average="micro", **kw),
            "OR": recall_score(y, pred, average="micro", **kw),
            "OF1": f1_score(y, pred, average="micro", **kw)}


def issue_case(kind, seed=0, n=200, c=12):
    """The issue's score matrices: continuous, rounded to 0.1, exactly at 0.8, classes without
    positives, classes never predicted."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.25).astype(np.uint8)
    p = np.clip(0.45 * y + 0.6 * rng.random((n, c)), 0, 1)
    if kind == "round":
        p = np.round(p, 1)
    elif kind == "at08":
        p[rng.random((n, c)) < 0.15] = 0.8
    elif kind == "no_positive":
        y[:, [2, 7]] = 0
    elif kind == "never_predicted":
        p[:, [1, 5]] *= 0.5
    return y, p


def assert_dicts_close(got, ref, tol=1e-12):
    assert list(got) == KEYS
    for k in KEYS:
        if math.isnan(ref[k]):
            assert math.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(ref[k], rel=tol, abs=tol), k


@pytest.mark.parametrize("kind", ["continuous", "round", "at08", "no_positive", "never_predicted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_issue_cases_match_the_recomputation(kind, dtype):
    y, p = issue_case(kind)
    s = p.astype(dtype)
    np.testing.assert_allclose(field_average_precision(y, s), ref_ap(y, s), rtol=1e-12, atol=1e-15)
    m, no_positive = field_mean_average_precision(y, s)
    assert m == pytest.approx(ref_ap(y, s).mean(), rel=1e-12)
    assert no_positive.tolist() == ([2, 7] if kind == "no_positive" else [])
    pred = s > np.asarray(0.8, dtype=dtype)  # torch's preds.gt(0.8), compared in the scores' dtype
    np.testing.assert_array_equal(decide_threshold(s, 0.8, strict=True), pred)
    assert_dicts_close(field_threshold_metrics(y, pred), ref_prf(y, pred, "nan"))
    assert_dicts_close(field_threshold_metrics(y, pred, undefined="zero"), ref_prf(y, pred, "zero"))
    assert_dicts_close(field_threshold_metrics(y, pred, undefined="zero"), sk_prf(y, pred))


def test_issue_case_effects_have_the_reported_sign():
    # CF1: the mean of per-class F1 is below mlcil's harmonic mean of the means.
    for kind in ("continuous", "round", "at08", "no_positive", "never_predicted"):
        y, p = issue_case(kind, seed=1)
        got = field_threshold_metrics(y, p > 0.8)["CF1"]
        assert got < threshold_metrics(y, p > 0.8)["CF1"]
    # Scores exactly at 0.8: the strict rule predicts fewer labels, so recall drops.
    y, p = issue_case("at08", seed=1)
    assert threshold_metrics(y, p > 0.8)["CR"] < threshold_metrics(y, p >= 0.8)["CR"] - 0.05
    # Classes without a positive: counted as 0, so the field's mAP is lower.
    y, p = issue_case("no_positive", seed=1)
    assert field_mean_average_precision(y, p)[0] < mean_average_precision(y, p)[0] - 0.05


def test_cf1_mean_of_f1_vs_harmonic_of_means_by_hand():
    # class 0: TP 1, FP 0, FN 2 -> P 1,   R 1/3, F1 1/2
    # class 1: TP 2, FP 2, FN 0 -> P 1/2, R 1,   F1 2/3
    y = np.array([[1, 1], [1, 1], [1, 0], [0, 0]])
    pred = np.array([[1, 1], [0, 1], [0, 1], [0, 1]])
    cp, cr = (1 + 0.5) / 2, (1 / 3 + 1) / 2
    got = field_threshold_metrics(y, pred)
    assert got["CP"] == pytest.approx(cp) and got["CR"] == pytest.approx(cr)
    assert got["CF1"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # 7/12 = 0.583
    assert threshold_metrics(y, pred)["CF1"] == pytest.approx(2 * cp * cr / (cp + cr))  # 12/17 = 0.706
    assert got["CF1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert got["OP"] == pytest.approx(3 / 5) and got["OR"] == pytest.approx(3 / 5)


def test_ties_follow_the_sort_order():
    # y = [1, 0, 0, 0], s = [.5, .5, .2, .1]: the order-free AP is 1/2 (the tie group at the top has
    # precision 1/2); one strict ranking puts one of rows 0 and 1 first. Swapping which of the two
    # tied rows is the positive (same scores, so the same sort) gives the other outcome: one of the
    # two is 1, the other 1/2, on any machine.
    s = np.array([[0.5], [0.5], [0.2], [0.1]])
    y0, y1 = np.array([[1], [0], [0], [0]]), np.array([[0], [1], [0], [0]])
    a0, a1 = field_average_precision(y0, s)[0], field_average_precision(y1, s)[0]
    assert sorted([a0, a1]) == pytest.approx([0.5, 1.0])
    assert a0 == pytest.approx(ref_ap(y0, s)[0]) and a1 == pytest.approx(ref_ap(y1, s)[0])
    first = np.argsort(s[:, 0])[::-1][0]  # which tied row this machine's numpy ranks first
    assert a0 == pytest.approx(1.0 if first == 0 else 0.5)
    assert mean_average_precision(y0, s)[0] == pytest.approx(0.5)
    assert mean_average_precision(y1, s)[0] == pytest.approx(0.5)


def test_ties_in_float16_and_float32_are_sorted_in_their_own_dtype():
    rng = np.random.default_rng(4)
    y = (rng.random((300, 5)) < 0.3).astype(np.uint8)
    s = np.round(rng.random((300, 5)), 1)
    for dtype in (np.float16, np.float32, np.float64):
        sd = s.astype(dtype)
        np.testing.assert_allclose(field_average_precision(y, sd), ref_ap(y, sd), rtol=1e-12)


def test_without_ties_it_is_the_order_free_ap():
    rng = np.random.default_rng(5)
    y = (rng.random((150, 6)) < 0.3).astype(np.uint8)
    y[0] = 1
    s = rng.random((150, 6))
    from mlcil.metrics import average_precision

    np.testing.assert_allclose(field_average_precision(y, s), average_precision(y, s), rtol=1e-7)


def test_class_without_positive_counts_as_zero():
    y = np.array([[1, 0], [0, 0], [0, 0]])
    s = np.array([[0.9, 0.9], [0.1, 0.2], [0.2, 0.3]])
    ap = field_average_precision(y, s)
    assert ap.tolist() == [pytest.approx(1 / (1 + 1e-8)), 0.0]
    m, no_positive = field_mean_average_precision(y, s)
    assert m == pytest.approx(0.5) and no_positive.tolist() == [1]
    assert mean_average_precision(y, s)[0] == pytest.approx(1.0)


def test_nothing_predicted_is_nan_for_krt_csc_and_zero_for_multilane_l3a():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    none = np.zeros_like(y)
    krt = field_threshold_metrics(y, none)
    assert krt["CP"] == krt["CR"] == krt["CF1"] == 0.0
    assert math.isnan(krt["OP"]) and math.isnan(krt["OF1"]) and krt["OR"] == 0.0
    assert field_threshold_metrics(y, none, undefined="zero") == dict.fromkeys(KEYS, 0.0)
    assert threshold_metrics(y, none) == dict.fromkeys(KEYS, 0.0)
    # predicted, but nothing right: OP = OR = 0, so OF1 = 0/0
    wrong = 1 - y
    assert math.isnan(field_threshold_metrics(y, wrong)["OF1"])
    assert field_threshold_metrics(y, wrong, undefined="zero")["OF1"] == 0.0
    # no positive at all: OR is 0/0
    assert math.isnan(field_threshold_metrics(np.zeros_like(y), y)["OR"])


def test_scores_exactly_at_the_threshold():
    y = np.array([[1, 1], [1, 0], [0, 1]])
    p = np.array([[0.8, 0.9], [0.8, 0.8], [0.3, 0.8]])
    assert decide_threshold(p, 0.8).tolist() == [[True, True], [True, True], [False, True]]
    assert decide_threshold(p, 0.8, strict=True).tolist() == [[False, True], [False, False], [False, False]]
    # >=: class 0 finds both positives, class 1 both -> CR = 1; >: class 0 none, class 1 one of two.
    assert threshold_metrics(y, decide_threshold(p, 0.8))["CR"] == pytest.approx(1.0)
    assert field_threshold_metrics(y, decide_threshold(p, 0.8, strict=True))["CR"] == pytest.approx(0.25)
    # float32 0.8 is 0.800000011920929: above the float64 0.8, not above the float32 one (torch's gt)
    p32 = p.astype(np.float32)
    assert decide_threshold(p32, 0.8, strict=True).tolist() == [[False, True], [False, False], [False, False]]
    assert (p32 > 0.8).tolist() == (p32 > np.float32(0.8)).tolist()  # NumPy 2 compares a Python float weakly
    assert (p32 > np.asarray(0.8)).sum() == 5  # ... but a float64 array would not (4 at 0.8, one 0.9)
    assert decide_threshold(p32, np.array([0.8, 0.8]), strict=True).tolist() == [[False, True], [False, False],
                                                                                  [False, False]]


def test_blocks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(6)
    y = (rng.random((64, 23)) < 0.3).astype(np.uint8)
    s = rng.integers(0, 4, size=(64, 23)).astype(float)
    whole = field_average_precision(y, s)
    monkeypatch.setattr(field, "_BLOCK_ENTRIES", 64 * 5)
    np.testing.assert_array_equal(field_average_precision(y, s), whole)
    np.testing.assert_allclose(whole, ref_ap(y, s), rtol=1e-12)


def test_empty_shapes():
    assert field_average_precision(np.zeros((0, 3)), np.zeros((0, 3))).tolist() == [0.0, 0.0, 0.0]
    assert field_average_precision(np.zeros((4, 0)), np.zeros((4, 0))).shape == (0,)
    m, no_positive = field_mean_average_precision(np.zeros((4, 0)), np.zeros((4, 0)))
    assert math.isnan(m) and no_positive.size == 0
    got = field_threshold_metrics(np.zeros((3, 0)), np.zeros((3, 0)))
    assert all(math.isnan(v) for v in got.values())


def test_errors_and_inputs_untouched():
    with pytest.raises(MlcilError, match=r"^scores: expected shape \(4, 3\) to match y_true, got \(4, 2\)$"):
        field_average_precision(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(MlcilError, match=r"^scores: expected finite values, got 1 NaN/inf entries"):
        field_average_precision(np.zeros((2, 2)), np.array([[0.1, np.nan], [0.2, 0.3]]))
    with pytest.raises(MlcilError, match=r"^y_true: expected binary values"):
        field_mean_average_precision(np.full((2, 2), 2), np.zeros((2, 2)))
    with pytest.raises(MlcilError, match=r"^undefined: expected 'nan' or 'zero', got 'none'$"):
        field_threshold_metrics(np.zeros((2, 2)), np.zeros((2, 2)), undefined="none")
    with pytest.raises(MlcilError, match=r"^y_pred: expected binary values"):
        field_threshold_metrics(np.zeros((2, 2)), np.full((2, 2), 0.9))
    y, p = issue_case("round")
    y0, p0 = y.copy(), p.copy()
    field_average_precision(y, p)
    field_threshold_metrics(y, p > 0.8)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(p, p0)
