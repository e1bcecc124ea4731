"""One local Ray cluster (2 CPUs) for every Ray test of the session; the Ray tests fail, not skip,
under ``CI=true`` when the ``ray`` extra is missing."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest


def _ray_or_skip():
    if importlib.util.find_spec("ray") is None:  # not imported here: RayEngine imports it (on loopback)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("ray is not installed but CI=true: pip install -e '.[test]' installs it")
        pytest.skip("ray is not installed (pip install 'mlcil[ray]')")


@pytest.fixture(scope="session")
def ray_engine():
    """A RayEngine on a local 2-CPU cluster, started once and shut down after the session."""
    _ray_or_skip()
    from mlcil.engines import RayEngine

    engine = RayEngine(num_cpus=2, progress=False, object_store_memory=512 << 20)
    engine.start()
    # warm both workers up (each imports mlcil once), so the tests time their own work
    RayEngine(blocks=2, progress=False).accumulate(np.add.reduce, np.zeros((2, 1)), args=(0,))
    yield engine
    engine.close()
