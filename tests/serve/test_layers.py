"""The service's layers hold: routes → domain service → repository (all SQL) and refresher; no torch.

Each check reads the source of src/mlcil/serve (and the serve benchmarks), so a statement or an
import in the wrong layer fails here, naming the file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "src" / "mlcil" / "serve"
SQL = re.compile(r"\b(SELECT\s+\S|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))")


def sources() -> dict[str, str]:
    return {str(p.relative_to(SERVE)): p.read_text() for p in sorted(SERVE.rglob("*.py"))}


def test_every_sql_statement_is_in_the_repository():
    found = {name: SQL.findall(text) for name, text in sources().items()}
    assert found["repository.py"], "the repository holds the SQL"
    assert {name for name, hits in found.items() if hits} == {"repository.py"}


@pytest.mark.parametrize("module", ["service.py", "journal.py", "refresher.py", "state.py", "model.py", "options.py",
                                    "export.py"])
def test_the_domain_knows_no_http_no_driver_and_no_command_line(module):
    text = sources()[module]
    for forbidden in ("fastapi", "starlette", "sqlite3", "psycopg", "click"):
        assert not re.search(rf"^\s*(from|import) {forbidden}\b", text, re.M), f"{module} imports {forbidden}"
    assert not re.search(r"[\"'`]--[a-z]", text), f"{module} holds command-line flag text"


def test_no_module_reads_another_modules_private_state():
    texts = {**sources(), **{p.name: p.read_text() for p in (ROOT / "benchmarks").glob("serve_*.py")}}
    for name, text in texts.items():
        for hit in re.finditer(r"\b(\w+)\._(state|model|fmap|lock|published|thread)\b", text):
            assert hit.group(1) == "self", f"{name}: {hit.group(0)}"


def test_routes_are_module_level_routers_and_create_app_is_small():
    from mlcil.serve.routes import ROUTERS

    paths = {(route.path, method) for router in ROUTERS for route in router.routes for method in route.methods}
    assert len(paths) == 12
    app_text = sources()["app.py"]
    body = app_text[app_text.index("def create_app"):app_text.index("def limit_threads")]
    assert "@app." not in body and len(body.splitlines()) < 60


def test_importing_the_app_imports_no_torch():
    code = ("import sys, mlcil.serve.app, mlcil.serve.service, mlcil.decide.audit, mlcil.ridge.calibrate; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'open_clip')); "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
