"""The README's curl session, run as printed against a live ``mlcil serve``: every printed reply matches.

Numbers in a printed reply match to its printed precision (the README rounds probabilities).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import start_server, stop

README = Path(__file__).resolve().parents[2] / "README.md"


def session() -> list[tuple[str, str | None]]:
    """(shell command, printed reply or None) in order, from the first bash block of '## Tagging service'."""
    text = README.read_text()
    section = text[text.index("## Tagging service"):]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[1]
    steps: list[tuple[str, str | None]] = []
    command: list[str] = []
    for line in block.splitlines():
        if line.startswith("# "):
            steps.append(("\n".join(command), line[2:]))
            command = []
        elif line.startswith("curl ") and command and not command[-1].endswith("\\") and \
                not command[-1].rstrip().endswith("[") and command[-1].count("'") % 2 == 0:
            steps.append(("\n".join(command), None))
            command = [line]
        else:
            command.append(line)
    if command:
        steps.append(("\n".join(command), None))
    return [s for s in steps if s[0].strip()]


def close(expected, got, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict) and expected.keys() == got.keys(), where
        for k in expected:
            close(expected[k], got[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(expected) == len(got), where
        for i, (e, g) in enumerate(zip(expected, got)):
            close(e, g, f"{where}[{i}]")
    elif isinstance(expected, float):
        digits = len(repr(expected).split(".")[1]) if "." in repr(expected) else 0
        assert abs(expected - got) <= 0.6 * 10 ** -digits, f"{where}: printed {expected}, got {got}"
    else:
        assert expected == got, f"{where}: printed {expected!r}, got {got!r}"


def test_the_readme_curl_session_runs_as_printed(tmp_path):
    if shutil.which("curl") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("curl is not installed but CI=true: the README's curl session cannot be checked")
        pytest.skip("curl is not installed")
    steps = session()
    assert sum(reply is not None for _, reply in steps) >= 5
    proc, url = start_server(f"sqlite:///{tmp_path / 'tagger.db'}")
    try:
        for command, reply in steps:
            out = subprocess.run(["bash", "-c", command.replace("localhost:8000", url.split("//")[1])],
                                 capture_output=True, text=True, timeout=60, cwd=tmp_path)
            assert out.returncode == 0, (command, out.stderr)
            if reply is not None:
                close(json.loads(reply), json.loads(out.stdout), command.splitlines()[0])
        assert (tmp_path / "model.npz").stat().st_size > 1000
    finally:
        stop(proc)
    assert "auth disabled" in proc.stderr_text  # said at start-up when no key is configured
