"""The README's quick start runs as written (``.ci/run`` also runs it in a venv without torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_quickstart_runs_and_prints_the_names(tmp_path):
    code = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_block.py"), "quickstart"], capture_output=True,
                          text=True, check=True).stdout
    assert "from mlcil import Analytic" in code and "model.learn(X2" in code
    out = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "['cat' 'dog' 'bird' 'fish' 'frog']" in out.stdout
    assert (tmp_path / "tagger.npz").exists()
