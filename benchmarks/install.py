"""Install cost of the README's first set-up command: a fresh venv, ``pip install -e <checkout>``.

Prints seconds, venv size and whether torch came with it, for each checkout given (e.g. the commit
before torch became optional, and this one), side by side in one run:

    git worktree add /tmp/mlcil_old 337233b
    python benchmarks/install.py /tmp/mlcil_old .
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = Path(root, name)
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def measure(checkout: Path) -> dict:
    venv = Path(tempfile.mkdtemp(prefix="mlcil-install-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run(pip + ["--upgrade", "pip"], check=True)
        start = time.perf_counter()
        subprocess.run(pip + ["-e", str(checkout)], check=True)
        seconds = time.perf_counter() - start
        has_torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.util as u; "
                                    "print(u.find_spec('torch') is not None)"], capture_output=True, text=True).stdout
        return {"checkout": str(checkout), "seconds": seconds, "bytes": folder_bytes(venv),
                "torch": has_torch.strip() == "True"}
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkouts", nargs="+", type=Path)
    args = parser.parse_args()
    rows = [measure(c.resolve()) for c in args.checkouts]
    print("| checkout | install s | venv size | torch installed |")
    print("|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['checkout']} | {r['seconds']:.0f} | {r['bytes'] / 1e9:.2f} GB | {r['torch']} |")


if __name__ == "__main__":
    main()
