"""The harness: its numbers equal an independent recomputation; its files are complete and strict."""

import json

import numpy as np
import pytest

from mlcil.bench import report as report_module
from mlcil.bench import BenchConfig, run_benchmark, write_report
from mlcil.learners import Joint, make_learner
from mlcil.metrics import average_precision, forgetting, mean_average_precision, threshold_metrics
from mlcil.protocols import Protocol

from ..learners.conftest import make_dataset


def test_report_numbers_match_a_direct_recomputation(tmp_path):
    ds = make_dataset(n=300, d=8, L=4, seed=1)
    config = BenchConfig(protocol="B0-C2", learners=("joint:M=32", "analytic:M=32"), seeds=(0, 1), order="dataset")
    report = run_benchmark(ds, config, progress=False)
    assert len(report["runs"]) == 4
    stream = Protocol("B0-C2", order="dataset", seed=1).build(ds)
    T = len(stream) - 1
    # joint, seed 1, last session: refit directly and evaluate on the protocol's test rows
    joint = Joint(M=32, seed=1).learn(stream.joint_session(T))
    rows = stream.test_rows(T)
    Y = stream.Y_test[:, joint.classes_]
    S, P = joint.scores(stream.X_test), joint.proba(stream.X_test)
    run = next(r for r in report["runs"] if r["learner"] == "joint:M=32" and r["seed"] == 1)
    last = run["sessions"][-1]
    assert np.isclose(last["mAP"], mean_average_precision(Y[rows], S[rows])[0])
    f1 = threshold_metrics(Y[rows], P[rows] >= 0.8)
    assert np.isclose(last["CF1"], f1["CF1"]) and np.isclose(last["OF1"], f1["OF1"])
    # forgetting from the stored AP history, which uses the full test set
    history = np.array(run["ap_history"], dtype=float)
    np.testing.assert_allclose(history[-1], average_precision(Y, S))
    assert np.isclose(run["summary"]["forgetting"], forgetting(history, [2, 3]))
    # mean over seeds in the summary
    maps = [r["summary"]["last_mAP"] for r in report["runs"] if r["learner"] == "analytic:M=32"]
    assert np.isclose(report["summary"]["analytic:M=32"]["last_mAP"]["mean"], np.mean(maps))
    assert np.isclose(report["summary"]["analytic:M=32"]["last_mAP"]["std"], np.std(maps))

    paths = write_report(report, tmp_path)

    def refuse(token):
        raise AssertionError(f"non-strict JSON constant {token}")

    again = json.loads(paths["json"].read_text(), parse_constant=refuse)
    assert again["versions"]["torch"] and again["protocol"]["n_sessions"] == 2
    md = paths["md"].read_text()
    assert "| `analytic:M=32` |" in md and "t=2" in md


def test_every_learner_spec_reaches_the_learner():
    learner = make_learner("analytic:strategy=known,M=16", seed=5)
    assert learner.strategy == "known" and learner.M == 16 and learner.seed == 5


def tied_dataset():
    """make_dataset with ties (test rows repeated, with other labels) and a class (c1) that has
    no positive test example: the cases where the conventions differ."""
    from mlcil.data.dataset import Dataset

    ds = make_dataset(n=300, d=8, L=4, seed=2)
    test = np.flatnonzero(ds.split == "test")
    X = np.concatenate([ds.X, ds.X[test[:40]]])
    Y = np.concatenate([ds.Y, ds.Y[test[40:80]]])
    split = np.concatenate([ds.split, ["test"] * 40])
    Y[split == "test", 1] = 0
    Y[(split == "test") & (Y.sum(1) == 0), 0] = 1
    return Dataset(X, Y, ds.label_names, split=split, name="tied")


def field_ap(y, s):
    """KRT/CSC/L3A's AP, re-computed per column: ranks of numpy's argsort reversed, / (#pos + 1e-8)."""
    out = []
    for c in range(y.shape[1]):
        yc = y[np.argsort(s[:, c])[::-1], c].astype(bool)
        ranks = np.arange(1, len(yc) + 1)
        out.append(np.sum(np.cumsum(yc)[yc] / ranks[yc]) / (yc.sum() + 1e-8))
    return np.array(out)


