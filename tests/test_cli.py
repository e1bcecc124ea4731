"""The CLI: a real bench run on a small file, and every error path (one line, exit code 2)."""

import json
import os
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from mlcil.cli import main

from .conftest import run_process


def write_npz(path, X, Y, names=None, split=None):
    arrays = {"X": X, "Y": Y, "label_names": np.array(names or [f"l{i}" for i in range(Y.shape[1])])}
    if split is not None:
        arrays["split"] = np.array(split)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def small_npz(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 6)).astype(np.float32)
    Y = (X[:, :4] > 0.3).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return write_npz(tmp_path / "small.npz", X, Y, split=["train"] * 110 + ["test"] * 50)


def run(*args):
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [l for l in result.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bench_writes_reports(small_npz, tmp_path):
    out = tmp_path / "out"
    result = run("bench", str(small_npz), "-p", "B0-C2", "-l", "joint:M=32,finetune:epochs=2", "-s", "2",
                 "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert "| `joint:M=32` |" in result.output
    report = json.loads((out / "report.json").read_text())
    assert [r["learner"] for r in report["runs"]] == ["joint:M=32", "finetune:epochs=2"] * 2
    assert report["protocol"]["n_sessions"] == 2
    assert len(report["runs"][0]["sessions"]) == 2
    assert 0 <= report["summary"]["joint:M=32"]["last_mAP"]["mean"] <= 1
    md = (out / "report.md").read_text()
    assert "avg mAP" in md and "forgetting" in md
    assert (out / "map_per_session.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_file():
    assert_one_line_error(run("bench", "no/such/file.npz", "-q"), "no/such/file.npz")


def test_unknown_dataset_name():
    assert_one_line_error(run("bench", "scen-e-x", "-q"), "scen-e-x")


def test_bad_protocol(small_npz):
    assert_one_line_error(run("bench", str(small_npz), "-p", "B0C2", "-q"), "protocol", "B0C2")


def test_more_classes_than_exist(small_npz):
    assert_one_line_error(run("bench", str(small_npz), "-p", "B0-C9", "-q"), "9 classes", "only 4")


def test_unknown_learner(small_npz):
    assert_one_line_error(run("bench", str(small_npz), "-l", "jiont", "-q"), "jiont", "joint")


def test_bad_learner_option(small_npz):
    assert_one_line_error(run("bench", str(small_npz), "-l", "joint:M=abc", "-q"), "M=")


def test_labels_not_binary(tmp_path):
    path = write_npz(tmp_path / "bad.npz", np.zeros((4, 2), np.float32), np.array([[0, 2], [1, 0], [1, 1], [0, 1]]))
    assert_one_line_error(run("bench", str(path), "-q"), "binary")


def test_nan_features(tmp_path):
    X = np.zeros((4, 2), np.float32)
    X[2, 1] = np.nan
    path = write_npz(tmp_path / "nan.npz", X, np.eye(4, 2, dtype=np.uint8))
    assert_one_line_error(run("bench", str(path), "-q"), "NaN")


def test_malformed_arff_line(tmp_path):
    path = tmp_path / "bad.arff"
    path.write_text(
        "@relation 'bad: -C 1'\n@attribute y {0,1}\n@attribute f1 numeric\n@attribute f2 numeric\n@data\n"
        "1,0.5,0.2\n0,0.1\n"
    )
    assert_one_line_error(run("bench", str(path), "-q"), "bad.arff", ":7")


def test_help_explains_options():
    result = run("bench", "--help")
    assert result.exit_code == 0
    for option in ("--protocol", "--learners", "--n-seeds", "--seed ", "--order", "--few-shot", "--threshold", "--out"):
        assert option in result.output


def test_console_script_exit_code(tmp_path):
    """The installed entry point, as a user runs it: exit 2, no traceback."""
    env = dict(os.environ, MLCIL_DATA=str(tmp_path))
    proc = run_process([sys.executable, "-m", "mlcil.cli", "bench", str(tmp_path / "x.npz"), "-q"], env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_bench_calibration_and_decisions(small_npz, tmp_path):
    out = tmp_path / "cal"
    result = run("bench", str(small_npz), "-p", "B0-C2", "-l", "analytic:M=32,prototype", "-s", "1",
                 "--calibration", "isotonic", "--top-k", "1", "-q", "-o", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["calibration"] == "isotonic"
    last = report["runs"][1]["sessions"][-1]
    assert last["k"] == 1 and 0 <= last["ECE"] <= 1 and 0 <= last["CF1_tuned"] <= 1
    assert "## Decisions after the last session" in (out / "report.md").read_text()


def test_audit_writes_ranked_csv(small_npz, tmp_path):
    out = tmp_path / "audit"
    result = run("audit", str(small_npz), "-p", "B0-C2", "-l", "analytic:M=32", "--noise", "0.1,0.02", "-q",
                 "-o", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "audit.json").read_text())
    assert len(report["sessions"]) == 2 and report["sessions"][0]["quality"]["n_errors"] >= 0
    lines = (out / "session_0.csv").read_text().splitlines()
    assert lines[0].startswith("rank,row,quality,flagged")
    qualities = [float(line.split(",")[2]) for line in lines[1:]]
    assert qualities == sorted(qualities) and len(qualities) == report["sessions"][0]["n"]


def test_audit_kfold_and_errors(small_npz, tmp_path):
    result = run("audit", str(small_npz), "-p", "B0-C2", "--method", "kfold", "-l", "logistic", "--top", "5", "-q",
                 "-o", str(tmp_path / "k"))
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "k" / "session_1.csv").read_text().splitlines()) == 6
    bad = run("audit", str(small_npz), "-p", "B0-C2", "--noise", "lots")
    assert bad.exit_code == 2 and "--noise" in bad.output
    bad = run("audit", str(small_npz), "-p", "B0-C2", "-l", "prototype")
    assert bad.exit_code == 2 and "leave-one-out" in bad.output


def test_bench_metrics_convention(small_npz, tmp_path):
    from mlcil.metrics import CONVENTIONS

    out = tmp_path / "field"
    result = run("bench", str(small_npz), "-p", "B0-C2", "-l", "joint:M=32", "-s", "1", "--metrics", "field",
                 "-q", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "metric convention field" in result.output.splitlines()[0]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["metrics"] == "field"
    last = report["runs"][0]["sessions"][-1]
    assert last["CF1"] == last["conventions"]["field"]["CF1"]
    assert sorted(last["conventions"]) == sorted(CONVENTIONS)
    assert "Metric convention `field`" in (out / "report.md").read_text()
    # the default says nothing more on stdout, and records mlcil
    result = run("bench", str(small_npz), "-p", "B0-C2", "-l", "joint:M=32", "-s", "1", "-q", "-o", str(tmp_path / "d"))
    assert "metric convention" not in result.output
    assert json.loads((tmp_path / "d" / "report.json").read_text())["config"]["metrics"] == "mlcil"
    # every registered convention is a choice, and only those
    help_text = run("bench", "--help").output
    assert "--metrics" in help_text and "[mlcil|field|multilane|l3a]" in help_text.replace("\n", "")
    from mlcil.cli import bench

    choices = next(p for p in bench.params if p.name == "metrics").type.choices
    assert sorted(choices) == sorted(CONVENTIONS)
    bad = run("bench", str(small_npz), "--metrics", "krt", "-q")  # click's usage error, as for --order
    assert bad.exit_code == 2 and "'krt' is not one of 'mlcil', 'field', 'multilane', 'l3a'" in bad.output


def test_help_texts():
    """Help shows what the user types: percent signs as such, every option explained, the learner names."""
    from mlcil.learners import REGISTRY

    audit_help = run("audit", "--help").output
    assert "drop 5% of positives, flip 1% of" in " ".join(audit_help.split()) and "%%" not in audit_help
    serve_help = " ".join(run("serve", "--help").output.split())
    assert "--port INTEGER RANGE TCP port to listen on." in serve_help
    from mlcil.cli import main as group

    for name, command in group.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"mlcil {name} {param.opts[0]} has no help"
    bench_help = " ".join(run("bench", "--help").output.split())
    listed = bench_help.split("Learners: ", 1)[1].split(".", 1)[0].replace("- ", "-")  # click may wrap at a hyphen
    assert sorted(n.split(" (")[0] for n in listed.split(", ")) == sorted(REGISTRY) and len(REGISTRY) >= 4


def test_bench_progress_counts_sessions_from_one(small_npz, tmp_path, monkeypatch):
    """The progress bar names sessions as the report does: t=1 is the first."""
    from mlcil.bench import runner

    seen = []

    class Bar:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def set_postfix_str(self, text):
            seen.append(text)

        def update(self, k):
            pass

    monkeypatch.setattr(runner, "tqdm", Bar)
    out = tmp_path / "p"
    result = run("bench", str(small_npz), "-p", "B0-C2", "-l", "prototype", "-s", "1", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert [s.split(" ")[2] for s in seen] == ["t=1/2", "t=2/2"]
    assert "| learner | t=1 | t=2 |" in (out / "report.md").read_text()


def test_threshold_default_is_the_field_convention_and_cli_import_is_light():
    import subprocess

    from mlcil import cli, metrics

    assert cli.FIELD_THRESHOLD == metrics.FIELD_THRESHOLD
    assert next(p for p in cli.bench.params if p.name == "threshold").default == metrics.FIELD_THRESHOLD
    code = "import sys, mlcil.cli; print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_one_default_device_for_every_command():
    from mlcil.cli import DEFAULT_DEVICE, audit, bench, embed

    defaults = {c.name: next(p for p in c.params if p.name == "device").default for c in (bench, embed, audit)}
    assert defaults == {"bench": "cpu", "embed": "cpu", "audit": "cpu"} and DEFAULT_DEVICE == "cpu"
    for name in ("bench", "embed", "audit"):
        assert "--device TEXT Where torch work runs" in " ".join(run(name, "--help").output.split())


def test_seeds_are_values_with_seed_and_a_count_with_n_seeds(small_npz, tmp_path):
    def seeds(*args):
        out = tmp_path / "-".join(args)
        result = run("bench", str(small_npz), "-p", "B0-C2", "-l", "prototype", "-o", str(out), *args)
        assert result.exit_code == 0, result.output
        return json.loads((out / "report.json").read_text())["config"]["seeds"], result.output

    assert seeds("--seed", "4", "--seed", "1")[0] == [4, 1]  # values, as `mlcil audit --seed`
    assert seeds("--n-seeds", "2")[0] == [0, 1]
    assert seeds("-s", "1")[0] == [0]
    values, output = seeds("--seeds", "2")  # the old spelling still counts, and says what to use
    assert values == [0, 1] and "--seeds is deprecated" in output and "--n-seeds 2" in output
    assert "seeds 0, 1" in output
    both = run("bench", str(small_npz), "--seed", "1", "--n-seeds", "2")
    assert both.exit_code == 2 and "either --seed (values) or --n-seeds (a count)" in both.output
    assert "--seeds" not in " ".join(run("bench", "--help").output.split()).replace("--n-seeds", "")
