"""Every code block of the documentation (README.md and docs/**/*.md) runs in CI, or says why it does not.

The convention, written in the Markdown source just above a fenced block (the line before the opening
fence, an HTML comment, so the rendered page does not show it):

* no marker — the block runs:
    * ```` ```python ```` blocks each run as a script (a fresh ``python`` process);
    * ```` ```bash ````, ```` ```sh ```` and ```` ```console ```` blocks run with ``bash -e`` (the ``mlcil``
      command is this environment's);
  all blocks of one page run in order in one temporary folder of their own (a block may use a file an
  earlier block wrote), with ``MLCIL_DATA`` set to the shared datasets, one BLAS thread and a deadline.
  Keep them small (a few seconds each): the whole file should run in about a minute.
* ``<!-- ci: curl session, ... -->`` — a bash block of ``curl`` calls against ``localhost:8000`` (or
  ``127.0.0.1:8000``), each
  optionally followed by its printed reply as a comment line ``# {...}``: run against a live
  ``mlcil serve`` on a free loopback port, on a new SQLite database, and every printed reply compared
  with the real one (numbers to their printed precision).
* ``<!-- ci: REASON -->`` — not run by this test; REASON (at least three words) says why, or which CI
  step runs it (e.g. ``<!-- ci: run by .ci/run (core install in a fresh venv) -->``).
* ``<!-- block: NAME -->`` — a README block that ``.ci/readme_block.py NAME`` prints; it runs here like
  a block without a marker (and ``.ci/run`` runs the quick start on a core install without torch).

Fences in other languages (```` ```text ````, ```` ```json ````, none) are output or layout, not code, and
need no marker. ``benchmarks/results_page.py --check`` must pass (the results page and the README's
headline table equal what the committed result files generate), and the site must build with
``mkdocs build --strict``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import SHARED_DATA, close, curl_steps, in_ci, run_process

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
RUNNABLE = {"python": "python", "bash": "bash", "sh": "bash", "console": "bash", "shell": "bash"}
MARKER = re.compile(r"^<!--\s*(?P<kind>ci|block):\s*(?P<text>.*?)\s*-->$")
BLOCK_TIMEOUT = 180.0


@dataclass
class Block:
    page: Path
    line: int            # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None   # the text after "ci:" of the marker above, if any

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        """'run', 'curl', 'skip' or 'text' (not code)."""
        if self.lang not in RUNNABLE:
            return "text"
        if self.marker is None:
            return "run"
        return "curl" if self.marker.startswith("curl session") else "skip"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, each with the ``ci:`` marker on the line above it."""
    lines = page.read_text().split("\n")
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        code = "\n".join(line[len(indent):] for line in lines[i + 1:j]) + "\n"
        marker = None
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0 and (mm := MARKER.match(lines[k].strip())) and mm.group("kind") == "ci":
            marker = mm.group("text")
        out.append(Block(page, i + 1, lang, code, marker))
        i = j + 1
    return out


ALL = [b for page in PAGES for b in blocks(page)]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_pages_have_code_and_every_block_runs_or_says_why():
    assert len(PAGES) >= 15 and (ROOT / "docs" / "index.md") in PAGES
    kinds = [b.kind for b in ALL]
    assert kinds.count("run") >= 10 and kinds.count("curl") >= 2, kinds
    bad = [f"{b.where}: '<!-- ci: {b.marker} -->' gives no reason (at least three words)"
           for b in ALL if b.kind == "skip" and len(b.marker.split()) < 3]
    bad += [f"{b.where}: a {b.lang} block marked as a curl session has no curl call"
            for b in ALL if b.kind == "curl" and "curl " not in b.code]
    assert not bad, "\n".join(bad)


def test_the_readme_quickstart_is_the_block_readme_block_prints():
    out = run_process([sys.executable, str(ROOT / ".ci" / "readme_block.py"), "quickstart"])
    assert out.returncode == 0, out.stderr
    quick = [b for b in blocks(ROOT / "README.md") if "from mlcil import Analytic" in b.code]
    assert quick and quick[0].kind == "run" and quick[0].code.strip() == out.stdout.strip()


