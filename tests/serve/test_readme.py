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

from ..conftest import close, curl_steps
from .helpers import start_server, stop

README = Path(__file__).resolve().parents[2] / "README.md"


def session() -> list[tuple[str, str | None]]:
    """(shell command, printed reply or None) in order, from the first bash block of '## Tagging service'."""
    text = README.read_text()
    section = text[text.index("## Tagging service"):]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[1]
    return curl_steps(block)


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
