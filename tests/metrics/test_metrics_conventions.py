"""Named metric conventions: each one is the composition of rules it claims, checked against
scikit-learn or a re-computation written here (not against the functions it dispatches to)."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from mlcil.errors import MlcilError
from mlcil.metrics import CONVENTIONS, DEFAULT_CONVENTION, MetricConvention, get_convention


def problem(seed=0, n=120, c=7):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(np.uint8)
    y[:, 3] = 0  # a class without a positive
    s = np.round(np.clip(0.4 * y + 0.7 * rng.random((n, c)), 0, 1), 1)  # many ties, many 0.8s
    return y, s


def sk_ap_or_nan(y, s):
    return np.array([average_precision_score(y[:, c], s[:, c]) if y[:, c].any() else np.nan
                     for c in range(y.shape[1])])


def sorted_ap(y, s):
    """One strict ranking per column in numpy's argsort-reversed order; 0 without a positive."""
    out = []
    for c in range(y.shape[1]):
        yc = y[np.argsort(s[:, c])[::-1], c]
        ranks = np.arange(1, len(yc) + 1)
        out.append(np.sum(np.cumsum(yc)[yc == 1] / ranks[yc == 1]) / (yc.sum() + 1e-8))
    return np.array(out)


def test_registry():
    assert DEFAULT_CONVENTION == "mlcil"
    assert sorted(CONVENTIONS) == ["field", "l3a", "mlcil", "multilane"]
    assert get_convention("field") is CONVENTIONS["field"]
    assert get_convention(CONVENTIONS["l3a"]) is CONVENTIONS["l3a"]
    with pytest.raises(MlcilError, match=r"^metrics: unknown convention 'feild'; expected one of \['field', 'l3a', "
                                         r"'mlcil', 'multilane'\]$"):
        get_convention("feild")
    for c in CONVENTIONS.values():
        assert f"`{c.name}`" in c.describe()


def test_bad_conventions_are_refused():
    with pytest.raises(MlcilError, match=r"^ties: expected one of"):
        MetricConvention("x", ties="random", no_positive="zero", strict=True, cf1="mean-f1", undefined="nan", follows="")
    with pytest.raises(MlcilError, match=r"^undefined: 'nan' is only defined with cf1='mean-f1'"):
        MetricConvention("x", ties="order-free", no_positive="exclude", strict=False, cf1="harmonic", undefined="nan",
                         follows="")


def test_map_of_each_convention():
    y, s = problem()
    order_free, strict_rank = sk_ap_or_nan(y, s), sorted_ap(y, s)
    keep = ~np.isnan(order_free)
    expected = {"mlcil": order_free[keep].mean(), "multilane": order_free[keep].mean(),
                "field": strict_rank.mean(), "l3a": strict_rank.mean()}
    for name, value in expected.items():
        m, no_positive = CONVENTIONS[name].mean_average_precision(y, s)
        assert m == pytest.approx(value, rel=1e-12), name
        assert no_positive.tolist() == [3]
    assert np.isnan(CONVENTIONS["mlcil"].average_precision(y, s)[3])
    assert CONVENTIONS["field"].average_precision(y, s)[3] == 0.0
    # the two other combinations a MetricConvention allows
    mixed = MetricConvention("x", ties="row-order", no_positive="exclude", strict=True, cf1="mean-f1",
                             undefined="zero", follows="")
    assert mixed.mean_average_precision(y, s)[0] == pytest.approx(strict_rank[keep].mean(), rel=1e-12)
    zeroed = MetricConvention("y", ties="order-free", no_positive="zero", strict=True, cf1="mean-f1",
                              undefined="zero", follows="")
    assert zeroed.mean_average_precision(y, s)[0] == pytest.approx(np.nan_to_num(order_free).mean(), rel=1e-12)


def test_decisions_and_f1_family_of_each_convention():
    y, s = problem(1)
    kw = dict(zero_division=0)
    for name, conv in CONVENTIONS.items():
        pred = conv.decide(s, 0.8)
        np.testing.assert_array_equal(pred, s > 0.8 if conv.strict else s >= 0.8)
        got = conv.threshold_metrics(y, pred)
        cp = precision_score(y, pred, average="macro", **kw)
        cr = recall_score(y, pred, average="macro", **kw)
        cf1 = 2 * cp * cr / (cp + cr) if name == "mlcil" else f1_score(y, pred, average="macro", **kw)
        assert got["CP"] == pytest.approx(cp, rel=1e-12) and got["CR"] == pytest.approx(cr, rel=1e-12), name
        assert got["CF1"] == pytest.approx(cf1, rel=1e-12), name
        assert got["OF1"] == pytest.approx(f1_score(y, pred, average="micro", **kw), rel=1e-12), name
    nothing = np.zeros_like(y)
    assert math.isnan(CONVENTIONS["field"].threshold_metrics(y, nothing)["OF1"])
    for name in ("mlcil", "multilane", "l3a"):
        assert CONVENTIONS[name].threshold_metrics(y, nothing)["OF1"] == 0.0
