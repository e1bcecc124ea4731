"""The refresher: one background thread per service process that keeps the published model current.

It follows the database (woken by this process's commits, and polling every ``poll_s`` for other
processes'), and when the database is ahead of the published model it asks the service to catch up
and publish — at most once per max(``refresh_interval``, :data:`REFRESH_SHARE` × the last refresh's
duration), so refreshing takes at most 1/(1 + REFRESH_SHARE) of a core while writes keep coming.
Between refreshes it recalibrates when due — at most once per max(``calib_min_interval``,
:data:`CALIBRATION_SHARE` × the last calibration's duration) — and snapshots.
The thread runs at a lower CPU priority (:data:`NICE`): predictions and teaches get the cores first.
Failures are counted and logged, never raised: the thread survives anything.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from mlcil.serve.options import Policy

log = logging.getLogger("mlcil.serve")

#: the refresher waits at least this many times its last refresh's duration before the next one
REFRESH_SHARE = 4.0
#: and this many times its last calibration's before the next one (≤ 1/20 of a core): a calibration's
#: leave-one-out pass over the stored examples took a quarter of the server's CPU at 40 teaches/s with the
#: 10 s minimum alone, and predictions paid for it (benchmarks/serve_load.py)
CALIBRATION_SHARE = 19.0


def next_start(last_end: float, took: float, minimum: float, share: float) -> float:
    """When a background job whose last run ended at ``last_end`` and took ``took`` seconds may start again:
    max(``minimum``, ``share`` × ``took``) seconds after that end, so that it takes at most 1/(1 + ``share``) of a
    core however slow it runs (monotonic seconds). The refreshes' rule and the calibrations'."""
    return last_end + max(minimum, share * took)


#: the refresher thread runs at this niceness above the process's (Linux: per thread), so that on a busy
#: machine requests get the CPU first (+5: a third of a normal thread's share under contention; +10, a tenth,
#: starved refreshes for minutes on a machine at load 13)
NICE = 5


def lower_priority(nice: int = NICE) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux; elsewhere, or when refused, nothing)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError):  # no per-thread priority here: the schedule's bound still holds
        pass


class Refreshable(Protocol):
    """What the refresher drives (a :class:`~mlcil.serve.service.TaggingService`)."""

    def latest_version(self) -> int: ...
    def known_version(self) -> int: ...
    def served_version(self) -> int: ...
    def refresh(self) -> object: ...
    def calibration_due(self) -> bool: ...
    def calibrate(self) -> object: ...
    def maybe_snapshot(self) -> bool: ...
    def background_failed(self, exc: BaseException) -> None: ...


class Refresher:
    """The background thread of one service: :meth:`start`, :meth:`wake` after a commit, :meth:`stop`."""

    def __init__(self, service: Refreshable, policy: Policy) -> None:
        self.service = service
        self.policy = policy
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_refresh = 0.0
        self._refresh_took = 0.0
        self._last_calibration = 0.0
        self._calibration_took = 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    @property
    def thread_id(self) -> int | None:
        """The native id of the background thread (None before :meth:`start`)."""
        return None if self._thread is None else self._thread.native_id

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlcil-refresher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the database now (a write of this process committed, or a client waits for a version)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread (waits for the refresh in progress, up to ``timeout``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def _refresh(self) -> None:
        start = time.perf_counter()
        self.service.refresh()
        self._last_refresh = time.monotonic()
        self._refresh_took = time.perf_counter() - start

    def _run(self) -> None:
        p = self.policy
        lower_priority()
        while not self._stop.is_set():
            self._wake.wait(p.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                served = self.service.served_version()
                # after this process's own commit it knows the new version: no read; otherwise one statement
                # (another process's writes)
                if self.service.known_version() > served or self.service.latest_version() > served:
                    # at most one refresh per interval, and never more than a fifth of a core on refreshing
                    wait = next_start(self._last_refresh, self._refresh_took, p.refresh_interval,
                                      REFRESH_SHARE) - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        return
                    self._refresh()
                if p.calibrate and time.monotonic() >= next_start(
                        self._last_calibration, self._calibration_took, p.calib_min_interval, CALIBRATION_SHARE):
                    self._last_calibration = time.monotonic()
                    if self.service.calibration_due():
                        try:
                            self.service.calibrate()
                        finally:
                            end = time.monotonic()
                            self._calibration_took, self._last_calibration = end - self._last_calibration, end
                self.service.maybe_snapshot()
            except Exception as exc:  # noqa: BLE001 - the thread must survive any failure; counted and logged
                self.service.background_failed(exc)
                self._stop.wait(min(5.0, 10 * p.poll_s))
