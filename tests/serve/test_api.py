"""The HTTP API through FastAPI's TestClient: the happy path, every bad input, keys, limits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlcil.serve.app import create_app
from mlcil.serve.auth import KeyRing, hash_key
from mlcil.serve.service import Options

D = 8
JSON = {"content-type": "application/json"}


def client(url: str, **kw) -> TestClient:
    return TestClient(create_app(url, options=Options(M=32, seed=1), **kw))


@pytest.fixture
def api(db_url):
    """A client on a fresh database with labels cat, dog and 40 taught examples (d = 8)."""
    c = client(db_url, max_batch=100, max_body_bytes=200_000)
    assert c.post("/v1/labels", json={"name": "cat", "description": "felines"}).status_code == 201
    assert c.post("/v1/labels", json={"name": "dog", "threshold": 0.3}).status_code == 201
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, D))
    r = c.post("/v1/teach", json={"examples": [
        {"id": f"e{i}", "vector": x.tolist(), "labels": {"cat": int(x[0] > 0), **({"dog": 1} if x[1] > 0.5 else {})}}
        for i, x in enumerate(X)]})
    assert r.status_code == 200, r.text
    c.X = X
    return c


def test_create_teach_predict_forget(api):
    labels = api.get("/v1/labels").json()
    assert labels["version"] == 3
    cat, dog = labels["labels"]
    assert (cat["name"], cat["description"], cat["positives"] + cat["negatives"]) == ("cat", "felines", 40)
    assert dog["negatives"] == 0 and dog["positives"] == int((api.X[:, 1] > 0.5).sum())
    r = api.post("/v1/predict", json={"vectors": api.X[:10].tolist()}).json()
    assert r["version"] == 3 and len(r["predictions"]) == 10
    decided_cat = np.array(["cat" in p["labels"] for p in r["predictions"]])
    assert (decided_cat == (api.X[:10, 0] > 0)).mean() >= 0.8  # learnt something on its training rows
    for p in r["predictions"]:  # dog uses its own threshold 0.3, cat the default 0.5
        assert ("dog" in p["labels"]) == (min(max(p["scores"]["dog"], 0), 1) >= 0.3)
    top = api.post("/v1/predict", json={"vectors": api.X[:3].tolist(), "top_k": 1}).json()
    assert all(len(p["labels"]) == 1 for p in top["predictions"])
    everything = api.post("/v1/predict", json={"vectors": api.X[:3].tolist(), "threshold": 0.0}).json()
    assert all(sorted(p["labels"]) == ["cat", "dog"] for p in everything["predictions"])
    r = api.post("/v1/forget", json={"ids": ["e0", "e1"]})
    assert r.status_code == 200 and r.json()["version"] == 4
    assert api.get("/v1/health").json()["examples"] == 38
    r = api.delete("/v1/labels/dog")
    assert r.status_code == 200 and r.json()["version"] == 5
    p = api.post("/v1/predict", json={"vectors": api.X[:1].tolist()}).json()
    assert list(p["predictions"][0]["scores"]) == ["cat"] and p["version"] == 5


def bad_requests():
    """(method, path, body (JSON text), status, field) for every kind of bad input."""
    ok = [0.5] * D
    ex = lambda **kw: json.dumps({"examples": [{"vector": ok, "labels": {"cat": 1}, **kw}]})  # noqa: E731
    return [
        ("post", "/v1/teach", ex(vector=[0.5] * (D - 1)), 422, "examples[0].vector"),
        ("post", "/v1/teach", ex(vector=[0.5] * (D - 1) + [float("nan")]), 422, "examples[0].vector[7]"),
        ("post", "/v1/teach", ex(vector=[float("inf")] + ok[1:]), 422, "examples[0].vector[0]"),
        ("post", "/v1/teach", ex(vector=[1e39] + ok[1:]), 422, "examples[0].vector[0]"),
        ("post", "/v1/teach", ex(vector=["x"] + ok[1:]), 422, "examples[0].vector[0]"),
        ("post", "/v1/teach", ex(labels={"cow": 1}), 422, "examples[0].labels.cow"),
        ("post", "/v1/teach", ex(labels={"cat": 2}), 422, "examples[0].labels.cat"),
        ("post", "/v1/teach", ex(id="e3"), 409, "examples[0].id"),
        ("post", "/v1/teach", ex(input="raw text"), 422, "examples[0].vector"),
        ("post", "/v1/teach", json.dumps({"examples": [{"input": "raw", "labels": {}}]}), 422, "examples[0].input"),
        ("post", "/v1/teach", json.dumps({"examples": []}), 422, "examples"),
        ("post", "/v1/teach", json.dumps({"examples": [{"vector": ok}] * 101}), 413, "examples"),
        ("post", "/v1/teach", json.dumps({"examples": [{"vector": [0.5] * 50000}]}), 413, "body"),
        ("post", "/v1/teach", '{"examples": [', 400, "body"),
        ("post", "/v1/teach", "[]", 422, "body"),
        ("post", "/v1/teach", json.dumps({"example": []}), 422, "examples"),
        ("post", "/v1/labels", json.dumps({"name": "cat"}), 409, "name"),
        ("post", "/v1/labels", json.dumps({"name": ""}), 422, "name"),
        ("post", "/v1/labels", json.dumps({"name": " cat"}), 422, "name"),
        ("post", "/v1/labels", json.dumps({"name": "x", "threshold": 2}), 422, "threshold"),
        ("delete", "/v1/labels/cow", None, 404, "name"),
        ("patch", "/v1/labels/cow", json.dumps({"threshold": 0.2}), 404, "name"),
        ("patch", "/v1/labels/cat", json.dumps({}), 422, "body"),
        ("patch", "/v1/labels/cat", json.dumps({"threshold": 3}), 422, "threshold"),
        ("post", "/v1/forget", json.dumps({"ids": ["e1", "nope"]}), 404, "ids[1]"),
        ("post", "/v1/forget", json.dumps({"ids": []}), 422, "ids"),
        ("post", "/v1/lambda", json.dumps({"value": 0}), 422, "value"),
        ("post", "/v1/lambda", '{"value": NaN}', 422, "value"),
        ("post", "/v1/lambda", json.dumps({"lambdas": [1.0, -1.0]}), 422, "lambdas[1]"),
        ("post", "/v1/lambda", json.dumps({"sample": 2}), 422, "sample"),
        ("post", "/v1/predict", json.dumps({"vectors": [ok, ok[:3]]}), 422, "vectors[1]"),
        ("post", "/v1/predict", json.dumps({"vectors": []}), 422, "vectors"),
        ("post", "/v1/predict", json.dumps({"vectors": [ok], "top_k": 0}), 422, "top_k"),
        ("post", "/v1/predict", json.dumps({"vectors": [ok], "threshold": -1}), 422, "threshold"),
        ("post", "/v1/predict", json.dumps({"inputs": ["raw"]}), 422, "inputs[0]"),
        ("post", "/v1/predict", json.dumps({}), 422, "vectors"),
        ("get", "/v1/nothing", None, 404, "path"),
    ]


@pytest.mark.parametrize("method,path,body,status,field", bad_requests(),
                         ids=[f"{r[1]}:{r[3]}:{r[4]}:{i}" for i, r in enumerate(bad_requests())])
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(api, method, path, body, status, field):
    before = api.get("/v1/labels").json()
    before_health = api.get("/v1/health").json()
    kw = {"content": body, "headers": JSON} if body is not None else {}
    r = api.request(method.upper(), path, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["field"] == field and err["status"] == status and err["message"]
    assert api.get("/v1/labels").json() == before
    assert api.get("/v1/health").json() == before_health


def test_encoder_hook_takes_raw_inputs(db_url):
    def encode(items: list) -> np.ndarray:  # a trivial encoder: length and vowel count of a string
        if not all(isinstance(s, str) for s in items):
            raise ValueError("inputs must be strings")
        return np.array([[len(s), sum(ch in "aeiou" for ch in s), 1.0] for s in items], dtype=np.float32)

    c = client(db_url, encoder=encode)
    c.post("/v1/labels", json={"name": "long"})
    words = ["a", "bb", "ccc", "a long one", "another long sentence", "xy"]
    r = c.post("/v1/teach", json={"examples": [{"input": w, "labels": {"long": int(len(w) > 5)}} for w in words]})
    assert r.status_code == 200 and c.get("/v1/health").json()["dim"] == 3
    r = c.post("/v1/predict", json={"inputs": ["tiny", "a rather long text"]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    r = c.post("/v1/predict", json={"inputs": [3]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "inputs[0]"
    mixed = [{"input": "abc", "labels": {}}, {"vector": [1.0, 0.0, 1.0], "labels": {"long": 0}}]
    assert c.post("/v1/teach", json={"examples": mixed}).status_code == 200


def test_api_keys_and_scopes(db_url):
    keys = {"r": "read-key", "w": "write-key", "a": "admin-key"}
    ring = KeyRing.parse(f"{hash_key(keys['r'])} read reader\n{hash_key(keys['w'])} write\n"
                         f"sha256:{hash_key(keys['a'])} admin root # comment", "test")
    c = client(db_url, keys=ring)
    as_ = lambda k: {"authorization": f"Bearer {keys[k]}"}  # noqa: E731
    assert c.get("/v1/health").status_code == 200
    assert c.get("/v1/labels").status_code == 401
    assert c.get("/v1/labels", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/v1/labels", json={"name": "x"}, headers=as_("r")).status_code == 403
    r = c.post("/v1/labels", json={"name": "x"}, headers=as_("w"))
    assert r.status_code == 201
    teach = {"examples": [{"id": "k1", "vector": [1.0, 2.0], "labels": {"x": 1}}]}
    assert c.post("/v1/teach", json=teach, headers=as_("r")).status_code == 403
    assert c.post("/v1/teach", json=teach, headers=as_("w")).status_code == 200
    assert c.post("/v1/predict", json={"vectors": [[1.0, 2.0]]}, headers={"x-api-key": keys["r"]}).status_code == 200
    r = c.post("/v1/forget", json={"ids": ["k1"]}, headers=as_("w"))
    assert r.status_code == 403 and r.json()["error"]["field"] == "authorization"
    assert c.delete("/v1/labels/x", headers=as_("w")).status_code == 403
    assert c.post("/v1/forget", json={"ids": ["k1"]}, headers=as_("a")).status_code == 200
    assert c.delete("/v1/labels/x", headers=as_("a")).status_code == 200
    assert c.get("/metrics").status_code == 401 and c.get("/metrics", headers=as_("r")).status_code == 200
    with pytest.raises(Exception, match="SHA-256"):
        KeyRing.parse("plain-text-key admin", "test")


def test_keys_from_file_and_environment(tmp_path):
    f = tmp_path / "keys"
    f.write_text(f"{hash_key('k1')} read\n")
    ring = KeyRing.load(f, env={"MLCIL_SERVE_KEYS": f"{hash_key('k2')} admin ops; {hash_key('k3')} write"})
    assert [(k.scope, k.name) for k in ring.keys] == [("read", "key1"), ("admin", "ops"), ("write", "key2")]
    assert ring.scope_of("k2").scope == "admin" and ring.scope_of("k4") is None


def test_cors_is_off_by_default_and_on_when_asked(db_url):
    pre = {"origin": "https://example.org", "access-control-request-method": "POST"}
    c = client(db_url)
    assert "access-control-allow-origin" not in c.options("/v1/predict", headers=pre).headers
    c2 = client(db_url, cors_origins=["https://example.org"])
    assert c2.options("/v1/predict", headers=pre).headers["access-control-allow-origin"] == "https://example.org"


def test_metrics_and_openapi(api):
    api.post("/v1/predict", json={"vectors": api.X[:2].tolist()})
    text = api.get("/metrics").text
    assert 'mlcil_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in text
    assert "mlcil_model_version 3.0" in text and "mlcil_request_seconds_bucket" in text
    assert "mlcil_state_bytes" in text and "mlcil_examples 40.0" in text
    spec = api.get("/openapi.json").json()
    assert {"/v1/teach", "/v1/predict", "/v1/labels", "/v1/forget", "/v1/health"} <= set(spec["paths"])
    assert api.get("/docs").status_code == 200


def test_predict_before_any_example_scores_zero(db_url):
    c = TestClient(create_app(db_url, options=Options(d=3, M=8)))
    assert c.post("/v1/predict", json={"vectors": [[1.0, 2.0, 3.0]]}).json()["predictions"][0]["scores"] == {}
    c.post("/v1/labels", json={"name": "a"})
    r = c.post("/v1/predict", json={"vectors": [[1.0, 2.0, 3.0]]})
    assert r.status_code == 200 and r.json()["predictions"][0] == {"labels": [], "scores": {"a": 0.0}}
    c.post("/v1/teach", json={"examples": [{"id": "x", "vector": [1.0, 0.0, 0.0], "labels": {"a": 1}}]})
    c.post("/v1/forget", json={"ids": ["x"]})  # back to no example: G = 0, W = B/λ = 0
    r = c.post("/v1/predict", json={"vectors": [[1.0, 2.0, 3.0]]})
    assert r.status_code == 200 and r.json()["predictions"][0]["scores"]["a"] == pytest.approx(0.0, abs=1e-9)


def test_per_label_threshold_can_be_changed(api):
    vectors = api.X[:20].tolist()
    before = api.post("/v1/predict", json={"vectors": vectors}).json()
    r = api.patch("/v1/labels/cat", json={"threshold": 0.95, "description": "cats only"})
    assert r.status_code == 200 and r.json()["version"] == 4
    after = api.post("/v1/predict", json={"vectors": vectors}).json()
    assert after["version"] == 4
    for p in after["predictions"]:
        assert ("cat" in p["labels"]) == (min(max(p["scores"]["cat"], 0), 1) >= 0.95)
    assert sum("cat" in p["labels"] for p in after["predictions"]) < sum("cat" in p["labels"] for p in before["predictions"])
    cat = api.get("/v1/labels").json()["labels"][0]
    assert (cat["threshold"], cat["description"]) == (0.95, "cats only")
    api.patch("/v1/labels/cat", json={"threshold": None})  # back to the default 0.5
    again = api.post("/v1/predict", json={"vectors": vectors}).json()
    assert [p["labels"] for p in again["predictions"]] == [p["labels"] for p in before["predictions"]]


def test_lambda_endpoint(api):
    r = api.post("/v1/lambda", json={"lambdas": [0.01, 0.1, 1.0, 10.0]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["lam"] in (0.01, 0.1, 1.0, 10.0) and out["version"] == 4 and len(out["loo_map"]) == 4
    assert api.get("/v1/health").json()["lam"] == out["lam"]
    assert api.post("/v1/lambda", json={"value": 0.3}).json()["version"] == 5
    assert api.post("/v1/predict", json={"vectors": api.X[:1].tolist()}).json()["version"] == 5
    assert api.get("/v1/health").json()["lam"] == 0.3


def test_suspicious_examples_find_planted_label_errors(db_url):
    """Teach a label with 6 wrong tags among 120 clean ones: the audit lists the planted ones first."""
    c = client(db_url)
    assert c.post("/v1/labels", json={"name": "pos"}).status_code == 201
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, D))
    truth = X[:, 0] > 0
    given = truth.copy()
    planted = rng.choice(120, 6, replace=False)
    given[planted] = ~given[planted]
    r = c.post("/v1/teach", json={"examples": [{"id": f"x{i}", "vector": x.tolist(), "labels": {"pos": int(g)}}
                                               for i, (x, g) in enumerate(zip(X, given))]})
    assert r.status_code == 200, r.text
    r = c.get("/v1/labels/pos/suspicious", params={"limit": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["audited"] == 120 and body["version"] == 2 and len(body["examples"]) == 6
    found = {int(e["id"][1:]) for e in body["examples"]}
    assert len(found & set(planted.tolist())) >= 4
    qualities = [e["quality"] for e in body["examples"]]
    assert qualities == sorted(qualities)
    assert c.get("/v1/labels/nope/suspicious").status_code == 404
    r = c.get("/v1/labels/pos/suspicious", params={"limit": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"


def test_suspicious_needs_write_scope(tmp_path):
    keys = KeyRing.parse(f"{hash_key('reader-key')} read reader", "test")
    c = client(f"sqlite:///{tmp_path / 'k.db'}", keys=keys)
    r = c.get("/v1/labels/pos/suspicious", headers={"Authorization": "Bearer reader-key"})
    assert r.status_code == 403
