"""Subprocess servers for the tests that need a real process (kill -9, two processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: str, port: int | None = None, *extra: str, timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """``mlcil serve`` in a subprocess; returns (process, base URL) once /v1/health answers.

    ``env``: extra environment variables (e.g. PYTHONPATH of another source tree)."""
    port = port or free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("MLCIL_SERVE_KEYS", None)
    proc = subprocess.Popen([sys.executable, "-m", "mlcil.cli", "serve", "--db", db, "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()}")
        try:
            if httpx.get(base + "/v1/health", timeout=1.0).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start in time")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr_text = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
