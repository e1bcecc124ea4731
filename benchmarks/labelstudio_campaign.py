"""Label Studio campaign: pre-annotation quality and annotation-to-prediction latency of ``mlcil serve``
as a Label Studio ML backend, beside a retrain-per-annotation baseline.

Two parts:

1. **Campaign** (in process, through the ``/labelstudio`` routes with Label Studio 1.23's payloads):
   ``--n`` se_cooking questions (MiniLM embeddings) annotated one at a time in three campaigns; each
   campaign adds ``--per-campaign`` tags to the labeling config (the most frequent tags of the rows,
   in frequency order, dealt round-robin). Before each annotation the task's pre-annotation
   probabilities are recorded (/labelstudio/setup then /v1/predict: the probabilities behind the
   pre-annotation), then the annotation is submitted (ANNOTATION_CREATED webhook). Per campaign:
   mAP of those probabilities against the annotations that followed (labels with a positive in the
   campaign), and the time per annotation of (a) mlcil's webhook (embed + exact update) and (b) the
   baseline: retraining a one-vs-rest logistic regression (scikit-learn, lbfgs) on all annotations
   so far after every annotation (absent labels as negatives), and its mAP measured the same way.
2. **Latency** (``--live``, needs ``eval "$(.ci/labelstudio.sh)"``): a real Label Studio and a real
   ``mlcil serve --encoder minilm`` process; ``--live-n`` annotations submitted through Label
   Studio's API; for each, the time from the submission to the first pre-annotation Label Studio
   stores (data manager "retrieve predictions" on an unannotated task, polled) whose model version
   includes it.

    python benchmarks/labelstudio_campaign.py --n 500 --live --live-n 30
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serve.labelstudio_client import (LabelStudio, choices_config, choices_result, read_jsonl,  # noqa: E402
                                            start_mlcil, stop)

OUT = ROOT / "benchmarks" / "results"


def rows_and_campaigns(data: Path, n: int, per: int) -> tuple[list[dict], list[list[str]]]:
    rows = read_jsonl(data / "se_cooking" / "se_cooking.jsonl.gz", n)
    freq = collections.Counter(t for r in rows for t in r["labels"] if t != "please-remove-this-tag")
    top = [t for t, _ in freq.most_common(3 * per)]
    return rows, [top[k::3] for k in range(3)]


def campaign(rows: list[dict], campaigns: list[list[str]], X: np.ndarray, encode) -> dict:
    from fastapi.testclient import TestClient
    from sklearn.linear_model import LogisticRegression

    from mlcil.metrics.ranking import average_precision
    from mlcil.serve.app import create_app
    from mlcil.serve.options import Options, Policy
    from mlcil.serve.repository import Store
    from mlcil.serve.service import TaggingService
    import tempfile

    n = len(rows)
    bounds = [0, int(n * 0.4), int(n * 0.7), n]
    tmp = tempfile.mkdtemp(prefix="ls-campaign-")
    service = TaggingService(Store(f"sqlite:///{tmp}/c.db"), Options(), policy=Policy(background=False))
    cache = {r["text"]: X[i] for i, r in enumerate(rows)}

    def cached_encode(texts):  # the embeddings made once (MiniLM); the timing of embedding is measured apart
        return np.stack([cache[t] if t in cache else encode([t])[0] for t in texts])

    app = create_app(service, encoder=cached_encode, names=encode)
    out = {"campaigns": []}
    labels_now: list[str] = []
    Y_all = np.zeros((n, sum(map(len, campaigns))), dtype=np.uint8)
    known_cols: list[list[int]] = []
    with TestClient(app) as client:
        for k, new in enumerate(campaigns):
            labels_now = labels_now + new
            cfg = choices_config(labels_now)
            project = {"id": 1, "label_config": cfg}
            assert client.post("/labelstudio/webhook", json={"action": "PROJECT_UPDATED", "project": project}).status_code == 200
            service.refresh()
            lo, hi = bounds[k], bounds[k + 1]
            P_mlcil = np.zeros((hi - lo, len(labels_now)))
            P_base = np.zeros((hi - lo, len(labels_now)))
            Y = np.zeros((hi - lo, len(labels_now)), dtype=np.uint8)
            t_hook, t_visible, t_base = [], [], []
            t_calib = 0.0
            for j, i in enumerate(range(lo, hi)):
                if service.model.ridge is not None:
                    pred = client.post("/v1/predict", json={"vectors": [X[i].tolist()]}).json()["predictions"][0]
                    P_mlcil[j] = [pred["proba"][lab] for lab in labels_now]
                # baseline: the model retrained from scratch on the annotations so far (absent = negative)
                if i > 0:
                    t = time.perf_counter()
                    cols = len(labels_now)
                    Yb = Y_all[:i, :cols]
                    for c in range(cols):
                        if Yb[:, c].min() == Yb[:, c].max():
                            P_base[j, c] = float(Yb[0, c])
                            continue
                        lr = LogisticRegression(max_iter=200).fit(X[:i], Yb[:, c])
                        P_base[j, c] = lr.predict_proba(X[i:i + 1])[0, 1]
                    t_base.append(time.perf_counter() - t)
                chosen = [lab for lab in rows[i]["labels"] if lab in labels_now]
                Y[j] = [lab in chosen for lab in labels_now]
                Y_all[i, :len(labels_now)] = Y[j]
                body = {"action": "ANNOTATION_CREATED", "project": project,
                        "annotation": {"id": i + 1, "task": i + 1, "result": choices_result(chosen),
                                       "was_cancelled": False},
                        "task": {"id": i + 1, "data": {"text": rows[i]["text"]}}}
                t = time.perf_counter()
                r = client.post("/labelstudio/webhook", json=body)
                t_hook.append(time.perf_counter() - t)
                service.refresh()  # solve and publish: the next prediction reflects it
                t_visible.append(time.perf_counter() - t)
                if service.calibration_due():  # what the refresher does in the background (λ, Platt maps)
                    t = time.perf_counter()
                    service.calibrate()
                    service.refresh()
                    t_calib += time.perf_counter() - t
                assert service.model.version >= r.json()["version"]
            keep = Y.sum(axis=0) > 0
            ap_m = average_precision(Y[:, keep], P_mlcil[:, keep])
            ap_b = average_precision(Y[:, keep], P_base[:, keep])
            out["campaigns"].append({
                "campaign": k + 1, "tasks": hi - lo, "labels": len(labels_now), "new_labels": new,
                "labels_with_positives": int(keep.sum()),
                "map_mlcil": float(ap_m.mean()), "map_retrain": float(ap_b.mean()),
                "mlcil_webhook_ms_p50": 1e3 * float(np.median(t_hook)),
                "mlcil_webhook_ms_p99": 1e3 * float(np.quantile(t_hook, 0.99)),
                "mlcil_visible_ms_p50": 1e3 * float(np.median(t_visible)),
                "mlcil_visible_ms_p99": 1e3 * float(np.quantile(t_visible, 0.99)),
                "retrain_ms_p50": 1e3 * float(np.median(t_base)) if t_base else None,
                "retrain_ms_p99": 1e3 * float(np.quantile(t_base, 0.99)) if t_base else None,
                "retrain_s_total": float(np.sum(t_base)), "mlcil_s_total": float(np.sum(t_visible)),
                "mlcil_calibration_s_total": t_calib})
            print(json.dumps(out["campaigns"][-1]), flush=True)
    service.close()
    return out


def live_latency(rows: list[dict], labels: list[str], n_ann: int, log: Path) -> dict:
    """Submission (Label Studio API) -> first stored pre-annotation from a model version that includes it."""
    import httpx

    from mlcil.serve.auth import hash_key
    import tempfile

    key = "bench-key"
    tmp = Path(tempfile.mkdtemp(prefix="ls-live-"))
    proc, base = start_mlcil(f"sqlite:///{tmp / 'tagger.db'}", "--encoder", "minilm", "--refresh-interval", "0.1",
                             keys=f"{hash_key(key)} write bench", log=log)
    ls = LabelStudio(os.environ["MLCIL_TEST_LABEL_STUDIO"], os.environ["MLCIL_TEST_LABEL_STUDIO_TOKEN"])
    try:
        pid = ls.create_project("mlcil latency benchmark", choices_config(labels))
        tids = ls.import_tasks(pid, [{"text": r["text"]} for r in rows[:n_ann + 1]])
        backend = ls.connect_backend(pid, base + "/labelstudio", key=key)
        probe = tids[-1]
        submit, total = [], []
        for t, r in zip(tids[:n_ann], rows):
            t0 = time.perf_counter()
            ls.annotate(t, choices_result([lab for lab in r["labels"] if lab in labels]))
            t1 = time.perf_counter()
            written = httpx.get(base + "/v1/health", timeout=30).json()
            want = int(written["db_version"])
            while True:
                ls.retrieve_predictions(pid, [probe])
                p = ls.latest_prediction(probe)
                if p and int(p["model_version"].split("-v")[1]) >= want:
                    break
            total.append(time.perf_counter() - t0)
            submit.append(t1 - t0)
        del backend
        return {"annotations": n_ann, "submit_s_p50": float(np.median(submit)),
                "submit_s_p99": float(np.quantile(submit, 0.99)), "reflected_s_p50": float(np.median(total)),
                "reflected_s_p99": float(np.quantile(total, 0.99))}
    finally:
        ls.close()
        stop(proc)


def rewrite_md() -> None:
    """The Markdown table again from the committed JSON (``--md-only``)."""
    write_md(json.loads((OUT / "labelstudio_campaign.json").read_text()))


def main() -> None:
    if "--md-only" in sys.argv:
        return rewrite_md()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--per-campaign", type=int, default=5)
    ap.add_argument("--live", action="store_true")
    ap.add_argument("--live-n", type=int, default=30)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = Path(os.environ.get("MLCIL_DATA", ROOT.parent / "shared" / "data"))
    from mlcil.encoders import make_encoder

    from mlcil.serve.app import limit_threads

    limit_threads(1)
    rows, campaigns = rows_and_campaigns(data, args.n, args.per_campaign)
    enc = make_encoder("minilm", device="cpu")
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / f"mlcil-labelstudio-campaign-{len(rows)}.npz"
    if cache.exists():  # embeddings of an earlier run (same rows)
        saved = np.load(cache)
        X, embed_ms = saved["X"], float(saved["embed_ms"])
    else:
        t = time.perf_counter()
        X = np.asarray(enc.encode([r["text"] for r in rows]), dtype=np.float32)
        embed_ms = 1e3 * (time.perf_counter() - t) / len(rows)  # model loading included
        np.savez(cache, X=X, embed_ms=embed_ms)
    print(f"embedded {len(rows)} texts: {embed_ms:.1f} ms each", flush=True)
    result = {"command": "python benchmarks/labelstudio_campaign.py " + " ".join(sys.argv[1:]),
              "date": datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} cores (shared)", "n": len(rows), "campaign_labels": campaigns,
              "embed_ms_per_text": embed_ms, "encoder": enc.id}
    result.update(campaign(rows, campaigns, X, enc.encode))
    if args.live:
        import tempfile

        result["live"] = live_latency(rows, campaigns[0], args.live_n, Path(tempfile.mkdtemp()) / "mlcil.log")
        print(json.dumps(result["live"]), flush=True)
    result["load_average_1min"] = os.getloadavg()[0]  # at the end of the run
    (OUT / "labelstudio_campaign.json").write_text(json.dumps(result, indent=1) + "\n")
    write_md(result)


def write_md(r: dict) -> None:
    lines = [f"# Label Studio campaign: pre-annotations and latency ({r['date']})", "",
             f"`{r['command']}`; {r['machine']}, load average {r.get('load_average_1min', float('nan')):.0f}; se_cooking, first "
             f"{r['n']} questions, embedded once by `{r.get('encoder', 'minilm')}` ({r['embed_ms_per_text']:.0f} ms "
             "per text, model loading included); labels added in three campaigns "
             "(40% / 30% / 30% of the questions), each question annotated once, in order, with the tags of the "
             "current config. Pre-annotation = the model's calibrated probabilities just before the "
             "annotation; mAP over the labels with a positive in the campaign.", "",
             "| campaign | questions | labels (new) | mAP mlcil | mAP retrain | mlcil webhook ms p50 / p99 | "
             "mlcil visible ms p50 / p99 | retrain ms p50 / p99 | total s mlcil / retrain |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in r["campaigns"]:
        rp = "–" if c["retrain_ms_p50"] is None else f"{c['retrain_ms_p50']:.0f} / {c['retrain_ms_p99']:.0f}"
        lines.append(f"| {c['campaign']} | {c['tasks']} | {c['labels']} ({', '.join(c['new_labels'])}) | "
                     f"{c['map_mlcil']:.3f} | {c['map_retrain']:.3f} | {c['mlcil_webhook_ms_p50']:.0f} / "
                     f"{c['mlcil_webhook_ms_p99']:.0f} | {c['mlcil_visible_ms_p50']:.0f} / "
                     f"{c['mlcil_visible_ms_p99']:.0f} | {rp} | {c['mlcil_s_total']:.1f} + {c['mlcil_calibration_s_total']:.1f} / "
                     f"{c['retrain_s_total']:.1f} |")
    lines += ["", "*mlcil webhook*: Label Studio's ANNOTATION_CREATED call answered (embedding + exact update "
              "committed). *mlcil visible*: until the published model includes it — the service refreshed "
              "synchronously after each webhook (the solve W = (G + λI)⁻¹B the background refresher does; a "
              "running service adds its refresh schedule, `--refresh-interval`). λ and the Platt maps are "
              "refitted when due (what the background does), timed apart (total s column: visible + "
              "calibration). *retrain*: one-vs-rest logistic regression (scikit-learn, lbfgs, `max_iter=200`) "
              "refitted on every annotation so far after each annotation, one label after another, one thread: "
              "the retrain-per-annotation design of Label Studio's example backends."]
    if "live" in r:
        lv = r["live"]
        lines += ["", "## Against a real Label Studio 1.23.2", "",
                  f"{lv['annotations']} annotations submitted through Label Studio's API to a project whose ML "
                  "backend is `mlcil serve --encoder minilm --refresh-interval 0.1` (a separate process, Basic "
                  "Auth); Label Studio calls the webhook inside the submission request.", "",
                  "| | p50 s | p99 s |", "|---|---|---|",
                  f"| submission answered (webhook included) | {lv['submit_s_p50']:.2f} | {lv['submit_s_p99']:.2f} |",
                  f"| submission → a stored pre-annotation that reflects it | {lv['reflected_s_p50']:.2f} | "
                  f"{lv['reflected_s_p99']:.2f} |", "",
                  "The second row includes Label Studio's own request handling: its \"retrieve predictions\" "
                  "action (health check, /setup, /predict, storing the prediction)."]
    (OUT / "labelstudio_campaign.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
