"""The harness on the campaign protocol: the stream it builds, the joint's rows, memory bytes in the summary."""

import json

import numpy as np
from click.testing import CliRunner

from mlcil.bench import BenchConfig, run_benchmark
from mlcil.cli import main
from mlcil.protocols import Protocol

from ..learners.conftest import make_dataset


def test_campaign_reaches_the_protocol_and_memory_bytes_are_reported():
    ds = make_dataset(n=300, d=8, L=4, seed=2)
    config = BenchConfig(protocol="B0-C2", learners=("joint:M=16", "analytic:M=16,memory=labels",
                                                     "replay:epochs=1,hidden=8,per_class=3"),
                         seeds=(0,), order="dataset", campaign="disjoint")
    report = run_benchmark(ds, config, progress=False)
    stream = Protocol("B0-C2", order="dataset", seed=0, campaign="disjoint").build(ds)
    assert report["protocol"]["campaign"] == "disjoint"
    assert report["protocol"]["n_rows"] == sum(s.n for s in stream) == len(stream.joint_session(len(stream) - 1).index)
    runs = {r["learner"]: r for r in report["runs"]}
    assert [s["n_train"] for s in runs["joint:M=16"]["sessions"]] == \
        [len(stream.joint_session(t).index) for t in range(len(stream))]
    # label memory: one record per example (each appears once), 8 + ⌈T/8⌉ + ⌈L/8⌉ bytes each
    n = sum(s.n for s in stream)
    assert runs["analytic:M=16,memory=labels"]["summary"]["memory_bytes"] == n * (8 + 1 + 1)
    assert runs["joint:M=16"]["summary"]["memory_bytes"] == 0
    assert runs["replay:epochs=1,hidden=8,per_class=3"]["summary"]["memory_bytes"] > 0
    assert report["summary"]["analytic:M=16,memory=labels"]["memory_bytes"]["mean"] == n * 10


def test_cli_campaign_option(tmp_path):
    ds = make_dataset(n=200, d=6, L=4, seed=0)
    path = tmp_path / "d.npz"
    np.savez(path, X=ds.X, Y=ds.Y, label_names=np.array(ds.label_names), split=np.array(ds.split))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", str(path), "-p", "B0-C2", "-l", "analytic:M=16", "-s", "1",
                                       "--campaign", "disjoint", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["protocol"]["campaign"] == "disjoint"
    bad = CliRunner().invoke(main, ["bench", str(path), "--campaign", "once"])
    assert bad.exit_code == 2 and "once" in bad.output
