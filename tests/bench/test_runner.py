"""The harness: its numbers equal an independent recomputation; its files are complete and strict."""

import json

import numpy as np

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
