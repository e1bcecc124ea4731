"""The Label Studio ML backend protocol in process (a hashing text encoder; Label Studio's payloads as its
1.23 source sends them). The same against a real Label Studio: tests/serve/test_labelstudio_live.py."""

from __future__ import annotations

import base64
import hashlib
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlcil.serve.app import create_app
from mlcil.serve.auth import Key, KeyRing, hash_key
from mlcil.serve.errors import Invalid
from mlcil.serve.labelstudio import example_id, label_name, parse_config
from mlcil.serve.options import Options, Policy
from mlcil.serve.repository import Store
from mlcil.serve.service import TaggingService

D = 64
FAST = Policy(refresh_interval=0.0, poll_s=0.01, calibrate=False)


def hashing(texts: list) -> np.ndarray:
    """Bag of words hashed into D dimensions, L2-normalised (deterministic)."""
    X = np.zeros((len(texts), D), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", str(text).lower()):
            X[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % D] += 1.0
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)


def config(values: list[str], hints: dict[str, str] | None = None) -> str:
    hints = hints or {}
    items = "".join(f'<Choice value="{v}"' + (f' hint="{hints[v]}"' if v in hints else "") + "/>" for v in values)
    return f'<View><Text name="text" value="$text"/><Choices name="tags" toName="text" choice="multiple">{items}</Choices></View>'


def result(values: list[str]) -> list[dict]:
    return [{"from_name": "tags", "to_name": "text", "type": "choices", "value": {"choices": values}}]


TEXTS = {  # word groups: texts with 'bread' words are 'baking', with 'egg' words 'eggs'
    "baking": "bread flour dough yeast oven loaf knead",
    "eggs": "egg yolk white omelette scrambled poached",
    "other": "knife steel sharpen blade cut board",
}


def text(rng: np.random.Generator, groups: list[str]) -> str:
    words = [w for g in groups for w in rng.choice(TEXTS[g].split(), 3)] + ["question", "how"]
    return " ".join(rng.permutation(words))


