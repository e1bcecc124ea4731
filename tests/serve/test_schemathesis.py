"""schemathesis over every operation of the OpenAPI spec: no 5xx, no hang, answers as documented.

Bounded: ``MLCIL_SCHEMATHESIS_EXAMPLES`` examples per operation (default 25), each request with a
10 s limit. The app runs on a SQLite file with two labels and taught examples, so ``suspicious``,
``/v1/model`` and ``predict`` reach their real code paths.
"""

from __future__ import annotations

import os
import signal
import tempfile

import numpy as np
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks

from mlcil.serve.app import create_app
from mlcil.serve.service import Options, Policy


def _app():
    folder = tempfile.mkdtemp(prefix="mlcil-schemathesis-")
    app = create_app(f"sqlite:///{folder}/t.db", options=Options(d=4, M=16), max_batch=8,
                     policy=Policy(background=False))
    c = TestClient(app)
    for name in ("cat", "dog"):
        c.post("/v1/labels", json={"name": name})
    rng = np.random.default_rng(0)
    c.post("/v1/teach", json={"examples": [{"id": f"e{i}", "vector": rng.normal(size=4).tolist(),
                                            "labels": {"cat": i % 2, **({"dog": 1} if i % 3 == 0 else {})}}
                                           for i in range(30)]})
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang("a request took over 10 s")


@schema.parametrize()
@settings(max_examples=int(os.environ.get("MLCIL_SCHEMATHESIS_EXAMPLES", 25)), deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        case.call_and_validate(checks=CHECKS)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