def test_ci_runs_the_readme_s_set_up_commands_as_written():
    # .ci/run says `python -m pip install --quiet ...` where the README says `pip install ...`
    ci = [" ".join(line.replace("python -m pip", "pip").replace("--quiet ", "").split())
          for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    readme = [b for b in blocks(ROOT / "README.md") if b.kind == "skip" and "run by .ci/run" in b.marker]
    commands = [line.split("#")[0].strip() for b in readme for line in b.code.splitlines() if line.strip()]
    assert 'pip install -e ".[test]" && python -m pytest' in commands
    for command in commands:
        if command.startswith("pip install -e . &&"):
            command = "pip install -e ."  # the bench half is run with one seed by docs/getting-started.md
        assert any(command in line for line in ci), f".ci/run does not run the README's `{command}`"


def environment(workdir: Path) -> dict[str, str]:
    env = {**os.environ, "MLCIL_DATA": str(SHARED_DATA), "MLCIL_CACHE": str(workdir / ".cache"),
           "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("MLCIL_SERVE_KEYS", None)
    return env


def needs_data() -> None:
    if not (SHARED_DATA / "scene").is_dir():
        message = f"shared data not found at {SHARED_DATA} (set MLCIL_DATA)"
        if in_ci():
            pytest.fail(message + "; CI=true, so this is an error, not a skip")
        pytest.skip(message)


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.kind in ("run", "curl") for b in blocks(p))], ids=page_id)
def test_the_page_s_code_runs(page, tmp_path):
    needs_data()
    env = environment(tmp_path)
    for block in blocks(page):
        if block.kind == "run":
            args = [sys.executable, "-c", block.code] if block.lang == "python" else \
                ["bash", "-e", "-o", "pipefail", "-c", block.code]
            out = run_process(args, cwd=tmp_path, env=env, timeout=BLOCK_TIMEOUT)
            assert out.returncode == 0, f"{block.where} failed:\n{block.code}\nstdout: {out.stdout[-2000:]}\n" \
                                        f"stderr: {out.stderr[-3000:]}"
        elif block.kind == "curl":
            run_curl_session(block, tmp_path, env)


# ---------------------------------------------------------------- curl sessions against a live server

def run_curl_session(block: Block, workdir: Path, env: dict[str, str]) -> None:
    if not in_ci():
        pytest.importorskip("fastapi")
    if shutil.which("curl") is None:
        if in_ci():
            pytest.fail(f"{block.where}: curl is not installed but CI=true")
        pytest.skip("curl is not installed")
    from .serve.helpers import start_server, stop

    steps = curl_steps(block.code)
    assert any(reply is not None for _, reply in steps), f"{block.where}: a curl session prints no reply to check"
    session_dir = workdir / f"serve-{block.line}"
    session_dir.mkdir()
    proc, url = start_server(f"sqlite:///{session_dir / 'tagger.db'}")
    try:
        for command, reply in steps:
            here = url.split("//")[1]
            command_here = command.replace("localhost:8000", here).replace("127.0.0.1:8000", here)
            out = run_process(["bash", "-e", "-c", command_here],
                              cwd=session_dir, env=env, timeout=60)
            assert out.returncode == 0, (block.where, command, out.stderr)
            if reply is not None:
                close(json.loads(reply), json.loads(out.stdout), f"{block.where}: {command.splitlines()[0]}")
    finally:
        stop(proc)


def test_curl_steps_split_commands_and_replies():
    code = ("curl -s a -d '{\"x\": [\n  1]}'\n# {\"ok\": 1}\ncurl -s b \\\n  -d '{}'\ncurl -s c\n# [1.5]\n")
    assert curl_steps(code) == [("curl -s a -d '{\"x\": [\n  1]}'", '{"ok": 1}'), ("curl -s b \\\n  -d '{}'", None),
                                ("curl -s c", "[1.5]")]
    close({"p": 0.88}, {"p": 0.8812}, "w")
    with pytest.raises(AssertionError):
        close({"p": 0.88}, {"p": 0.8912}, "w")


# ---------------------------------------------------------------- generated results, site build

def test_the_results_page_and_the_readme_table_are_up_to_date():
    out = run_process([sys.executable, str(ROOT / "benchmarks" / "results_page.py"), "--check"])
    assert out.returncode == 0, out.stderr + out.stdout


def test_the_results_page_fails_clearly_on_a_missing_result_file(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import results_page
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    monkeypatch.setattr(results_page, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="missing result file benchmarks/results/sweep/sweep.json"):
        results_page.load(results_page.SWEEP)
    assert results_page.main(["--check"]) == 2


def test_the_site_builds_strictly(tmp_path):
    if shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists():
        if in_ci():
            pytest.fail("mkdocs is not installed but CI=true (the test extra pins it)")
        pytest.skip("mkdocs is not installed")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    out = run_process([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                      env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:] + out.stdout[-2000:]
    assert (tmp_path / "site" / "results" / "index.html").is_file()
