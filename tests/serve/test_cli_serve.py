"""``mlcil serve``: key generation, errors as one line with exit code 2, the auth warning."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from mlcil.cli import main
from mlcil.serve.auth import hash_key


def test_generate_key_prints_the_key_and_its_hashed_line():
    result = CliRunner().invoke(main, ["serve", "--generate-key", "write"])
    assert result.exit_code == 0, result.output
    key = re.search(r"key \(shown once.*\): (\S+)", result.output).group(1)
    assert f"keys-file line: {hash_key(key)} write" in result.output


def test_bad_database_url_and_keys_file_are_one_line_errors(tmp_path):
    for args, fragment in ((["--db", "sqlite:relative.db"], "expected sqlite:///path.db"),
                           (["--db", f"sqlite:///{tmp_path}/missing/t.db"], "does not exist"),
                           (["--keys", str(tmp_path / "none")], "cannot read")):
        result = CliRunner().invoke(main, ["serve", *args])
        assert result.exit_code == 2 and fragment in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    bad = tmp_path / "keys"
    bad.write_text("not-a-hash admin\n")
    result = CliRunner().invoke(main, ["serve", "--keys", str(bad), "--db", f"sqlite:///{tmp_path}/t.db"])
    assert result.exit_code == 2 and "SHA-256" in result.output


def test_restart_with_contradicting_flags_is_a_one_line_error(tmp_path):
    from mlcil.serve.service import Options, Policy, TaggingService
    from mlcil.serve.store import Store

    db = f"sqlite:///{tmp_path}/t.db"
    TaggingService(Store(db), Options(d=4, M=16), policy=Policy(background=False)).close()
    result = CliRunner().invoke(main, ["serve", "--db", db, "--features", "32"])
    assert result.exit_code == 2, result.output
    assert "--features 32" in result.output and "M = 16" in result.output
    result = CliRunner().invoke(main, ["serve", "--db", db, "--lam", "-1"])
    assert result.exit_code == 2 and "--lam" in result.output


def test_export_writes_a_learner_file(tmp_path):
    import numpy as np

    from mlcil.learners import Learner
    from mlcil.serve.service import Options, Policy, TaggingService
    from mlcil.serve.store import Store

    db = f"sqlite:///{tmp_path}/t.db"
    svc = TaggingService(Store(db), Options(M=16), policy=Policy(background=False))
    svc.create_label("a")
    X = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    svc.teach(list(X), [{"a": int(x[0] > 0)} for x in X], [None] * 12)
    svc.refresh()
    _, S = svc.predict(X)
    svc.close()
    result = CliRunner().invoke(main, ["serve", "--db", db, "--export", str(tmp_path / "m.npz")])
    assert result.exit_code == 0, result.output
    learner = Learner.load(tmp_path / "m.npz")
    assert list(learner.classes_) == ["a"]
    np.testing.assert_allclose(learner.scores(X), S, rtol=1e-5, atol=1e-6)


def test_export_with_examples_but_no_label_is_a_one_line_error(tmp_path):
    import numpy as np

    from mlcil.serve.service import Options, Policy, TaggingService
    from mlcil.serve.store import Store

    db = f"sqlite:///{tmp_path}/t.db"
    svc = TaggingService(Store(db), Options(M=16), policy=Policy(background=False))
    svc.create_label("cat")
    svc.teach([np.ones(3, np.float32)], [{"cat": 1}], ["x"])
    svc.forget_label("cat")
    svc.close()
    result = CliRunner().invoke(main, ["serve", "--db", db, "--export", str(tmp_path / "m.npz")])
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # a clean exit, no crash
    assert "no label" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.npz").exists()


def test_two_workers_share_the_port_and_the_database(tmp_path):
    import httpx

    from .helpers import start_server, stop

    proc, url = start_server(f"sqlite:///{tmp_path}/t.db", None, "--workers", "2", "--features", "16")
    try:
        assert httpx.post(url + "/v1/labels", json={"name": "a"}).status_code == 201
        v = httpx.post(url + "/v1/teach", json={"examples": [{"vector": [1.0, 0.0], "labels": {"a": 1}}]}).json()
        for _ in range(6):  # whichever worker answers has the write (or waits for it)
            r = httpx.post(url + "/v1/predict", json={"vectors": [[1.0, 0.0]], "min_version": v["version"]},
                           timeout=60)
            assert r.status_code == 200 and r.json()["version"] >= v["version"]
    finally:
        stop(proc)


def test_encoder_work_limits_reach_the_app_config(tmp_path, monkeypatch):
    import json
    import os

    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.update(json.loads(os.environ["MLCIL_SERVE_CONFIG"])))
    monkeypatch.delenv("MLCIL_SERVE_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["serve", "--db", f"sqlite:///{tmp_path}/t.db", "--max-input-chars", "100",
                                       "--max-request-chars", "1000"])
    assert result.exit_code == 0, result.output
    assert seen["max_input_chars"] == 100 and seen["max_request_chars"] == 1000
    result = CliRunner().invoke(main, ["serve", "--db", f"sqlite:///{tmp_path}/t.db", "--max-input-chars", "0"])
    assert result.exit_code == 2 and "--max-input-chars" in result.output