def field_f1(y, pred):
    """Per class P, R, F1 (0 when TP = 0), their means; overall by plain division (NaN when 0/0)."""
    tp, n_pred, n_pos = (y & pred).sum(0), pred.sum(0), y.sum(0)
    per = [(t / p, t / g, 2 * t / (p + g)) if t else (0.0, 0.0, 0.0) for t, p, g in zip(tp, n_pred, n_pos)]
    with np.errstate(invalid="ignore", divide="ignore"):
        op, orr = np.float64(tp.sum()) / n_pred.sum(), np.float64(tp.sum()) / n_pos.sum()
        of1 = 2 * op * orr / (op + orr)
    return dict(zip(["CP", "CR", "CF1"], np.mean(per, axis=0))) | {"OP": op, "OR": orr, "OF1": of1}


def test_field_convention_matches_a_direct_recomputation(tmp_path):
    ds = tied_dataset()
    config = BenchConfig(protocol="B0-C2", learners=("joint:M=32",), seeds=(0,), order="dataset", metrics="field")
    report = run_benchmark(ds, config, progress=False)
    assert report["config"]["metrics"] == "field"
    stream = Protocol("B0-C2", order="dataset", seed=0).build(ds)
    run = report["runs"][0]
    for t in range(len(stream)):
        joint = Joint(M=32, seed=0).learn(stream.joint_session(t))
        rows = stream.test_rows(t)
        Y = stream.Y_test[:, joint.classes_][rows].astype(bool)
        S, P = joint.scores(stream.X_test)[rows], joint.proba(stream.X_test)[rows]
        assert all(len(np.unique(S[:, c])) < len(S) for c in range(S.shape[1]))  # tied scores in every class
        session = run["sessions"][t]
        assert 1 in session["no_positive_classes"] and session["excluded_classes"] == []
        assert session["mAP"] == pytest.approx(field_ap(Y, S).mean(), abs=1e-9)
        ref = field_f1(Y, P > np.asarray(0.8, dtype=P.dtype))
        for key, value in ref.items():
            assert session[key] == pytest.approx(value, abs=1e-9, nan_ok=True), key
        assert session["conventions"]["field"]["mAP"] == session["mAP"]
        # the same session read under mlcil's convention, stored beside it
        m, excluded = mean_average_precision(Y, S)
        assert session["conventions"]["mlcil"]["mAP"] == pytest.approx(m, abs=1e-12) and excluded.size == 1
        f1 = threshold_metrics(Y, P >= 0.8)
        assert session["conventions"]["mlcil"]["CF1"] == pytest.approx(f1["CF1"], abs=1e-12)
    # the ties are real: with them broken by sort order the field's AP differs from the order-free one
    assert run["sessions"][-1]["conventions"]["field"]["mAP"] != pytest.approx(
        run["sessions"][-1]["conventions"]["mlcil"]["mAP"], abs=1e-3)
    summary = report["summary"]["joint:M=32"]
    assert summary["last_mAP"]["mean"] == pytest.approx(run["sessions"][-1]["mAP"])
    assert summary["conventions"]["mlcil"]["last_mAP"]["mean"] == pytest.approx(
        run["sessions"][-1]["conventions"]["mlcil"]["mAP"])
    md = write_report(report, tmp_path)["md"].read_text()
    assert "Metric convention `field` (KRT and CSC" in md and "## Every metric convention" in md
    assert "| `joint:M=32` | `multilane` |" in md


def test_default_convention_is_mlcil_and_the_choice_changes_only_the_reading(tmp_path):
    ds = tied_dataset()
    reports = {m: run_benchmark(ds, BenchConfig(protocol="B0-C2", learners=("analytic:M=32",), seeds=(0,),
                                                 order="dataset", metrics=m), progress=False)
               for m in ("mlcil", "field")}
    assert BenchConfig().metrics == "mlcil" and reports["mlcil"]["config"]["metrics"] == "mlcil"
    for a, b in zip(reports["mlcil"]["runs"][0]["sessions"], reports["field"]["runs"][0]["sessions"]):
        for name, values in a["conventions"].items():
            assert values == pytest.approx(b["conventions"][name], nan_ok=True), name
        for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"):
            assert a[key] == pytest.approx(a["conventions"]["mlcil"][key], nan_ok=True)
            assert b[key] == pytest.approx(b["conventions"]["field"][key], nan_ok=True)
        assert a["excluded_classes"] == a["no_positive_classes"] == [1]
    md = write_report(reports["mlcil"], tmp_path)["md"].read_text()
    assert "Metric convention `mlcil`" in md and "## Every metric convention" not in md


