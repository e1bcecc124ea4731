"""threshold_metrics / decide_threshold against scikit-learn's macro and micro scores."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from mlcil.errors import MlcilError
from mlcil.metrics import FIELD_THRESHOLD, decide_threshold, field_threshold_metrics, threshold_metrics

KEYS = ["CP", "CR", "CF1", "OP", "OR", "OF1"]


def sk_reference(y, p):
    """sklearn macro/micro scores. One column is treated by sklearn as a *binary*
    problem with inferred labels (macro over {0, 1}), so it is scored per column there."""
    kw = dict(zero_division=0)
    if y.shape[1] == 1:
        y, p = y[:, 0], p[:, 0]
        cp = op = precision_score(y, p, average="binary", **kw)
        cr = orr = recall_score(y, p, average="binary", **kw)
        h = lambda a, b: 2 * a * b / (a + b) if a + b > 0 else 0.0  # noqa: E731
        return {"CP": cp, "CR": cr, "CF1": h(cp, cr), "OP": op, "OR": orr, "OF1": h(op, orr)}
    cp = precision_score(y, p, average="macro", **kw)
    cr = recall_score(y, p, average="macro", **kw)
    op = precision_score(y, p, average="micro", **kw)
    orr = recall_score(y, p, average="micro", **kw)
    h = lambda a, b: 2 * a * b / (a + b) if a + b > 0 else 0.0  # noqa: E731
    return {"CP": cp, "CR": cr, "CF1": h(cp, cr), "OP": op, "OR": orr, "OF1": h(op, orr)}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(1, 1), (30, 1), (5, 3), (80, 10), (500, 40)])
def test_matches_sklearn(seed, shape):
    rng = np.random.default_rng(seed)
    y = (rng.random(shape) < 0.3).astype(np.uint8)
    p = (rng.random(shape) < rng.uniform(0.05, 0.6)).astype(np.uint8)
    got = threshold_metrics(y, p)
    assert list(got) == KEYS
    ref = sk_reference(y, p)
    for k in KEYS:
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-15), k
        assert isinstance(got[k], float)
        assert 0.0 <= got[k] <= 1.0


def test_of1_is_micro_f1_and_cf1_is_harmonic_not_macro_f1():
    rng = np.random.default_rng(11)
    y = (rng.random((200, 8)) < 0.3).astype(int)
    p = (rng.random((200, 8)) < 0.2).astype(int)
    got = threshold_metrics(y, p)
    assert got["OF1"] == pytest.approx(f1_score(y, p, average="micro"), rel=1e-12)
    # mlcil's CF1 (convention `mlcil`, ML-GCN's definition) = harmonic mean of the averages, which is
    # not the average of per-class F1 -- and never below it (the harmonic mean is concave). The MLCIL
    # codebases (KRT, CSC, MULTI-LANE, L3A) report the average of per-class F1: field_threshold_metrics.
    macro = f1_score(y, p, average="macro")
    assert got["CF1"] != pytest.approx(macro, rel=1e-6)
    assert got["CF1"] > macro
    assert field_threshold_metrics(y, p)["CF1"] == pytest.approx(macro, rel=1e-12)


def test_zero_division_conventions():
    y = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1]])
    p = np.array([[1, 1, 0], [0, 0, 0], [0, 1, 0]])
    # class 0: TP=1, pred=1, pos=2 -> P=1, R=0.5
    # class 1: no positive, predicted twice -> P=0, R=0 (zero_division=0)
    # class 2: never predicted, 2 positives -> P=0 (zero_division=0), R=0
    got = threshold_metrics(y, p)
    assert got["CP"] == pytest.approx(1 / 3)
    assert got["CR"] == pytest.approx(0.5 / 3)
    assert got["CF1"] == pytest.approx(2 * (1 / 3) * (0.5 / 3) / (1 / 3 + 0.5 / 3))
    assert got["OP"] == pytest.approx(1 / 3)
    assert got["OR"] == pytest.approx(1 / 4)
    ref = sk_reference(y, p)
    for k in KEYS:
        assert got[k] == pytest.approx(ref[k]), k


def test_nothing_predicted_and_no_positives():
    y = np.zeros((4, 3), dtype=bool)
    assert threshold_metrics(y, y) == dict.fromkeys(KEYS, 0.0)
    y[0, 0] = True
    assert threshold_metrics(y, np.zeros_like(y)) == dict.fromkeys(KEYS, 0.0)


def test_perfect_prediction():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    assert threshold_metrics(y, y) == dict.fromkeys(KEYS, 1.0)


def test_empty_shapes():
    assert threshold_metrics(np.zeros((0, 3)), np.zeros((0, 3))) == dict.fromkeys(KEYS, 0.0)
    got = threshold_metrics(np.zeros((3, 0)), np.zeros((3, 0)))
    assert list(got) == KEYS and all(np.isnan(v) for v in got.values())


def test_errors():
    with pytest.raises(MlcilError, match=r"^y_pred: expected shape \(4, 3\) to match y_true, got \(4, 2\)$"):
        threshold_metrics(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(MlcilError, match=r"^y_pred: expected binary values \(0/1 or bool\), got 0.9 at \[1, 0\]$"):
        threshold_metrics(np.zeros((2, 2)), np.array([[0, 1], [0.9, 0]]))
    with pytest.raises(MlcilError, match=r"^y_true: expected a 2-D array"):
        threshold_metrics([1, 0], [1, 0])


def test_decide_threshold_default_and_ties():
    assert FIELD_THRESHOLD == 0.8
    proba = np.array([[0.8, 0.79999, 1.0], [0.0, 0.81, 0.5]])
    d = decide_threshold(proba)
    assert d.dtype == bool
    np.testing.assert_array_equal(d, [[True, False, True], [False, True, False]])
    np.testing.assert_array_equal(decide_threshold(proba, 0.5), proba >= 0.5)


def test_decide_threshold_strict():
    proba = np.array([[0.8, 0.79999, 1.0], [0.0, 0.81, 0.5]])
    np.testing.assert_array_equal(decide_threshold(proba, strict=True), proba > 0.8)
    np.testing.assert_array_equal(decide_threshold(proba, [0.8, 0.81, 0.5], strict=True),
                                  [[False, False, True], [False, False, False]])
    # compared in the probabilities' own dtype, as torch's preds.gt(0.8) is
    for dtype in (np.float16, np.float32):
        p = np.array([[0.8, 0.9]], dtype=dtype)
        assert decide_threshold(p, 0.8, strict=True).tolist() == [[False, True]]
    # the default >= keeps comparing with the float64 threshold, as before: float32's 0.8 rounds up
    # (present), float16's rounds down to 0.7998 (absent)
    assert decide_threshold(np.array([[0.8]], dtype=np.float32), 0.8).tolist() == [[True]]
    assert decide_threshold(np.array([[0.8]], dtype=np.float16), 0.8).tolist() == [[False]]
    assert decide_threshold(np.array([[1, 0]]), 0, strict=True).tolist() == [[True, False]]


def test_decide_threshold_per_class_and_logits():
    proba = np.array([[0.9, 0.2], [0.4, 0.6]])
    np.testing.assert_array_equal(decide_threshold(proba, [0.5, 0.2]), [[True, True], [False, True]])
    logits = np.array([[-0.1, 0.0, 2.0]])
    np.testing.assert_array_equal(decide_threshold(logits, 0.0), [[False, True, True]])


def test_decide_then_measure_matches_sklearn():
    rng = np.random.default_rng(3)
    y = (rng.random((300, 7)) < 0.3).astype(int)
    proba = np.clip(0.5 * y + 0.6 * rng.random((300, 7)), 0, 1)
    p = decide_threshold(proba)
    ref = sk_reference(y, (proba >= 0.8).astype(int))
    got = threshold_metrics(y, p)
    for k in KEYS:
        assert got[k] == pytest.approx(ref[k], rel=1e-12)


def test_decide_threshold_errors():
    with pytest.raises(MlcilError, match=r"^threshold: expected a scalar or shape \(3,\) to match the columns of proba, got shape \(2,\)$"):
        decide_threshold(np.zeros((2, 3)), [0.5, 0.5])
    with pytest.raises(MlcilError, match=r"^threshold: expected finite values"):
        decide_threshold(np.zeros((2, 3)), np.nan)
    with pytest.raises(MlcilError, match=r"^proba: expected finite values, got 1 NaN/inf entries \(first nan at \[1, 2\]\)$"):
        decide_threshold(np.array([[0.1, 0.2, 0.3], [0.1, 0.2, np.nan]]))
    with pytest.raises(MlcilError, match=r"^proba: expected a 2-D array of shape \(n_examples, n_classes\), got shape \(3,\)$"):
        decide_threshold(np.zeros(3))
