"""Zero-shot labels in the service: a label created with a name and description is scored at once
(its name example), teaching refines it, forgetting the label forgets the name example."""

from __future__ import annotations

import os

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlcil.serve.app import create_app
from mlcil.serve.service import NAME_PREFIX, Options

from .test_api import FAST

LABELS = {
    "sports": "football, tennis, athletes, matches and championships",
    "cooking": "recipes, baking, kitchen, ingredients and meals",
    "finance": "stocks, banks, interest rates, markets and money",
}
TEXTS = {
    "sports": ["The striker scored twice and the team won the league title.",
               "She won the tennis final in three sets."],
    "cooking": ["Whisk the eggs with sugar, then bake the cake for forty minutes.",
                "Add garlic and onions to the pan and simmer the sauce."],
    "finance": ["The central bank raised interest rates and stocks fell.",
                "Bond yields rose as investors sold shares."],
}


@pytest.fixture(scope="module")
def minilm():
    """The packaged all-MiniLM-L6-v2 (offline): a real text encoder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mlcil.encoders import make_encoder

    model = make_encoder("minilm", device="cpu", precision="float32")
    model.encode(["warm up"])
    return model


def client(db_url: str, model) -> TestClient:
    app = create_app(db_url, options=Options(M=64, seed=0, lam=1.0), policy=FAST, encoder=model.encode,
                     names=model.encode)
    return TestClient(app)


def test_a_label_created_with_a_description_predicts_at_once(db_url, minilm):
    c = client(db_url, minilm)
    for name, description in LABELS.items():
        r = c.post("/v1/labels", json={"name": name, "description": description})
        assert r.status_code == 201, r.text
    version = r.json()["version"]
    texts = [t for ts in TEXTS.values() for t in ts]
    r = c.post("/v1/predict", json={"inputs": texts, "min_version": version})
    assert r.status_code == 200, r.text
    truth = [name for name, ts in TEXTS.items() for _ in ts]
    best = [max(p["scores"], key=p["scores"].get) for p in r.json()["predictions"]]
    assert best == truth  # no example taught: the names alone rank the right label first
    health = c.get("/v1/health").json()
    assert health["examples"] == len(LABELS) and health["dim"] == minilm.dim


def test_teaching_refines_and_forget_removes_the_name_example(db_url, minilm):
    c = client(db_url, minilm)
    assert c.post("/v1/labels", json={"name": "sports", "description": LABELS["sports"]}).status_code == 201
    r = c.post("/v1/labels", json={"name": "cooking"})  # the name alone
    assert r.status_code == 201
    probe = TEXTS["sports"][:1]
    # (min_version: a prediction without it reads the model published so far, which the refresher may not have
    # caught up yet — a race this test lost once in CI)
    before = c.post("/v1/predict", json={"inputs": probe, "min_version": r.json()["version"]}).json()
    before = before["predictions"][0]["scores"]["sports"]
    examples = [{"input": t, "labels": {"sports": 1, "cooking": 0}} for t in TEXTS["sports"]]
    examples += [{"input": t, "labels": {"sports": 0, "cooking": 1}} for t in TEXTS["cooking"]]
    v = c.post("/v1/teach", json={"examples": examples}).json()["version"]
    after = c.post("/v1/predict", json={"inputs": probe, "min_version": v}).json()["predictions"][0]["scores"]["sports"]
    assert after > before  # the data add to the name's evidence
    # the name examples' ids are reserved: a client cannot write one
    r = c.post("/v1/teach", json={"examples": [{"id": NAME_PREFIX + "x", "input": "hi", "labels": {}}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "examples[0].id"
    assert c.get("/v1/health").json()["examples"] == 2 + 4
    assert c.delete("/v1/labels/sports").status_code == 200
    assert c.get("/v1/health").json()["examples"] == 1 + 4  # sports' name example went with it


def test_the_name_example_equals_teaching_the_name_as_an_example(db_url, minilm, tmp_path):
    """The prior is exactly one stored example: a service that was taught the embedded name by hand
    serves the same scores."""
    a = client(db_url, minilm)
    va = a.post("/v1/labels", json={"name": "finance", "description": LABELS["finance"]}).json()["version"]
    b = TestClient(create_app(f"sqlite:///{tmp_path / 'b.db'}", options=Options(M=64, seed=0, lam=1.0),
                              policy=FAST, encoder=minilm.encode))
    b.post("/v1/labels", json={"name": "finance"})
    v = b.post("/v1/teach", json={"examples": [{"input": "finance: " + LABELS["finance"],
                                                "labels": {"finance": 1}}]}).json()["version"]
    probe = TEXTS["finance"] + TEXTS["cooking"]
    sa = [p["scores"]["finance"] for p in
          a.post("/v1/predict", json={"inputs": probe, "min_version": va}).json()["predictions"]]
    sb = [p["scores"]["finance"] for p in
          b.post("/v1/predict", json={"inputs": probe, "min_version": v}).json()["predictions"]]
    np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)


def test_serve_cli_checks_the_encoder_before_starting(tmp_path):
    from click.testing import CliRunner

    from mlcil.cli import main

    db = f"sqlite:///{tmp_path / 't.db'}"
    r = CliRunner().invoke(main, ["serve", "--db", db, "--encoder", "nosuch", "--export", str(tmp_path / "m.npz")])
    assert r.exit_code == 2 and "nosuch" in r.output  # a bad spec: usage error, no server started
    r = CliRunner().invoke(main, ["serve", "--db", db, "--export", str(tmp_path / "m.npz")])
    assert r.exit_code == 1 and "--export" in r.output and "no example yet" in r.output  # no traceback


def test_the_name_example_can_be_forgotten_by_its_id(db_url):
    def names(texts: list) -> np.ndarray:  # a stand-in text encoder: character counts
        return np.array([[len(t), t.count("a") + 1.0, t.count("e") + 1.0] for t in texts], dtype=np.float32)

    c = TestClient(create_app(db_url, options=Options(M=16, seed=0, lam=1.0), policy=FAST, names=names))
    assert c.post("/v1/labels", json={"name": "alpha", "description": "first"}).status_code == 201
    assert c.get("/v1/health").json()["examples"] == 1
    r = c.post("/v1/forget", json={"ids": [NAME_PREFIX + "alpha"]})
    assert r.status_code == 200, r.text
    assert c.get("/v1/health").json()["examples"] == 0
    assert c.delete("/v1/labels/alpha").status_code == 200  # no name example left: still fine