class LS:
    """Label Studio's side of the protocol: what it POSTs to the backend (payload shapes of LS 1.23)."""

    def __init__(self, client: TestClient, project: int = 7, cfg: str = "", auth: dict | None = None) -> None:
        self.client, self.project, self.cfg, self.auth = client, project, cfg, auth or {}
        self.tasks: dict[int, str] = {}
        self.next_ann = 100

    def project_body(self) -> dict:
        return {"id": self.project, "title": "p", "label_config": self.cfg}

    def setup(self) -> dict:
        r = self.client.post("/labelstudio/setup", json={"project": f"{self.project}.1700000000", "schema": self.cfg,
                                                         "hostname": "http://localhost:8080", "access_token": "x",
                                                         "extra_params": None}, headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()

    def predict(self, ids: list[int]) -> list[dict]:
        self.setup()  # Label Studio sets up (asks the version) before each prediction round
        tasks = [{"id": i, "data": {"text": self.tasks[i]}, "annotations": [], "predictions": [], "project": self.project}
                 for i in ids]
        r = self.client.post("/labelstudio/predict", json={"tasks": tasks, "project": f"{self.project}.1700000000",
                                                           "label_config": self.cfg, "params": {"context": None}},
                             headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()["results"]

    def hook(self, body: dict) -> dict:
        r = self.client.post("/labelstudio/webhook", json=body, headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()

    def annotate(self, task: int, values: list[str], skipped: bool = False, ann: int | None = None,
                 action: str = "ANNOTATION_CREATED") -> int:
        if ann is None:
            ann, self.next_ann = self.next_ann, self.next_ann + 1
        self.hook({"action": action, "project": self.project_body(),
                   "annotation": {"id": ann, "task": task, "project": self.project, "result": result(values),
                                  "was_cancelled": skipped, "completed_by": 1},
                   "task": {"id": task, "data": {"text": self.tasks[task]}, "project": self.project}})
        return ann

    def delete(self, anns: list[int]) -> dict:
        return self.hook({"action": "ANNOTATIONS_DELETED", "project": self.project_body(),
                          "annotations": [{"id": a} for a in anns]})

    def set_config(self, cfg: str) -> dict:
        self.cfg = cfg
        return self.hook({"action": "PROJECT_UPDATED", "project": self.project_body()})


@pytest.fixture
def app_service(tmp_path):
    service = TaggingService(Store(f"sqlite:///{tmp_path / 'ls.db'}"), Options(M=256), policy=FAST)
    return create_app(service, encoder=hashing, names=hashing), service


@pytest.fixture
def ls(app_service):
    app, _ = app_service
    with TestClient(app) as client:
        yield LS(client, cfg=config(["baking", "eggs"]))


def known(service: TaggingService) -> dict[str, dict[str, int]]:
    """{label: {"positives", "negatives"}} from /v1's label listing."""
    return {row["name"]: {"positives": row["positives"], "negatives": row["negatives"]} for row in service.labels()[1]}


# ---- the labeling config ---------------------------------------------------------------------
def test_config_choices_and_taxonomy():
    c = parse_config(config(["a", "b/c"], {"a": "the letter a"}))
    assert (c.from_name, c.to_name, c.data_key, c.kind) == ("tags", "text", "text", "choices")
    assert c.names == ["a", "b\u2215c"] and c.choices[0].hint == "the letter a" and c.choices[1].hint is None
    assert c.known_labels(result(["b/c"])) == {"a": 0, "b\u2215c": 1}
    assert c.result(["b\u2215c"]) == result(["b/c"])
    tax = parse_config('<View><Text name="t" value="$body"/><Taxonomy name="tx" toName="t"><Choice value="Fruit">'
                       '<Choice value="Apple"/><Choice value="Pear"/></Choice><Choice value="Nut"/></Taxonomy></View>')
    assert tax.kind == "taxonomy" and tax.data_key == "body"
    assert tax.names == ["Fruit", "Fruit > Apple", "Fruit > Pear", "Nut"]
    item = [{"from_name": "tx", "to_name": "t", "type": "taxonomy", "value": {"taxonomy": [["Fruit", "Pear"]]}}]
    assert tax.known_labels(item) == {"Fruit": 1, "Fruit > Apple": 0, "Fruit > Pear": 1, "Nut": 0}  # ancestors too
    assert tax.result(["Fruit", "Fruit > Pear"])[0]["value"] == {"taxonomy": [["Fruit", "Pear"]]}  # deepest only
    assert label_name("..") == "_.." and label_name("a\\b") == "a\u29f5b"


@pytest.mark.parametrize("xml, words", [
    ("<View><Text", "malformed XML"),
    ('<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
     "no multi-label control"),  # single choice: not multi-label
    ('<View><Image name="i" value="$img"/><Choices name="c" toName="i" choice="multiple"><Choice value="a"/>'
     '</Choices></View>', "no multi-label control"),
    ('<View><Text name="t" value="$t"/><Choices name="c" toName="t" choice="multiple"/><Taxonomy name="x" '
     'toName="t"/></View>', "2 multi-label controls"),
    ('<View><Text name="t" value="t"/><Choices name="c" toName="t" choice="multiple"/></View>', "value=\"$field\""),
    ('<View><Text name="t" value="$t"/><Choices name="c" toName="t" choice="multiple"><Choice value="a/b"/>'
     '<Choice value="a\u2215b"/></Choices></View>', "same label"),
])
def test_config_errors_name_the_field(xml, words):
    with pytest.raises(Invalid) as exc:
        parse_config(xml)
    assert exc.value.field == "label_config" and words in exc.value.message


def test_unknown_choice_in_an_annotation_is_refused():
    with pytest.raises(Invalid, match="not in the labeling config"):
        parse_config(config(["a"])).known_labels(result(["zz"]))


# ---- the protocol ----------------------------------------------------------------------------
def test_health_setup_predict_formats(ls, app_service):
    _, service = app_service
    assert ls.client.get("/labelstudio/health").json()["status"] == "UP"
    version = ls.setup()["model_version"]
    assert version == f"mlcil-v{service.served_version()}" and [r["name"] for r in service.labels()[1]] == \
        ["baking", "eggs"]
    rng = np.random.default_rng(0)
    ls.tasks = {i: text(rng, ["baking"] if i % 2 else ["eggs"]) for i in range(1, 21)}
    assert [p["result"] for p in ls.predict([1, 2])] == [[], []]  # nothing taught: nothing predicted
    for i in range(1, 15):
        ls.annotate(i, ["baking"] if i % 2 else ["eggs"])
    preds = ls.predict([15, 16, 17, 18])
    assert len(preds) == 4
    for i, p in zip([15, 16, 17, 18], preds):
        assert p["model_version"] == f"mlcil-v{service.served_version()}" and 0.0 <= p["score"] <= 1.0
        assert p["result"] == result(["baking"] if i % 2 else ["eggs"])


def test_score_is_the_probability_that_the_label_set_is_right(ls, app_service):
    _, service = app_service
    rng = np.random.default_rng(1)
    ls.tasks = {i: text(rng, [["baking"], ["eggs"], ["baking", "eggs"], ["other"]][i % 4]) for i in range(40)}
    ls.setup()
    for i in range(30):
        ls.annotate(i, [[], ["baking"], ["eggs"], ["baking", "eggs"]][(i + 1) % 4][:])
    preds = ls.predict(list(range(30, 40)))
    ref = ls.client.post("/v1/predict", json={"inputs": [ls.tasks[i] for i in range(30, 40)]}).json()["predictions"]
    for p, r in zip(preds, ref):  # recomputed from /v1's calibrated probabilities and decisions
        expected = np.prod([r["proba"][n] if n in r["labels"] else 1 - r["proba"][n] for n in ("baking", "eggs")])
        assert p["score"] == pytest.approx(expected, rel=1e-9)
        assert sorted(next(iter(p["result"]), {}).get("value", {}).get("choices", [])) == sorted(r["labels"])


def test_annotations_teach_relabel_forget_exactly(ls, app_service, tmp_path):
    """After created, updated, skipped and deleted annotations, the model is the one taught the final
    annotations directly (a fresh service; same random features)."""
    _, service = app_service
    rng = np.random.default_rng(2)
    ls.tasks = {i: text(rng, ["baking"] if i % 3 else ["eggs", "other"]) for i in range(24)}
    ls.setup()
    anns = {i: ls.annotate(i, ["baking"] if i % 3 else ["eggs"]) for i in range(20)}
    assert known(service) == {"baking": {"positives": 13, "negatives": 7}, "eggs": {"positives": 7, "negatives": 13}}
    ls.annotate(0, ["baking", "eggs"], ann=anns[0], action="ANNOTATION_UPDATED")  # relabel
    ls.annotate(1, [], ann=anns[1], action="ANNOTATION_UPDATED")
    assert ls.delete([anns[2], anns[3], 999999])["forgotten"] == 2  # an unknown id is skipped
    ls.annotate(20, ["eggs"], skipped=True)  # skipped: nothing taught
    ls.annotate(4, ["eggs"], skipped=True, ann=anns[4], action="ANNOTATION_UPDATED")  # now skipped: forgotten
    final = {0: ["baking", "eggs"], 1: []} | {i: ["baking"] if i % 3 else ["eggs"] for i in range(5, 20)}
    assert known(service) == {"baking": {"positives": sum("baking" in v for v in final.values()),
                                         "negatives": sum("baking" not in v for v in final.values())},
                              "eggs": {"positives": sum("eggs" in v for v in final.values()),
                                       "negatives": sum("eggs" not in v for v in final.values())}}
    ref = TaggingService(Store(f"sqlite:///{tmp_path / 'ref.db'}"), Options(M=256, lam=service.model.lam),
                         policy=Policy(background=False, calibrate=False))
    ref.create_label("baking")
    ref.create_label("eggs")
    order = sorted(final)
    ref.teach(list(hashing([ls.tasks[i] for i in order])),
              [{"baking": int("baking" in final[i]), "eggs": int("eggs" in final[i])} for i in order],
              [example_id(7, anns[i]) for i in order])
    ref.refresh()
    service.wait_for(service.latest_version())
    X = hashing([ls.tasks[i] for i in range(24)])
    np.testing.assert_allclose(service.predict(X)[1], ref.predict(X)[1], rtol=1e-6, atol=1e-9)
    ref.close()


def test_a_new_choice_is_a_new_label_absent_before_and_removed_ones_are_forgotten(ls, app_service):
    _, service = app_service
    rng = np.random.default_rng(3)
    ls.tasks = {i: text(rng, ["baking", "eggs"] if i % 2 else ["other"]) for i in range(12)}
    ls.setup()
    anns = {i: ls.annotate(i, ["baking", "eggs"] if i % 2 else []) for i in range(8)}
    ls.set_config(config(["baking", "eggs", "knives"]))  # a choice added
    assert known(service)["knives"] == {"positives": 0, "negatives": 0}  # old annotations: absent, not negative
    assert service.suspicious("knives", include_absent=True)["examples"][0]["given"] == "absent"
    ls.annotate(0, ["knives"], ann=anns[0], action="ANNOTATION_UPDATED")  # revisited: now known for it
    ls.annotate(8, ["knives"])
    assert known(service)["knives"] == {"positives": 2, "negatives": 0}
    assert known(service)["baking"] == {"positives": 4, "negatives": 5}  # revisited 0: still negative; 8: negative
    ls.set_config(config(["eggs", "knives"]))  # a choice removed: forgotten
    assert sorted(known(service)) == ["eggs", "knives"]
    preds = ls.predict([9, 10])
    assert all(c != "baking" for p in preds for item in p["result"] for c in item["value"]["choices"])


def test_a_choice_with_a_hint_is_predicted_zero_shot(ls, app_service):
    _, service = app_service
    rng = np.random.default_rng(4)
    ls.tasks = {i: text(rng, ["baking"] if i % 2 else ["eggs"]) for i in range(20)}
    ls.tasks[50] = "how to sharpen a knife blade on a steel"
    ls.tasks[51] = "bread dough with yeast in the oven"
    ls.setup()
    for i in range(16):
        ls.annotate(i, ["baking"] if i % 2 else ["eggs"])
    ls.set_config(config(["baking", "eggs", "knives"], {"knives": "sharpen knife blade steel cut"}))
    row = next(r for r in service.labels()[1] if r["name"] == "knives")
    assert (row["positives"], row["negatives"], row["description"]) == (1, 0, "sharpen knife blade steel cut")
    ls.setup()
    r = ls.client.post("/v1/predict", json={"inputs": [ls.tasks[50], ls.tasks[51]]}).json()["predictions"]
    assert r[0]["proba"]["knives"] > r[1]["proba"]["knives"]  # scored from its hint, before any example
    assert r[0]["scores"]["knives"] > 0.1 > r[1]["scores"]["knives"]


def test_audit_finds_a_planted_wrong_annotation(ls, app_service):
    rng = np.random.default_rng(5)
    ls.tasks = {i: text(rng, ["baking"] if i % 2 else ["eggs"]) for i in range(40)}
    ls.setup()
    anns = {i: ls.annotate(i, ["baking"] if i % 2 else ["eggs"]) for i in range(40) if i != 7}
    anns[7] = ls.annotate(7, ["eggs"])  # a baking text annotated eggs only
    ls.setup()
    audit = ls.client.get("/labelstudio/audit", params={"project": 7, "label": "baking", "limit": 3}).json()
    top = audit["annotations"][0]
    assert (top["annotation"], top["task"], top["given"], top["flagged"]) == (anns[7], 7, "negative", True)


def test_errors_name_the_field(ls):
    ls.setup()
    r = ls.client.post("/labelstudio/predict", json={"project": "7.1", "label_config": ls.cfg,
                                                    "tasks": [{"id": 1, "data": {"body": "x"}}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "tasks[0].data.text"
    r = ls.client.post("/labelstudio/setup", json={"project": "x.1", "schema": ls.cfg})
    assert r.status_code == 422 and r.json()["error"]["field"] == "project"
    r = ls.client.post("/labelstudio/webhook", content=b"[1")
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    assert ls.hook({"action": "LABEL_LINK_CREATED"})["status"] == "ignored"


def test_without_an_encoder_setup_works_and_learning_says_what_is_missing(tmp_path):
    service = TaggingService(Store(f"sqlite:///{tmp_path / 'n.db'}"), Options(M=64), policy=FAST)
    with TestClient(create_app(service)) as client:
        ls = LS(client, cfg=config(["a"]))
        ls.tasks = {1: "some text"}
        ls.setup()
        r = client.post("/labelstudio/webhook", json={
            "action": "ANNOTATION_CREATED", "project": ls.project_body(),
            "annotation": {"id": 1, "task": 1, "result": result(["a"]), "was_cancelled": False},
            "task": {"id": 1, "data": {"text": "some text"}}})
        assert r.status_code == 409 and "--encoder minilm" in r.json()["error"]["message"]


def test_auth_as_label_studio_sends_it(tmp_path):
    write, read = "w-key-123", "r-key-456"
    keys = KeyRing([Key(hash_key(write), "write", "ls"), Key(hash_key(read), "read", "viewer")])
    service = TaggingService(Store(f"sqlite:///{tmp_path / 'a.db'}"), Options(M=64), policy=FAST)
    with TestClient(create_app(service, keys=keys, encoder=hashing)) as client:
        basic = {"Authorization": "Basic " + base64.b64encode(f"labelstudio:{write}".encode()).decode()}
        body = {"project": "1.1", "schema": config(["a"])}
        assert client.get("/labelstudio/health").status_code == 200  # no key needed
        assert client.post("/labelstudio/setup", json=body).status_code == 401
        assert client.post("/labelstudio/setup", json=body, headers={"Authorization": "Basic " + base64.b64encode(
            b"labelstudio:wrong").decode()}).status_code == 401
        assert client.post("/labelstudio/setup", json=body, headers={"X-API-Key": read}).status_code == 403
        assert client.post("/labelstudio/setup", json=body, headers=basic).status_code == 200
        assert client.post("/labelstudio/webhook", json={"action": "PROJECT_UPDATED"},
                           headers={"Authorization": f"Bearer {write}"}).status_code == 200
        assert client.get("/labelstudio/audit", params={"project": 1}, headers={"X-API-Key": read}).status_code == 200
