"""The Label Studio ML backend protocol under ``/labelstudio`` (give Label Studio ``http://<host>:<port>/labelstudio``).

- ``GET  /labelstudio/health`` — ``{"status": "UP", "model_class": "mlcil", "model_version"}``.
- ``POST /labelstudio/setup`` — ``{project, schema, …}``: syncs the labels with the config (``schema``)
  and answers ``{"model_version"}``, waiting up to :data:`SETUP_WAIT_S` for the latest write to be
  built (Label Studio asks again for predictions of a task only when this version changed).
- ``POST /labelstudio/predict`` — ``{tasks, project, label_config}`` → ``{"results": [{result, score,
  model_version}]}``, one per task.
- ``POST /labelstudio/webhook`` — Label Studio's webhook (created with the ML backend): annotation
  created / updated / deleted teach, relabel, forget; project updated syncs the labels.
- ``POST /labelstudio/train`` — every annotated task at once (Label Studio's "Start training"
  button): taught or relabelled; nothing else to train.
- ``GET  /labelstudio/versions`` — the current model version.
- ``GET  /labelstudio/audit?project=&label=&limit=`` — annotations whose label looks wrong.

**Auth.** Without API keys (``--keys`` / ``$MLCIL_SERVE_KEYS``) the routes are open, as the rest of
the service. With keys, every route but /health needs a key of scope ``write`` (/audit: ``read``),
given as Label Studio sends it: the ML backend's *Basic Auth* (any user name, the key as
password), or ``Authorization: Bearer <key>`` / ``X-API-Key`` (give the webhook Label Studio made
that header: it sends no basic auth).
"""

from __future__ import annotations

import base64
import binascii
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mlcil.serve.auth import KeyRing, allows
from mlcil.serve.errors import Invalid
from mlcil.serve.labelstudio.backend import Backend, project_id, version_name
from mlcil.serve.routing import responses
from mlcil.serve.security import Forbidden, Unauthorized

#: longest wait of /setup for the latest write to be built (Label Studio's setup timeout is 3 s)
SETUP_WAIT_S = 2.0
PREFIX = "/labelstudio"

router = APIRouter(prefix=PREFIX, tags=["labelstudio"])
#: the error answers of a route behind the key (ErrorBody each)
ERRORS = responses(401, 403, 404, 409, 503, 507)


def backend_of(request: Request) -> Backend:
    """The app's :class:`Backend`, made on first use from the app's service and encoders."""
    state = request.app.state
    backend = getattr(state, "labelstudio", None)
    if backend is None:
        settings = getattr(state, "settings", None)
        backend = Backend(state.service, getattr(settings, "encoder", None), getattr(settings, "names", None))
        state.labelstudio = backend
    return backend


def _key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("authorization", "malformed Basic credentials") from None
        return password
    if scheme.lower() == "bearer":
        return value.strip()
    return request.headers.get("x-api-key", "")


def check_key(request: Request, needed: str) -> None:
    """With API keys configured, the request's key (Basic password, Bearer or X-API-Key) must allow ``needed``."""
    keys: KeyRing | None = getattr(request.app.state, "keys", None)
    if not keys:
        return
    key = _key(request)
    if not key:
        raise Unauthorized("authorization", "missing API key: set the ML backend's Basic Auth password (or an "
                                            "'Authorization: Bearer <key>' header) to an mlcil API key")
    found = keys.scope_of(key)
    if found is None:
        raise Unauthorized("authorization", "unknown API key")
    if not allows(found.scope, needed):
        raise Forbidden("authorization", f"this key has scope {found.scope!r}; {needed!r} is needed")


async def _body(request: Request) -> dict:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Invalid("body", f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("body", "expected a JSON object")
    return body


@router.get("/health")
@router.get("/")
async def health(request: Request) -> dict:
    """Label Studio's health check (no key needed)."""
    return {"status": "UP", "model_class": "mlcil", "model_version": version_name(request.app.state.service.served_version())}


@router.post("/setup", responses=ERRORS)
async def setup(request: Request) -> dict:
    check_key(request, "write")
    body = await _body(request)
    backend = backend_of(request)
    project = project_id(body.get("project"))
    schema = body.get("schema") or body.get("label_config")

    def work() -> dict:
        if schema:
            backend.sync(project, schema)
        return {"model_version": backend.model_version(wait_s=SETUP_WAIT_S)}

    return await run_in_threadpool(work)


@router.get("/versions", responses=ERRORS)
async def versions(request: Request) -> dict:
    check_key(request, "write")
    return {"versions": [version_name(request.app.state.service.served_version())]}


@router.post("/predict", responses=ERRORS)
async def predict(request: Request) -> dict:
    check_key(request, "write")
    body = await _body(request)
    backend = backend_of(request)
    project = project_id(body.get("project"))
    results = await run_in_threadpool(backend.predict, project, body.get("label_config"), body.get("tasks"))
    return {"results": results}


@router.post("/webhook", status_code=200, responses=ERRORS)
async def webhook(request: Request) -> JSONResponse:
    check_key(request, "write")
    body = await _body(request)
    outcome = await run_in_threadpool(backend_of(request).webhook, body)
    return JSONResponse(outcome.body())


@router.post("/train", responses=ERRORS)
async def train(request: Request) -> dict:
    """Label Studio's training request (every annotated task): teach or relabel each annotation."""
    check_key(request, "write")
    body = await _body(request)
    backend = backend_of(request)
    project = project_id(body.get("project"))
    tasks = body.get("annotations") or []
    if not isinstance(tasks, list):
        raise Invalid("annotations", "expected a list of tasks with their annotations")

    def work() -> dict:
        control = backend.control(project, body.get("label_config"))
        pairs = [(ann, task) for task in tasks if isinstance(task, dict)
                 for ann in task.get("annotations") or [] if isinstance(ann, dict) and "id" in ann]
        outcome = backend.teach(project, control, pairs) if pairs else None
        return {"job": None, **(outcome.body() if outcome else {"status": "nothing to teach"})}

    return await run_in_threadpool(work)


@router.get("/audit", responses=ERRORS)
async def audit(request: Request, project: int, label: str | None = None, limit: int = 20) -> dict:
    """Annotations of the project whose label looks wrong (leave-one-out audit), flagged first."""
    check_key(request, "read")
    if not 1 <= limit <= 1000:
        raise Invalid("limit", "expected 1..1000")
    backend = backend_of(request)
    return await run_in_threadpool(backend.audit, str(project), label, limit)