def test_nan_is_shown_as_a_dash_and_stored_as_null(tmp_path):
    ds = make_dataset(n=200, d=6, L=4, seed=3)
    # nothing has a probability above 1: OP and OF1 are 0/0, NaN under `field` (as KRT and CSC)
    config = BenchConfig(protocol="B0-C2", learners=("joint:M=16",), seeds=(0,), order="dataset", metrics="field",
                         threshold=1.0)
    report = run_benchmark(ds, config, progress=False)
    last = report["runs"][0]["sessions"][-1]
    assert np.isnan(last["OP"]) and np.isnan(last["OF1"]) and last["OR"] == 0.0
    assert last["conventions"]["l3a"]["OF1"] == 0.0
    paths = write_report(report, tmp_path)
    again = json.loads(paths["json"].read_text())
    assert again["runs"][0]["sessions"][-1]["OF1"] is None
    row = next(line for line in paths["md"].read_text().splitlines() if line.startswith("| `joint:M=16` |"))
    assert row.split(" | ")[4] == "–"  # last OF1
    assert report_module.NAN_NOTE in paths["md"].read_text()


def test_partly_undefined_means_are_marked():
    assert report_module._cell({"mean": 0.5, "std": 0.1, "n_nan": 1}, 100.0, 3) == "50.0 ± 10.0†"
    assert report_module._cell({"mean": 0.5, "std": 0.1}, 100.0, 3) == "50.0 ± 10.0"
    assert report_module._cell({"mean": float("nan"), "std": float("nan"), "n_nan": 3}, 100.0, 3) == "–"


def test_unknown_convention_fails_before_learning():
    from mlcil.errors import MlcilError

    with pytest.raises(MlcilError, match="metrics: unknown convention 'krt'"):
        run_benchmark(make_dataset(n=60, d=4, L=2), BenchConfig(protocol="B0-C1", metrics="krt"), progress=False)


def test_versions_without_torch(monkeypatch):
    """The report says which torch ran, or that none was installed; reading it imports nothing."""
    import importlib.metadata
    import sys

    from mlcil.bench import runner

    real = importlib.metadata.version
    expected = sys.modules["torch"].__version__ if "torch" in sys.modules else real("torch")
    assert runner.versions()["torch"] == str(expected)

    def no_torch(name):
        if name == "torch":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", no_torch)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    versions = runner.versions()
    assert versions["torch"] is None and "torch" not in sys.modules
    from mlcil.version import __version__

    assert versions["mlcil"] == __version__
    line = report_module.versions_line(versions)
    assert line.startswith(f"mlcil {versions['mlcil']}, without torch, ") and "None" not in line
    assert report_module.versions_line({"mlcil": "0.1.0", "torch": "2.4.1", "machine": "Linux x86_64"}) == \
        "mlcil 0.1.0, torch 2.4.1, Linux x86_64"


def test_progress_counts_sessions_from_one_like_the_report():
    ds = make_dataset(n=200, d=6, L=4, seed=2)
    stream = Protocol("B0-C2", order="dataset").build(ds)

    class Bar:
        def __init__(self):
            self.postfix, self.n = [], 0

        def set_postfix_str(self, text):
            self.postfix.append(text)

        def update(self, k):
            self.n += k

    from mlcil.bench.runner import run_learner

    bar = Bar()
    run = run_learner("prototype", stream, 0, BenchConfig(protocol="B0-C2"), bar)
    assert bar.n == 2 and len(run["sessions"]) == 2
    assert [p.split(" ")[2] for p in bar.postfix] == ["t=1/2", "t=2/2"]
    md = report_module.markdown(run_benchmark(ds, BenchConfig(protocol="B0-C2", learners=("prototype",), seeds=(0,),
                                                              order="dataset"), progress=False))
    assert "| learner | t=1 | t=2 |" in md
