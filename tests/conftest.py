"""Session-wide test settings: one thread, bounded subprocesses, the shared datasets.

- **Threads.** Tests run small matrices, where a second BLAS/OpenMP thread only adds
  synchronisation (and, on a shared 2-core machine, contention). The test process uses
  ``MLCIL_TEST_THREADS`` threads (default 1) for torch and for the BLAS libraries loaded
  (threadpoolctl), and every process a test spawns inherits ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` set to the same number. A test that is
  about threads sets its own.
- **Subprocesses.** Tests that spawn a process go through :func:`run_process` (a timeout; a
  hung child is killed and the test fails saying so) or keep their own deadline
  (``tests/serve/helpers.py``). pytest-timeout (``timeout`` in pyproject.toml) is the ceiling
  for every test.
- **Tolerances.** Results computed in another process, with other thread counts or on
  another CPU agree to :data:`SCORE_RTOL` (relative to the largest score) and
  :data:`MAP_ATOL_POINTS`; :func:`assert_reproduced` is the comparison every such test uses
  (README, "Reproducibility"; measured by benchmarks/reproducibility.py).
- **Shared data.** :func:`shared_data` is ``$MLCIL_DATA`` or ``../shared/data``; without it
  a test skips locally and *fails* under ``CI=true``, as the PostgreSQL tests do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np  # (loaded before threadpoolctl, so that its BLAS is limited too)
import pytest
from threadpoolctl import threadpool_limits

try:  # the core needs no torch (tests/test_no_torch.py); the gradient learners' and encoders' tests do
    import torch
except ImportError:  # pragma: no cover - CI installs the test extra, which has torch
    torch = None

THREADS = int(os.environ.get("MLCIL_TEST_THREADS", "1"))
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
if torch is not None:
    torch.set_num_threads(THREADS)
_LIMITS = threadpool_limits(limits=THREADS)

#: Scores agree across processes, thread counts and CPUs to this fraction of max |score| (README,
#: "Reproducibility": measured worst case 1.9e-3, analytic on medical, whose ridge system has
#: condition number 4e7; 1e-6 on every well-conditioned problem measured).
SCORE_RTOL = 2e-3
#: ... and mAP to this many points (measured worst case 0.0065).
MAP_ATOL_POINTS = 0.01


def assert_reproduced(actual, desired, rtol: float = SCORE_RTOL, err_msg: str = "") -> None:
    """``actual`` equals ``desired`` up to ``rtol`` × max |desired| in every entry (same shape).

    For results (scores, statistics, weights) that crossed a process, thread-count or BLAS-kernel
    boundary, or that were computed in another order or batching, which a BLAS may round
    differently. Results computed the same way in one process are compared bit for bit instead.
    """
    actual = actual.cpu().numpy() if hasattr(actual, "cpu") else actual
    desired = desired.cpu().numpy() if hasattr(desired, "cpu") else desired
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"{err_msg}: shape {actual.shape} != {desired.shape}"
    scale = float(np.abs(desired).max(initial=0.0))
    np.testing.assert_allclose(actual, desired, rtol=0, atol=rtol * max(scale, np.finfo(np.float64).tiny),
                               err_msg=err_msg)


#: Seconds a spawned process may run before :func:`run_process` kills it and fails the test.
PROCESS_TIMEOUT = 120.0

SHARED_DATA = Path(os.environ.get("MLCIL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def run_process(args: list[str], timeout: float = PROCESS_TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, text=True)`` under a deadline.

    A child still running after ``timeout`` seconds is killed and the test fails with the
    command and the output it had written, instead of hanging the suite.
    """
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    try:
        return subprocess.run(args, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the child
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"process did not finish within {timeout:.0f} s and was killed: {' '.join(map(str, args))}\n"
                    f"stdout: {out[-2000:]}\nstderr: {err[-2000:]}")


@pytest.fixture
def python_process():
    """:func:`run_process` with this interpreter: ``python_process(["-m", "mlcil", ...])``."""
    return lambda args, **kwargs: run_process([sys.executable, *args], **kwargs)


@pytest.fixture
def shared_data() -> Path:
    """The shared real datasets (``$MLCIL_DATA`` or ../shared/data).

    Missing: a failure when ``CI=true`` (CI provides them), a skip otherwise.
    """
    if not (SHARED_DATA / "scene").is_dir():
        message = f"shared data not found at {SHARED_DATA} (set MLCIL_DATA to the shared datasets folder)"
        if in_ci():
            pytest.fail(message + "; CI=true, so this is an error, not a skip")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def clean():
    """Well-separated multi-label data (800 × 10, 4 labels), labels a deterministic function of X: the
    audit's tests plant errors in it (tests/decide/test_audit.py, tests/bench/test_audit.py)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 10)).astype(np.float32)
    Y = (X[:, :4] > 0.3).astype(np.uint8)
    return X, Y


def assert_audit_finds_planted_errors(noisy: np.ndarray, Y: np.ndarray, result) -> None:
    """An audit of ``noisy`` (``Y`` with planted errors) ranks and flags the planted rows far above chance,
    and its suspect tags are the planted cells more often than not (an :class:`mlcil.decide.audit.AuditResult`)."""
    from mlcil.decide.audit import audit_quality

    truth = (noisy != Y).any(axis=1)
    quality = audit_quality(truth, result)
    assert quality["precision_at_k"] > 0.6  # chance would be truth.mean() ~ 0.07
    assert quality["flag_recall"] > 0.6
    cells = noisy != Y
    assert (result.suspect & cells).sum() > 0.5 * (result.suspect.sum())
    assert ((result.missing(noisy) | result.wrong(noisy)) == result.suspect).all()


# ---- curl sessions printed in the docs (tests/test_docs.py, tests/serve/test_readme.py)

def curl_steps(code: str) -> list[tuple[str, str | None]]:
    """(shell command, printed reply or None), in order: a command is a ``curl`` line with its continuation
    lines (a trailing backslash, or an open quote); a ``# {...}`` line right after it is its printed reply."""
    steps: list[tuple[str, str | None]] = []
    command: list[str] = []

    def open_command() -> bool:
        text = "\n".join(command)
        return text.rstrip().endswith("\\") or text.count("'") % 2 == 1

    for line in code.splitlines():
        if line.startswith("# "):
            if command:
                steps.append(("\n".join(command), line[2:]))
                command = []
        elif line.startswith("curl ") and command and not open_command():
            steps.append(("\n".join(command), None))
            command = [line]
        elif line.strip():
            command.append(line)
    if command:
        steps.append(("\n".join(command), None))
    return steps


def close(expected, got, where: str) -> None:
    """``got`` equals the printed ``expected``; a printed float matches to its printed digits."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and expected.keys() == got.keys(), (where, expected, got)
        for key in expected:
            close(expected[key], got[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(expected) == len(got), (where, expected, got)
        for i, (e, g) in enumerate(zip(expected, got)):
            close(e, g, f"{where}[{i}]")
    elif isinstance(expected, float):
        digits = len(repr(expected).split(".")[1]) if "." in repr(expected) else 0
        assert abs(expected - got) <= 0.6 * 10 ** -digits, f"{where}: printed {expected}, got {got}"
    else:
        assert expected == got, f"{where}: printed {expected!r}, got {got!r}"
