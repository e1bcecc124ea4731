"""``mlcil serve --encoder minilm`` as the ML backend of a real Label Studio (1.23, started by
``eval "$(.ci/labelstudio.sh)"``; the test *fails* under CI=true without it, and skips otherwise).

One scenario on real text (40 se_cooking questions): a project made through Label Studio's API, mlcil
connected as its ML backend (Basic Auth with an mlcil key; the webhook Label Studio creates gets the
key as a header), annotations submitted, updated, skipped and deleted through Label Studio's API, a
label added to the config with a hint; the pre-annotations Label Studio stores must appear, follow
the annotations, and cover the new label.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlcil.serve.auth import hash_key
from tests.serve.labelstudio_client import (ENV_TOKEN, ENV_URL, LabelStudio, choices_config, choices_result, chosen,
                                            read_jsonl, start_mlcil, stop)

LABELS = ["baking", "eggs", "storage-method"]
NEW = "knives"
HINT = "knives: choosing, sharpening and honing kitchen knives and blades"
KEY = "mlcil-test-labelstudio-key"


def label_studio_env() -> tuple[str, str]:
    url, token = os.environ.get(ENV_URL), os.environ.get(ENV_TOKEN)
    if not url or not token:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{ENV_URL} is not set but CI=true: run eval \"$(.ci/labelstudio.sh)\" before the tests")
        pytest.skip(f"{ENV_URL} not set (start one with: eval \"$(.ci/labelstudio.sh)\")")
    return url, token


def tasks_of_se_cooking() -> list[dict]:
    """40 questions: 30 with one of LABELS, 10 tagged 'knives' (from the first 2000 rows, in order)."""
    data = os.environ.get("MLCIL_DATA", str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    rows = read_jsonl(Path(data) / "se_cooking" / "se_cooking.jsonl.gz", 2000)
    core = [r for r in rows if set(r["labels"]) & set(LABELS) and NEW not in r["labels"]][:30]
    knives = [r for r in rows if NEW in r["labels"]][:10]
    assert len(core) == 30 and len(knives) == 10, "se_cooking changed: fewer rows with the test's labels"
    return core + knives


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    url, token = label_studio_env()
    tmp = tmp_path_factory.mktemp("ls-live")
    proc, base = start_mlcil(f"sqlite:///{tmp / 'tagger.db'}", "--encoder", "minilm", "--refresh-interval", "0.1",
                             keys=f"{hash_key(KEY)} write labelstudio", log=tmp / "mlcil.log")
    ls = LabelStudio(url, token)
    try:
        yield ls, base
    finally:
        ls.close()
        stop(proc)


def labels_of(base: str) -> dict[str, dict]:
    r = httpx.get(base + "/v1/labels", headers={"X-API-Key": KEY}, timeout=30)
    assert r.status_code == 200, r.text
    return {row["name"]: row for row in r.json()["labels"]}


def wait_until(check, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_label_studio_pre_annotations_follow_the_annotations(live):
    ls, base = live
    rows = tasks_of_se_cooking()
    pid = ls.create_project("mlcil live test", choices_config(LABELS))
    tids = ls.import_tasks(pid, [{"text": r["text"], "source_id": r["id"]} for r in rows])
    assert len(tids) == 40
    backend = ls.connect_backend(pid, base + "/labelstudio", key=KEY)
    assert backend["state"] == "CO", backend  # health and setup answered with the key as Basic Auth
    assert sorted(labels_of(base)) == sorted(LABELS)  # /setup made the config's choices labels
    hooks = ls.webhooks(pid)
    assert [h["url"] for h in hooks] == [base + "/labelstudio/webhook"]

    # before any annotation: predictions appear, empty
    ls.retrieve_predictions(pid)
    first = [ls.latest_prediction(t) for t in tids[:5]]
    assert all(p is not None and p["result"] == [] for p in first)

    # 20 annotations through Label Studio's API: each reaches mlcil through the webhook
    truth = {t: [lab for lab in r["labels"] if lab in LABELS] for t, r in zip(tids, rows)}
    anns = {t: ls.annotate(t, choices_result(truth[t]))["id"] for t in tids[:20]}
    got = labels_of(base)
    for lab in LABELS:
        assert got[lab]["positives"] == sum(lab in truth[t] for t in tids[:20])
        assert got[lab]["negatives"] == sum(lab not in truth[t] for t in tids[:20])

    # pre-annotations follow: a newer model version, and the annotated label sets predicted back
    written = httpx.get(base + "/v1/health", headers={"X-API-Key": KEY}, timeout=30).json()["db_version"]
    ls.retrieve_predictions(pid)
    preds = {t: ls.latest_prediction(t) for t in tids}
    versions = {p["model_version"] for p in preds.values()}
    assert len(versions) == 1  # one retrieval, one model
    number = int(versions.pop().removeprefix("mlcil-v"))
    assert number >= written > int(first[0]["model_version"].removeprefix("mlcil-v"))  # includes every annotation
    assert all(0.0 <= p["score"] <= 1.0 for p in preds.values())
    agree = np.mean([sorted(chosen(preds[t])) == sorted(truth[t]) for t in tids[:20]])
    assert agree >= 0.8, f"only {agree:.0%} of the annotated tasks predicted back"
    assert any(chosen(preds[t]) for t in tids[20:30])  # unseen tasks get pre-annotations

    # update (relabel), skip, delete
    t0 = tids[0]
    ls.update_annotation(anns[t0], choices_result(sorted(set(LABELS) - set(truth[t0]))))
    ls.annotate(tids[20], choices_result(["eggs"]), skipped=True)
    ls.delete_annotation(anns[tids[1]])
    final = {t: truth[t] for t in tids[2:20]} | {t0: sorted(set(LABELS) - set(truth[t0]))}
    got = labels_of(base)
    for lab in LABELS:
        assert got[lab]["positives"] == sum(lab in v for v in final.values()), lab
        assert got[lab]["negatives"] == sum(lab not in v for v in final.values()), lab

    # a label added to the config, with a hint: a new label, zero-shot until annotated
    ls.set_config(pid, choices_config(LABELS + [NEW], {NEW: HINT}))
    wait_until(lambda: NEW in labels_of(base), what="the new label")
    new = labels_of(base)[NEW]
    assert (new["positives"], new["negatives"], new["description"]) == (1, 0, HINT)  # its name example only
    r = httpx.post(base + "/v1/predict", headers={"X-API-Key": KEY}, timeout=60,
                   json={"inputs": [row["text"] for row in rows]}).json()["predictions"]
    p_new = np.array([p["proba"][NEW] for p in r])
    assert p_new[30:].mean() > p_new[:30].mean()  # knife questions score higher before any knives annotation
    for t in tids[30:35]:  # annotate knife questions (and their other labels)
        ls.annotate(t, choices_result([lab for lab in rows[tids.index(t)]["labels"] if lab in LABELS + [NEW]]))
    got = labels_of(base)
    assert got[NEW]["positives"] == 1 + 5 and got[NEW]["negatives"] == 0  # old annotations stay absent for it
    ls.retrieve_predictions(pid)
    preds = {t: ls.latest_prediction(t) for t in tids}
    assert any(NEW in chosen(preds[t]) for t in tids[35:])  # the new label covered on unannotated tasks
    assert all(NEW in chosen(preds[t]) for t in tids[30:35])

    # active learning: with the project's model version set to the newest one, Label Studio ranks
    # tasks by mlcil's scores (the live model's title matches no prediction's version)
    versions = {p["model_version"] for p in preds.values()}
    assert len(versions) == 1
    ls.patch(f"/api/projects/{pid}", {"model_version": versions.pop()})
    listed = ls.get("/api/tasks", project=pid, page_size=100, fields="all")["tasks"]
    scores = {t["id"]: t["predictions_score"] for t in listed}
    assert all(scores[t] == pytest.approx(preds[t]["score"]) for t in tids)
