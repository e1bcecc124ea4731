"""``python -m mlcil`` and ``python -m mlcil.cli``: the same CLI as the ``mlcil`` script, every command."""

import sys

import pytest

from mlcil.cli import main

from .conftest import run_process

COMMANDS = sorted(main.commands)


def test_python_m_mlcil_lists_every_command():
    proc = run_process([sys.executable, "-m", "mlcil", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: mlcil ")
    for command in COMMANDS:
        assert f"  {command} " in proc.stdout
    version = run_process([sys.executable, "-m", "mlcil", "--version"])
    assert version.returncode == 0 and version.stdout.startswith("mlcil, version ")


@pytest.mark.parametrize("module", ["mlcil", "mlcil.cli"])
def test_python_m_runs_commands_defined_late_in_cli(module):
    """``audit`` is defined after the other commands; ``python -m mlcil.cli audit`` once said
    "No such command 'audit'" because the __main__ guard ran before its definition."""
    assert "audit" in COMMANDS
    proc = run_process([sys.executable, "-m", module, "audit", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert "--protocol" in proc.stdout and "--noise" in proc.stdout

