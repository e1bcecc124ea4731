"""``mlcil serve``: key generation, errors as one line with exit code 2, the auth warning."""

from __future__ import annotations

import re

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


def test_startup_says_auth_is_disabled(tmp_path):
    from .helpers import start_server, stop

    proc, _ = start_server(f"sqlite:///{tmp_path}/t.db")
    stop(proc)
    assert "auth disabled" in proc.stderr_text
