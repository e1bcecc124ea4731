"""The refresher's schedule: background work bounded to a share of a core however slow it runs."""

from __future__ import annotations

import time

from mlcil.serve.options import Policy
from mlcil.serve.refresher import CALIBRATION_SHARE, Refresher, next_start


def test_next_start_waits_the_minimum_or_share_times_the_duration():
    assert next_start(100.0, 0.1, 10.0, 19.0) == 110.0  # a fast job: the minimum interval after its end
    assert next_start(100.0, 2.0, 10.0, 19.0) == 138.0  # a slow one: 19 × 2 s after its 2 s, ≤ 1/20 of a core
    assert next_start(0.0, 0.0, 0.0, 19.0) == 0.0


class SlowCalibrations:
    """A service whose calibration is always due and takes ``took`` seconds of work."""

    def __init__(self, took: float) -> None:
        self.took, self.calibrations, self.failures = took, 0, []

    def latest_version(self) -> int:
        return 0

    def known_version(self) -> int:
        return 0

    def served_version(self) -> int:
        return 0

    def refresh(self) -> object:
        return None

    def calibration_due(self) -> bool:
        return True

    def calibrate(self) -> object:
        self.calibrations += 1
        time.sleep(self.took)
        return None

    def maybe_snapshot(self) -> bool:
        return False

    def background_failed(self, exc: BaseException) -> None:
        self.failures.append(exc)


def test_calibrations_take_at_most_their_share_of_a_core():
    """With a 10 ms minimum interval, a 50 ms calibration would run ~16 times a second without the share;
    with it, at most once per 19 × 50 ms."""
    service = SlowCalibrations(took=0.05)
    refresher = Refresher(service, Policy(calib_min_interval=0.01, poll_s=0.005))
    refresher.start()
    time.sleep(1.2)
    refresher.stop()
    assert not service.failures
    assert 1 <= service.calibrations <= 1 + int(1.2 / (CALIBRATION_SHARE * 0.05)) + 1, service.calibrations
