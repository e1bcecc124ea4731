"""The HTTP API through FastAPI's TestClient: the happy path, every bad input, keys, limits, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlcil.serve.app import create_app
from mlcil.serve.auth import KeyRing, hash_key
from mlcil.serve.service import Options, Policy

D = 8
JSON = {"content-type": "application/json"}
FAST = Policy(refresh_interval=0.0, poll_s=0.01, calibrate=False)


def client(url: str, options: Options | None = None, **kw) -> TestClient:
    kw.setdefault("policy", FAST)
    return TestClient(create_app(url, options=options or Options(M=32, seed=1), **kw))


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
    c.version = r.json()["version"]
    c.app.state.service.wait_for(c.version)  # health names the served version: let it settle
    return c


def predict(c: TestClient, vectors, **kw) -> dict:
    r = c.post("/v1/predict", json={"vectors": np.asarray(vectors).tolist(), **kw})
    assert r.status_code == 200, r.text
    return r.json()


def test_create_teach_predict_relabel_forget(api):
    labels = api.get("/v1/labels").json()
    assert labels["version"] == 3 == api.version
    cat, dog = labels["labels"]
    assert (cat["name"], cat["description"], cat["positives"] + cat["negatives"]) == ("cat", "felines", 40)
    assert dog["negatives"] == 0 and dog["positives"] == int((api.X[:, 1] > 0.5).sum())
    r = predict(api, api.X[:10], min_version=3)
    assert r["version"] == 3 and len(r["predictions"]) == 10
    decided_cat = np.array(["cat" in p["labels"] for p in r["predictions"]])
    assert (decided_cat == (api.X[:10, 0] > 0)).mean() >= 0.8  # learnt something on its training rows
    for p in r["predictions"]:  # dog uses its own threshold 0.3 on the probability, cat the default 0.5
        assert ("dog" in p["labels"]) == (p["proba"]["dog"] >= 0.3)
        assert all(0 <= v <= 1 for v in p["proba"].values())
        # uncalibrated labels use the default map sigmoid(4s − 2)
        assert p["proba"]["cat"] == pytest.approx(1 / (1 + np.exp(-(4 * p["scores"]["cat"] - 2))))
    top = predict(api, api.X[:3], top_k=1)
    assert all(len(p["labels"]) == 1 for p in top["predictions"])
    everything = predict(api, api.X[:3], threshold=0.0)
    assert all(sorted(p["labels"]) == ["cat", "dog"] for p in everything["predictions"])
    # relabel: e0 becomes a dog (vector omitted), e1 loses its cat label
    r = api.post("/v1/teach", json={"examples": [{"id": "e0", "labels": {"dog": 1}}, {"id": "e1", "labels": {"cat": None}}]})
    assert r.status_code == 200 and r.json() == {"ids": ["e0", "e1"], "version": 4}
    assert api.get("/v1/health").json()["examples"] == 40  # no new example
    r = api.post("/v1/forget", json={"ids": ["e0", "e1"]})
    assert r.status_code == 200 and r.json()["version"] == 5
    assert api.get("/v1/health").json()["examples"] == 38
    r = api.delete("/v1/labels/dog")
    assert r.status_code == 200 and r.json()["version"] == 6
    p = predict(api, api.X[:1], min_version=6)
    assert list(p["predictions"][0]["scores"]) == ["cat"] and p["version"] == 6


def bad_requests():
    """(method, path, body (JSON text), status, field) for every kind of bad input."""
    ok = [0.5] * D
    ex = lambda **kw: json.dumps({"examples": [{"vector": ok, "labels": {"cat": 1}, **kw}]})  # noqa: E731
    return [
        ("post", "/v1/teach", ex(vector=[0.5] * (D - 1)), 422, "examples[0].vector"),
        ("post", "/v1/teach", ex(vector=[0.5] * (D - 1)).replace("]", ", NaN]", 1), 400, "body"),
        ("post", "/v1/teach", ex(vector=[0.5] * (D - 1)).replace("]", ", Infinity]", 1), 400, "body"),
        ("post", "/v1/teach", ex(vector=[1e39] + ok[1:]), 422, "examples[0].vector[0]"),
        ("post", "/v1/teach", ex(vector=[0.0] + ok[1:]).replace("[0.0", "[1e400", 1), 422, "examples[0].vector[0]"),
        ("post", "/v1/teach", ex(vector=["x"] + ok[1:]), 422, "examples[0].vector[0]"),
        ("post", "/v1/teach", ex(vector=[False] + ok[1:]), 422, "examples[0].vector[0]"),
        ("post", "/v1/teach", ex(vector=["0.5"] + ok[1:]), 422, "examples[0].vector[0]"),
        ("post", "/v1/teach", ex(vector=[0.5] * 20000), 413, "examples[0].vector"),
        ("post", "/v1/teach", ex(labels={"cow": 1}), 422, "examples[0].labels.cow"),
        ("post", "/v1/teach", ex(labels={"cat": 2}), 422, "examples[0].labels.cat"),
        ("post", "/v1/teach", ex(labels={"cat": True}), 422, "examples[0].labels.cat"),
        ("post", "/v1/teach", ex(labels={"cat": "1"}), 422, "examples[0].labels.cat"),
        ("post", "/v1/teach", ex(id="e3"), 409, "examples[0].vector"),  # stored with another vector
        ("post", "/v1/teach", ex(id="a\x00b"), 422, "examples[0].id"),
        ("post", "/v1/teach", ex(input="raw text"), 422, "examples[0].vector"),
        ("post", "/v1/teach", ex(colour="red"), 422, "examples[0].colour"),
        ("post", "/v1/teach", json.dumps({"examples": [{"input": "raw", "labels": {}}]}), 422, "examples[0].input"),
        ("post", "/v1/teach", json.dumps({"examples": [{"labels": {"cat": 1}}]}), 422, "examples[0].vector"),
        ("post", "/v1/teach", json.dumps({"examples": []}), 422, "examples"),
        ("post", "/v1/teach", json.dumps({"examples": [{"vector": ok}] * 101}), 413, "examples"),
        ("post", "/v1/teach", json.dumps({"examples": [{"vector": [0.5] * 50000}]}), 413, "body"),
        ("post", "/v1/teach", '{"examples": [', 400, "body"),
        ("post", "/v1/teach", '{"examples": [], "examples": []}', 400, "body"),
        ("post", "/v1/teach", "[]", 422, "body"),
        ("post", "/v1/teach", json.dumps({"example": []}), 422, "examples"),
        ("post", "/v1/labels", json.dumps({"name": "cat"}), 409, "name"),
        ("post", "/v1/labels", json.dumps({"name": ""}), 422, "name"),
        ("post", "/v1/labels", json.dumps({"name": " cat"}), 422, "name"),
        ("post", "/v1/labels", json.dumps({"name": "a/b"}), 422, "name"),
        ("post", "/v1/labels", json.dumps({"name": ".."}), 422, "name"),
        ("post", "/v1/labels", json.dumps({"name": "nul\x00"}), 422, "name"),
        ("post", "/v1/labels", json.dumps({"name": "x" * 201}), 422, "name"),
        ("post", "/v1/labels", json.dumps({"name": "x", "threshold": 2}), 422, "threshold"),
        ("post", "/v1/labels", json.dumps({"name": "x", "threshold": "0.5"}), 422, "threshold"),
        ("post", "/v1/labels", json.dumps({"name": "x", "threshold": False}), 422, "threshold"),
        ("post", "/v1/labels", json.dumps({"name": "x", "description": "\x00"}), 422, "description"),
        ("delete", "/v1/labels/cow", None, 404, "name"),
        ("delete", "/v1/labels/c%00t", None, 404, "name"),
        ("patch", "/v1/labels/cow", json.dumps({"threshold": 0.2}), 404, "name"),
        ("patch", "/v1/labels/cat", json.dumps({}), 422, "body"),
        ("patch", "/v1/labels/cat", json.dumps({"threshold": 3}), 422, "threshold"),
        # an id not stored is no error (a retried forget is harmless: test_forget_is_idempotent), one that can
        # never be stored is
        ("post", "/v1/forget", json.dumps({"ids": ["e1", " nope"]}), 422, "ids[1]"),
        ("post", "/v1/forget", json.dumps({"ids": ["e1", "n\x00pe"]}), 422, "ids[1]"),
        ("post", "/v1/forget", json.dumps({"ids": ["e1", "\udfff"]}), 422, "ids[1]"),
        ("post", "/v1/teach", '{"examples": [{"vector": [1, 2, 3, 4, 5, 6, 7, 8], "labels": {"\\ud800": 1}}]}', 422,
         "examples[0].labels"),
        ("post", "/v1/forget", json.dumps({"ids": []}), 422, "ids"),
        ("post", "/v1/lambda", json.dumps({"value": 0}), 422, "value"),
        ("post", "/v1/lambda", '{"value": NaN}', 400, "body"),
        ("post", "/v1/lambda", json.dumps({"value": True}), 422, "value"),
        ("post", "/v1/lambda", json.dumps({"lambdas": [1.0, -1.0]}), 422, "lambdas[1]"),
        ("post", "/v1/predict", json.dumps({"vectors": [ok, ok[:3]]}), 422, "vectors[1]"),
        ("post", "/v1/predict", json.dumps({"vectors": []}), 422, "vectors"),
        ("post", "/v1/predict", json.dumps({"vectors": [ok], "top_k": 0}), 422, "top_k"),
        ("post", "/v1/predict", json.dumps({"vectors": [ok], "top_k": 1.0}), 422, "top_k"),
        ("post", "/v1/predict", json.dumps({"vectors": [ok], "threshold": -1}), 422, "threshold"),
        ("post", "/v1/predict", json.dumps({"inputs": ["raw"]}), 422, "inputs[0]"),
        ("post", "/v1/predict", json.dumps({}), 422, "vectors"),
        ("get", "/v1/nothing", None, 404, "path"),
        ("put", "/v1/labels", None, 405, "path"),
    ]


@pytest.mark.parametrize("method,path,body,status,field", bad_requests(),
                         ids=[f"{r[1]}:{r[3]}:{r[4]}:{i}" for i, r in enumerate(bad_requests())])
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(api, method, path, body, status, field):
    before = api.get("/v1/labels").json()
    before_health = api.get("/v1/health").json()
    kw = {"content": body.encode(), "headers": JSON} if body is not None else {}
    r = api.request(method.upper(), path, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["field"] == field and err["status"] == status and err["message"]
    assert api.get("/v1/labels").json() == before
    assert api.get("/v1/health").json() == before_health


@pytest.mark.parametrize("name", ["a..b", "50% off", "what?", "#tag", "naïve café", "a b", "x" * 200, "…"])
def test_every_accepted_name_is_fully_usable(api, name):
    """A name the service accepts can be patched, audited and forgotten through its URL path."""
    from urllib.parse import quote

    assert api.post("/v1/labels", json={"name": name}).status_code == 201
    url = "/v1/labels/" + quote(name, safe="")
    r = api.post("/v1/teach", json={"examples": [{"id": f"e{i}", "labels": {name: i % 2}} for i in range(6)]})
    assert r.status_code == 200, r.text
    assert api.patch(url, json={"threshold": 0.4}).status_code == 200
    assert api.get(url + "/suspicious").status_code == 200
    assert api.delete(url).status_code == 200
    assert name not in [lab["name"] for lab in api.get("/v1/labels").json()["labels"]]


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
    r = c.post("/v1/predict", json={"inputs": ["tiny", "a rather long text"], "min_version": r.json()["version"]})
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
    assert c.patch("/v1/labels/x", json={"threshold": 0.1}, headers=as_("w")).status_code == 200
    assert c.get("/v1/model", headers=as_("w")).status_code == 403
    assert c.post("/v1/forget", json={"ids": ["k1"]}, headers=as_("a")).status_code == 200
    assert c.delete("/v1/labels/x", headers=as_("a")).status_code == 200
    assert c.get("/metrics").status_code == 401 and c.get("/metrics", headers=as_("r")).status_code == 200
    # auth comes before the body is read: no key and a malformed or oversized body is still a 401
    assert c.post("/v1/teach", content=b'{"examples": [', headers=JSON).status_code == 401
    big = b'{"examples": [' + b"1," * (9 << 20) + b"1]}"
    r = c.post("/v1/teach", content=big, headers=JSON)
    assert r.status_code == 401 and r.json()["error"]["field"] == "authorization"
    spec = c.get("/openapi.json").json()
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    assert "401" in spec["paths"]["/v1/teach"]["post"]["responses"]
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


def test_metrics_count_every_answer_with_bounded_labels(api, monkeypatch):
    predict(api, api.X[:2], min_version=3)
    for method in ("FOO", "BAR", "PROPFIND"):
        api.request(method, "/v1/predict")
    for i in range(5):
        api.get(f"/made/up/{i}")

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(api.app.state.service, "labels", broken)
    r = api.get("/v1/labels")
    assert r.status_code == 500 and r.json()["error"]["status"] == 500  # JSON, not text/plain
    text = api.get("/metrics").text
    assert 'mlcil_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in text
    assert 'mlcil_requests_total{method="GET",route="/v1/labels",status="500"} 1.0' in text
    assert 'method="other",route="unmatched",status="405"} 3.0' in text
    assert 'method="GET",route="unmatched",status="404"} 5.0' in text
    assert "FOO" not in text and "/made/up" not in text
    assert "mlcil_model_version 3.0" in text and "mlcil_request_seconds_bucket" in text
    assert "mlcil_state_bytes" in text and "mlcil_examples 40.0" in text


def test_openapi_tells_the_truth(api):
    spec = api.get("/openapi.json").json()
    assert {"/v1/teach", "/v1/predict", "/v1/labels", "/v1/forget", "/v1/health", "/v1/lambda", "/v1/model",
            "/v1/labels/{name}", "/v1/labels/{name}/suspicious", "/metrics"} == \
        {p for p in spec["paths"] if not p.startswith("/labelstudio/")}  # the Label Studio backend: its own tests
    ours = {path: ops for path, ops in spec["paths"].items() if not path.startswith("/labelstudio/")}
    assert "HTTPValidationError" not in json.dumps(ours)
    teach = spec["paths"]["/v1/teach"]["post"]["responses"]
    assert {"200", "400", "409", "413", "422", "500", "503", "507"} <= set(teach)
    assert teach["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "securitySchemes" not in spec.get("components", {})  # auth is off on this app: no scheme claimed
    assert api.get("/docs").status_code == 200


def test_predict_before_any_example_and_after_forgetting_all(db_url):
    c = client(db_url, Options(d=3, M=8))
    assert predict(c, [[1.0, 2.0, 3.0]])["predictions"][0]["scores"] == {}
    v = c.post("/v1/labels", json={"name": "a"}).json()["version"]
    p = predict(c, [[1.0, 2.0, 3.0]], min_version=v)["predictions"][0]
    assert p["labels"] == [] and p["scores"] == {"a": 0.0} and p["proba"]["a"] == pytest.approx(1 / (1 + np.e ** 2))
    c.post("/v1/teach", json={"examples": [{"id": "x", "vector": [1.0, 0.0, 0.0], "labels": {"a": 1}}]})
    v = c.post("/v1/forget", json={"ids": ["x"]}).json()["version"]  # back to no example: G = 0, W = B/λ = 0
    p = predict(c, [[1.0, 2.0, 3.0]], min_version=v)["predictions"][0]
    assert p["scores"]["a"] == pytest.approx(0.0, abs=1e-9)


def test_per_label_threshold_can_be_changed(api):
    vectors = api.X[:20]
    before = predict(api, vectors, min_version=3)
    r = api.patch("/v1/labels/cat", json={"threshold": 0.95, "description": "cats only"})
    assert r.status_code == 200 and r.json()["version"] == 4
    after = predict(api, vectors, min_version=4)
    assert after["version"] == 4
    for p in after["predictions"]:
        assert ("cat" in p["labels"]) == (p["proba"]["cat"] >= 0.95)
    assert sum("cat" in p["labels"] for p in after["predictions"]) < sum("cat" in p["labels"] for p in before["predictions"])
    cat = api.get("/v1/labels").json()["labels"][0]
    assert (cat["threshold"], cat["description"]) == (0.95, "cats only")
    v = api.patch("/v1/labels/cat", json={"threshold": None}).json()["version"]  # back to the default 0.5
    again = predict(api, vectors, min_version=v)
    assert [p["labels"] for p in again["predictions"]] == [p["labels"] for p in before["predictions"]]


def test_lambda_endpoint_chooses_and_calibrates(api):
    r = api.post("/v1/lambda", json={"lambdas": [0.01, 0.1, 1.0, 10.0]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["lam"] in (0.01, 0.1, 1.0, 10.0) and out["version"] == 4 and len(out["loo_map"]) == 4
    assert api.get("/v1/health").json()["lam"] == out["lam"]
    assert all(lab["calibrated"] for lab in api.get("/v1/labels").json()["labels"])
    assert api.post("/v1/lambda", json={"value": 0.3}).json()["version"] == 5
    assert predict(api, api.X[:1], min_version=5)["version"] == 5
    assert api.get("/v1/health").json()["lam"] == 0.3


def test_model_download_loads_as_a_learner(api, tmp_path):
    from mlcil.learners import Learner

    r = api.get("/v1/model")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    (tmp_path / "m.npz").write_bytes(r.content)
    learner = Learner.load(tmp_path / "m.npz")
    assert list(learner.classes_) == ["cat", "dog"]  # the label names, not internal ids
    p = predict(api, api.X[:5], min_version=3)
    S = np.array([[q["scores"][n] for n in ("cat", "dog")] for q in p["predictions"]])
    P = np.array([[q["proba"][n] for n in ("cat", "dog")] for q in p["predictions"]])
    np.testing.assert_allclose(learner.scores(api.X[:5].astype(np.float32)), S, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(learner.proba(api.X[:5].astype(np.float32)), P, rtol=0, atol=1e-6)


def test_model_download_with_examples_but_no_label_is_409(db_url):
    c = client(db_url)
    assert c.post("/v1/labels", json={"name": "cat"}).status_code == 201
    r = c.post("/v1/teach", json={"examples": [{"id": "x", "vector": [1.0, 0.5, 0.0], "labels": {"cat": 1}}]})
    assert r.status_code == 200, r.text
    assert c.delete("/v1/labels/cat").status_code == 200
    r = c.get("/v1/model")
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["status"] == 409 and err["field"] == "labels" and "no label" in err["message"]


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


def test_suspicious_on_a_label_taught_only_positives_runs_without_child_processes(db_url, monkeypatch):
    """The README's flow: a label with positives only is audited against the absent rows; cleanlab never
    forks (a Pool would raise here)."""
    import multiprocessing
    import multiprocessing.pool

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started inside the server")

    monkeypatch.setattr(multiprocessing.pool.Pool, "__init__", no_pool)
    c = client(db_url)
    c.post("/v1/labels", json={"name": "cat"})
    c.post("/v1/labels", json={"name": "dog"})
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, D))
    c.post("/v1/teach", json={"examples": [{"vector": x.tolist(), "labels": {"cat": 1} if x[0] > 0 else {"dog": 1}}
                                           for x in X]})
    for _ in range(3):
        r = c.get("/v1/labels/cat/suspicious", params={"limit": 5})
        assert r.status_code == 200, r.text
        assert r.json()["audited"] == 300 and len(r.json()["examples"]) == 5
    r = c.get("/v1/labels/dog/suspicious", params={"include_absent": True})
    assert r.status_code == 200, r.text
    assert multiprocessing.active_children() == []


def test_suspicious_needs_write_scope(tmp_path):
    keys = KeyRing.parse(f"{hash_key('reader-key')} read reader", "test")
    c = client(f"sqlite:///{tmp_path / 'k.db'}", keys=keys)
    r = c.get("/v1/labels/pos/suspicious", headers={"Authorization": "Bearer reader-key"})
    assert r.status_code == 403
