"""Hypothesis fuzzing of every endpoint: any body gives a 2xx or a JSON 4xx naming a field, never a 500."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcil.serve.app import create_app
from mlcil.serve.service import Options, Policy

D = 4
ENDPOINTS = [("POST", "/v1/teach"), ("POST", "/v1/predict"), ("POST", "/v1/labels"), ("POST", "/v1/forget"),
             ("POST", "/v1/lambda"),
             ("DELETE", "/v1/labels/{}"), ("PATCH", "/v1/labels/{}"), ("GET", "/v1/labels"), ("GET", "/v1/health"),
             ("GET", "/v1/labels/{}/suspicious"), ("GET", "/v1/model"), ("GET", "/metrics")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**40, 10**40) | st.sampled_from([0.5, 1.0])
vectors = st.lists(numbers, min_size=0, max_size=D + 2) | st.lists(st.just(0.25), min_size=D, max_size=D)
label_maps = st.dictionaries(st.sampled_from(["cat", "dog", "cow", ""]) | st.text(max_size=4),
                             st.sampled_from([0, 1, 2, -1, True, None, "1", 0.5]), max_size=3)
examples = st.fixed_dictionaries({}, optional={"vector": vectors, "labels": label_maps,
                                               "id": st.text(max_size=6) | st.sampled_from(["e0", "e1"]),
                                               "input": json_values})
good_vectors = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=D, max_size=D)
good_labels = st.dictionaries(st.sampled_from(["cat", "dog"]), st.sampled_from([0, 1]), max_size=2)
valid = {  # well-formed requests, so that the fuzzer also walks the paths past validation
    "/v1/teach": st.fixed_dictionaries({"examples": st.lists(st.fixed_dictionaries(
        {"vector": good_vectors, "labels": good_labels}, optional={"id": st.text(min_size=1, max_size=3)}),
        min_size=1, max_size=3)}),
    "/v1/predict": st.fixed_dictionaries({"vectors": st.lists(good_vectors, min_size=1, max_size=3)},
                                         optional={"threshold": st.floats(0, 1), "top_k": st.integers(1, 3)}),
    "/v1/labels": st.fixed_dictionaries({"name": st.sampled_from(["cat", "dog", "cow"])}),
    "/v1/forget": st.fixed_dictionaries({"ids": st.lists(st.sampled_from(["e0", "e1", "e2", "x"]), min_size=1,
                                                         max_size=2)}),
    "/v1/lambda": st.fixed_dictionaries({}, optional={"value": st.floats(0.01, 100)}),
}
bodies = {
    "/v1/teach": st.fixed_dictionaries({"examples": st.lists(examples, max_size=4)}) | json_values,
    "/v1/predict": st.fixed_dictionaries({}, optional={
        "vectors": st.lists(vectors, max_size=3), "inputs": st.lists(json_values, max_size=2),
        "threshold": numbers, "top_k": st.integers(-2, 5) | numbers}) | json_values,
    "/v1/labels": st.fixed_dictionaries({}, optional={"name": st.text(max_size=6) | json_values,
                                                      "description": json_values, "threshold": numbers}) | json_values,
    "/v1/forget": st.fixed_dictionaries({"ids": st.lists(st.text(max_size=4) | json_values, max_size=3)}) | json_values,
    "/v1/lambda": st.fixed_dictionaries({}, optional={"value": numbers, "lambdas": st.lists(numbers, max_size=3),
                                                      "sample": numbers}) | json_values,
}


@pytest.fixture(params=["empty", "labels-only", "taught"])
def fuzz_client(request, db_url):
    """A client on a new database (d unknown), on labels without examples (d fixed), or on a taught model."""
    d = D if request.param == "labels-only" else None
    c = TestClient(create_app(db_url, options=Options(d=d, M=16), max_batch=3,
                              policy=Policy(refresh_interval=0.0, poll_s=0.01)), raise_server_exceptions=False)
    if request.param == "empty":
        return c
    for name in ("cat", "dog"):
        c.post("/v1/labels", json={"name": name})
    if request.param == "labels-only":
        return c
    c.post("/v1/teach", json={"examples": [{"id": f"e{i}", "vector": np.random.default_rng(i).normal(size=D).tolist(),
                                            "labels": {"cat": i % 2}} for i in range(6)]})
    return c


def check(r) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        assert err["status"] == r.status_code and isinstance(err["field"], str) and err["field"]


@settings(max_examples=int(os.environ.get("MLCIL_FUZZ_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_endpoints_never_500(fuzz_client, data):
    method, path = data.draw(st.sampled_from(ENDPOINTS))
    if "{}" in path:
        path = path.format(data.draw(st.sampled_from(["cat", "dog"]) |
                                     st.text(alphabet="abcdogt%20._-/", min_size=1, max_size=6)))
    if method == "PATCH":
        body = data.draw(st.fixed_dictionaries({}, optional={"threshold": numbers | st.none(),
                                                             "description": json_values}) | json_values)
        check(fuzz_client.patch(path, content=json.dumps(body, allow_nan=True).encode(),
                                headers={"content-type": "application/json"}))
        return
    if method != "POST":
        check(fuzz_client.request(method, path))
        return
    body = data.draw(valid[path] if data.draw(st.booleans()) else bodies[path])
    raw = json.dumps(body, allow_nan=True).encode()
    if data.draw(st.integers(0, 9)) == 0:
        raw = raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))]  # truncated: malformed JSON
    check(fuzz_client.post(path, content=raw, headers={"content-type": "application/json"}))
    # the service is still consistent: health answers and the model predicts
    check(fuzz_client.get("/v1/health"))
