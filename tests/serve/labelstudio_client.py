"""A small client of Label Studio's REST API (what the tests, the benchmark and the screenshots need),
and ``mlcil serve`` started as a subprocess for it.

Label Studio itself comes from ``eval "$(.ci/labelstudio.sh)"`` (``$MLCIL_TEST_LABEL_STUDIO`` and
``$MLCIL_TEST_LABEL_STUDIO_TOKEN``, a legacy API token).
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ENV_URL = "MLCIL_TEST_LABEL_STUDIO"
ENV_TOKEN = "MLCIL_TEST_LABEL_STUDIO_TOKEN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choices_config(values: list[str], hints: dict[str, str] | None = None, name: str = "tags") -> str:
    """A labeling config: a multi-label ``Choices`` over the task's ``$text``."""
    hints = hints or {}
    items = "".join(f'<Choice value="{v}"' + (f' hint="{hints[v]}"' if v in hints else "") + "/>" for v in values)
    return (f'<View><Text name="text" value="$text"/><Choices name="{name}" toName="text" choice="multiple" '
            f'showInline="true">{items}</Choices></View>')


def read_jsonl(path: str | Path, n: int | None = None) -> list[dict]:
    """The first ``n`` rows of a (gzipped) JSON-lines data set: {id, text, labels}."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if n is not None and len(rows) >= n:
                break
    return rows


class LabelStudio:
    """Label Studio's REST API with a (legacy) API token."""

    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Token {token}"}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _ok(self, r: httpx.Response) -> dict | list:
        if r.status_code >= 400:
            raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else {}

    def get(self, path: str, **params) -> dict | list:
        return self._ok(self.http.get(path, params=params))

    def post(self, path: str, body=None, **params) -> dict | list:
        return self._ok(self.http.post(path, json=body, params=params))

    def patch(self, path: str, body: dict) -> dict:
        return self._ok(self.http.patch(path, json=body))

    def delete(self, path: str) -> None:
        r = self.http.delete(path)
        if r.status_code >= 400:
            raise RuntimeError(f"DELETE {path}: {r.status_code} {r.text[:500]}")

    # ---- projects, tasks ------------------------------------------------------------------
    def create_project(self, title: str, label_config: str) -> int:
        """A project that shows the live model's predictions as pre-annotations."""
        p = self.post("/api/projects", {"title": title, "label_config": label_config,
                                        "show_collab_predictions": True})
        return int(p["id"])

    def project(self, pid: int) -> dict:
        return self.get(f"/api/projects/{pid}")

    def set_config(self, pid: int, label_config: str) -> dict:
        return self.patch(f"/api/projects/{pid}", {"label_config": label_config})

    def import_tasks(self, pid: int, data: list[dict]) -> list[int]:
        """Import tasks ``[{"text": …, …}]``; returns their ids in order."""
        self.post(f"/api/projects/{pid}/import", [{"data": d} for d in data])
        return [t["id"] for t in self.tasks(pid)][-len(data):]

    def tasks(self, pid: int) -> list[dict]:
        out, page = [], 1
        while True:
            r = self.get("/api/tasks", project=pid, page=page, page_size=500)
            batch = r["tasks"] if isinstance(r, dict) else r
            out += batch
            if len(batch) < 500:
                return sorted(out, key=lambda t: t["id"])
            page += 1

    # ---- the ML backend -------------------------------------------------------------------
    def connect_backend(self, pid: int, url: str, key: str | None = None, title: str = "mlcil") -> dict:
        """Add ``url`` as the project's ML backend (Basic Auth with ``key`` as password), use it as the live
        model, and give the webhook Label Studio made for it the key as a Bearer header."""
        body = {"url": url, "project": pid, "title": title, "is_interactive": False}
        if key:
            body.update(auth_method="BASIC_AUTH", basic_auth_user="labelstudio", basic_auth_pass=key)
        backend = self.post("/api/ml", body)
        self.patch(f"/api/projects/{pid}", {"model_version": title, "show_collab_predictions": True})
        if key:
            for hook in self.get("/api/webhooks", project=pid):
                if hook["url"].startswith(url.rstrip("/")):
                    self.patch(f"/api/webhooks/{hook['id']}", {"headers": {"Authorization": f"Bearer {key}"}})
        return backend

    def webhooks(self, pid: int) -> list[dict]:
        return self.get("/api/webhooks", project=pid)

    def backend_state(self, backend_id: int) -> dict:
        return self.get(f"/api/ml/{backend_id}")

    def retrieve_predictions(self, pid: int, task_ids: list[int] | None = None) -> dict:
        """The data manager's "Retrieve predictions" action on the tasks (all when None)."""
        items = {"all": True, "excluded": []} if task_ids is None else {"all": False, "included": task_ids}
        return self.post("/api/dm/actions", {"selectedItems": items}, id="retrieve_tasks_predictions", project=pid)

    def predictions(self, task_id: int) -> list[dict]:
        return self.get("/api/predictions", task=task_id)

    def latest_prediction(self, task_id: int) -> dict | None:
        preds = self.predictions(task_id)
        return max(preds, key=lambda p: p["id"]) if preds else None

    # ---- annotations ----------------------------------------------------------------------
    def annotate(self, task_id: int, result: list[dict], skipped: bool = False) -> dict:
        return self.post(f"/api/tasks/{task_id}/annotations", {"result": result, "was_cancelled": skipped})

    def update_annotation(self, annotation_id: int, result: list[dict]) -> dict:
        return self.patch(f"/api/annotations/{annotation_id}", {"result": result})

    def delete_annotation(self, annotation_id: int) -> None:
        self.delete(f"/api/annotations/{annotation_id}")


def choices_result(values: list[str], name: str = "tags") -> list[dict]:
    """An annotation's result choosing ``values`` in the control ``name`` over ``text``."""
    return [{"from_name": name, "to_name": "text", "type": "choices", "value": {"choices": list(values)}}]


def chosen(prediction: dict | None, name: str = "tags") -> list[str]:
    """The choices of a prediction (or annotation) result."""
    if not prediction:
        return []
    return [c for item in prediction["result"] if item.get("from_name") == name
            for c in item["value"].get("choices", [])]


def start_mlcil(db: str, *extra: str, keys: str | None = None, timeout: float = 180.0,
                log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """``mlcil serve`` on loopback and a free port (``keys``: the keys line of $MLCIL_SERVE_KEYS); returns
    (process, base URL) once /labelstudio/health answers."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("MLCIL_SERVE_KEYS", None)
    if keys:
        env["MLCIL_SERVE_KEYS"] = keys
    err = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "mlcil.cli", "serve", "--db", db, "--host", "127.0.0.1",
                             "--port", str(port), *extra], stdout=subprocess.DEVNULL, stderr=err, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlcil serve exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(base + "/labelstudio/health", timeout=2.0).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("mlcil serve did not start in time")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
