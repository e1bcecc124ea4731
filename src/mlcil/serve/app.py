"""HTTP API of the tagging service (FastAPI; OpenAPI docs at ``/docs``, spec at ``/openapi.json``).

This module maps HTTP to :class:`~mlcil.serve.service.TaggingService` calls and errors to status
codes, and nothing else. Endpoints (JSON; every error is ``{"error": {"status", "field",
"message"}}``, 5xx included):

- ``GET  /v1/health`` — no key needed: status, served and latest model version, counts.
- ``GET  /v1/labels`` (read) — labels with counts of known positives / explicit negatives.
- ``POST /v1/labels`` (write) — create a label: name, optional description and threshold.
- ``PATCH /v1/labels/{name}`` (write) — set a label's threshold (null = default) or description.
- ``POST /v1/teach`` (write) — examples with the labels known for each; an id already stored is
  relabelled exactly. One transaction per request; the reply names the new version.
- ``POST /v1/predict`` (read) — calibrated probabilities, ridge scores and decided labels from the
  newest model this process has built (never waits for a factorisation; ``min_version`` waits
  for a given version); the reply names the version used.
- ``GET  /v1/labels/{name}/suspicious`` (write) — examples whose label looks wrong.
- ``DELETE /v1/labels/{name}`` and ``POST /v1/forget`` (admin) — forget a label / examples exactly.
- ``POST /v1/lambda`` (admin) — fix λ, or choose it by leave-one-out (and recalibrate).
- ``GET  /v1/model`` (admin) — the model as an ``Analytic`` learner file (``Learner.load``).
- ``GET  /metrics`` (read) — Prometheus metrics.

Requests pass one ASGI gate before any body is read: the route's key scope is checked (401/403),
then the body size (413); it also counts every answer (5xx included) under bounded label values.
JSON bodies are parsed strictly (duplicate keys, NaN and Infinity are malformed JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import tempfile
import time
from typing import Any, Callable

import numpy as np
from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from mlcil.serve import schemas as S
from mlcil.serve.auth import KeyRing, allows
from mlcil.serve.errors import (Conflict, Invalid, NotFound, NotReady, ServiceError, StorageFull, TooLarge,
                                Unavailable)
from mlcil.serve.service import Limits, Options, Policy, TaggingService, check_label_name
from mlcil.serve.store import Store

log = logging.getLogger("mlcil.serve")

Encoder = Callable[[list], np.ndarray]
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_BATCH = 1024
#: HTTP status of each kind of service error
STATUS = {Invalid: 422, NotFound: 404, Conflict: 409, TooLarge: 413, Unavailable: 503, StorageFull: 507,
          NotReady: 503}
#: methods counted under their own name in metrics; any other is counted as 'other'
METHODS = {"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"}
F32_MAX = float(np.finfo(np.float32).max)
#: predictions of at most this many rows are computed on the event loop (cheaper than a thread hop)
INLINE_ROWS = 16


# ---- strict JSON -------------------------------------------------------------------------------
class _Malformed(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise _Malformed(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str):
    raise _Malformed(f"{name} is not a JSON number")


def strict_loads(body: bytes) -> Any:
    """JSON with duplicate keys, NaN and ±Infinity refused (raised as :class:`json.JSONDecodeError`)."""
    text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Malformed as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


class StrictRoute(APIRoute):
    """A route whose JSON body is parsed by :func:`strict_loads`."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictRequest(request.scope, request.receive))

        return strict


# ---- micro-batching ----------------------------------------------------------------------------
class _Batcher:
    """Predictions of the requests that reach the event loop together share one φ(X)ᵀW.

    φ of a batch-1 request is bound by reading R (d×M floats) from memory: stacking the rows of
    every request ready in the same loop iteration reads R once for all of them. Each request
    still gets the model version it was scored with.
    """

    def __init__(self, service: TaggingService, observe: Callable[[int], None]) -> None:
        self.service = service
        self.observe = observe
        self.pending: list[tuple[np.ndarray, asyncio.Future]] = []

    async def scores(self, X: np.ndarray):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.pending:
            loop.call_soon(self._flush)
        self.pending.append((X, future))
        return await future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        self.observe(sum(len(x) for x, _ in batch))
        try:
            model, S = self.service.predict(np.vstack([x for x, _ in batch]))
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for x, future in batch:
            if not future.done():
                future.set_result((model, S[start:start + len(x)]))
            start += len(x)


# ---- errors ------------------------------------------------------------------------------------
def _error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "field": field, "message": message}}, status_code=status)


def _field(loc: tuple | list) -> str:
    """('body', 'examples', 0, 'vector') -> 'examples[0].vector'."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _responses(*codes: int) -> dict:
    words = {400: "Malformed JSON", 401: "Missing or unknown API key", 403: "The key's scope is too small",
             404: "Unknown label or example", 409: "Conflicts with the stored state", 413: "Over a size limit",
             422: "Invalid input (the field is named)", 500: "Internal error", 503: "Database unavailable, or "
             "min_version not reached: retry", 507: "The database is full: nothing was written"}
    return {c: {"model": S.ErrorBody, "description": words[c]} for c in sorted(set(codes) | {413, 422, 500})}


# ---- the gate: auth, body limit, metrics, JSON 500 -----------------------------------------------
class _Gate:
    """ASGI middleware in front of the app: auth (before the body is read), body limit, metrics, 500s."""

    def __init__(self, app, *, fastapi: FastAPI, keys: KeyRing, scopes: dict[tuple[str, str], str], limit: int,
                 count: Callable[[str, str, int, float], None]) -> None:
        self.app = app
        self.fastapi = fastapi
        self.keys = keys
        self.scopes = scopes
        self.limit = limit
        self.count = count
        self._routes: dict[tuple[str, str], str | None] = {}

    def _route(self, scope) -> str | None:
        key = (scope["method"], scope["path"])
        if key in self._routes:
            return self._routes[key]
        found = None
        for route in self.fastapi.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                found = getattr(route, "path", None)
                break
        if len(self._routes) < 4096:  # hot paths are few; label names in paths could be many
            self._routes[key] = found
        return found

    def _authorise(self, scope, needed: str) -> JSONResponse | None:
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        header = headers.get(b"authorization", b"").decode("latin-1")
        key = header[7:].strip() if header.lower().startswith("bearer ") else \
            headers.get(b"x-api-key", b"").decode("latin-1")
        if not key:
            return _error(401, "authorization", "missing API key (Authorization: Bearer <key>)")
        found = self.keys.scope_of(key)
        if found is None:
            return _error(401, "authorization", "unknown API key")
        if not allows(found.scope, needed):
            return _error(403, "authorization", f"this key has scope {found.scope!r}; {needed!r} is needed")
        scope["mlcil.key"] = found.name
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "other"
        path = self._route(scope)
        status = {"code": 500, "started": False}

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = int(message["status"]), True
            await send(message)

        try:
            refusal = None
            needed = self.scopes.get(("GET" if scope["method"] == "HEAD" else scope["method"], path or ""))
            if self.keys and needed:
                refusal = self._authorise(scope, needed)
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            if refusal is None and length is not None and (not length.isdigit() or int(length) > self.limit):
                refusal = _error(413, "body", f"request body over {self.limit} bytes")
            if refusal is not None:
                return await refusal(scope, receive, counted_send)
            body = bytearray()
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    status["code"] = 499  # the client went away: not a server error
                    return
                body += message.get("body", b"")
                if len(body) > self.limit:
                    return await _error(413, "body", f"request body over {self.limit} bytes")(scope, receive,
                                                                                               counted_send)
                more = message.get("more_body", False)
            sent = False

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, counted_send)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON 500, counted
            log.exception("unhandled error on %s %s", scope["method"], scope.get("path"))
            if not status["started"]:
                await _error(500, "server", f"internal error: {type(exc).__name__}")(scope, receive, counted_send)
            status["code"] = 500
        finally:
            self.count(path or "unmatched", method, status["code"], time.perf_counter() - start)


# ---- the app -----------------------------------------------------------------------------------
def create_app(db: str | Store | TaggingService = "sqlite:///tagger.db", *, options: Options | None = None,
               keys: KeyRing | None = None, encoder: Encoder | None = None, max_body_bytes: int = MAX_BODY_BYTES,
               max_batch: int = MAX_BATCH, cors_origins: list[str] | None = None, limits: Limits | None = None,
               policy: Policy | None = None, names: Any = None) -> FastAPI:
    """The FastAPI app over a database URL (or an open store / service).

    keys: API keys (None or empty = auth disabled). encoder: raw inputs (list) -> n×d
    embeddings, used for ``input``/``inputs``; None = vectors only. names: texts (list of str) ->
    n×d embeddings by the text encoder that embeds the inputs: a label created then gets a name
    example from its name and description (zero-shot scores before its first example); None = off. max_body_bytes, max_batch:
    request limits (413). cors_origins: allowed origins (None = CORS off). limits, policy: see
    :class:`~mlcil.serve.service.Limits` and :class:`~mlcil.serve.service.Policy`.
    """
    if isinstance(db, TaggingService):
        service = db
    else:
        service = TaggingService(db if isinstance(db, Store) else Store(db), options, limits, policy)
    keys = keys or KeyRing()

    def name_embedding(name: str, description: str | None) -> np.ndarray:
        """The label's name ('cooking-time' -> 'cooking time') and description, embedded by ``names``."""
        text = name.replace("_", " ").replace("-", " ") + (f": {description}" if description else "")
        try:
            vec = np.asarray(names([text]), dtype=np.float32)
        except Exception as exc:  # the encoder rejected the text: a client error
            raise Invalid("description", f"text encoder failed on the label's name: {exc}") from exc
        if vec.ndim != 2 or vec.shape[0] != 1:
            raise Invalid("description", f"text encoder returned shape {vec.shape}, expected (1, d)")
        return vec[0]
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # everything loaded so far (torch, the model, the app) lives as long as the process: move it out
        # of the cyclic collector's reach, so that its full collections stay short under load
        gc.collect()
        gc.freeze()
        yield
        service.close()

    app = FastAPI(title="mlcil tagging service", version="2", lifespan=lifespan,
                  description="Add a label, teach it with a few embeddings, every client sees it within the "
                              "refresh bound; exact relabelling and forgetting. The library's Analytic model: "
                              "random features + ridge through sufficient statistics, calibrated probabilities.")
    app.router.route_class = StrictRoute
    app.state.service = service
    registry = CollectorRegistry()
    requests = Counter("mlcil_requests", "HTTP requests", ["route", "method", "status"], registry=registry)
    latency = Histogram("mlcil_request_seconds", "HTTP request latency", ["route"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    gauges = {name: Gauge(f"mlcil_{name}", text, registry=registry) for name, text in (
        ("model_version", "Model version served by this process"),
        ("db_version", "Latest model version seen in the database"),
        ("state_bytes", "Bytes of sufficient statistics (G, B) in memory"),
        ("examples", "Examples in the served model"), ("labels", "Labels in the served model"),
        ("refreshes", "Model refreshes by this process"),
        ("refresh_seconds", "Seconds spent refreshing the model"),
        ("calibrations", "Calibrations written by this process"), ("snapshots", "Snapshots written by this process"),
        ("background_errors", "Failures of background work (refresh, calibration, snapshot)"))}
    taught = Counter("mlcil_taught_examples", "Examples acknowledged by teach in this process", registry=registry)

    def count(route: str, method: str, status: int, seconds: float) -> None:
        requests.labels(route, method, str(status)).inc()
        latency.labels(route).observe(seconds)

    def observe_state() -> None:
        model, c = service.model, service.counters
        gauges["model_version"].set(model.version)
        gauges["db_version"].set(c.db_version)
        gauges["state_bytes"].set(service._state.nbytes if service._state is not None else 0)
        gauges["examples"].set(model.n_examples)
        gauges["labels"].set(len(model.labels))
        for name in ("refreshes", "refresh_seconds", "calibrations", "snapshots", "background_errors"):
            gauges[name].set(getattr(c, name))

    scopes: dict[tuple[str, str], str] = {}
    batch_rows = Histogram("mlcil_predict_batch_rows", "Rows scored together by one φ(X)ᵀW", registry=registry,
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128))
    batcher = _Batcher(service, batch_rows.observe)
    app.add_middleware(_Gate, fastapi=app, keys=keys, scopes=scopes, limit=max_body_bytes, count=count)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"])

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
        return _error(status, exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return _error(400, "body", f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}")
        return _error(422, _field(first.get("loc", ())), first.get("msg", "invalid value"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, "path" if exc.status_code in (404, 405) else "body", str(exc.detail))

    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
    api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key in X-API-Key")

    def require(needed: str, method: str, path: str) -> list:
        """The route's scope, enforced by the gate; declared here so that OpenAPI shows the schemes."""
        scopes[(method, path)] = needed
        if not keys:
            return []

        def check(request: Request, _b=Security(bearer), _k=Security(api_key)) -> None:
            if "mlcil.key" not in request.scope:  # the gate checks first; this never runs without it
                raise Unavailable("authorization", "the request bypassed the auth gate")

        return [Depends(check)]

    auth_codes = (401, 403) if keys else ()

    # ---- input checks ------------------------------------------------------------------------
    def check_batch(n: int, field: str) -> None:
        if n == 0:
            raise Invalid(field, "empty batch")
        if n > max_batch:
            raise TooLarge(field, f"batch of {n} over the limit of {max_batch}")

    def matrix(rows: list[Any], fields: list[str], raw: list[bool]) -> np.ndarray:
        """Embeddings n×d float32 from vectors or (when ``raw``) the encoder; finite, one d."""
        n = len(rows)
        if any(raw):
            if encoder is None:
                i = raw.index(True)
                raise Invalid(fields[i].replace("vector", "input"),
                              "raw inputs need an encoder; none is configured (send embedding vectors)")
            idx = [i for i in range(n) if raw[i]]
            try:
                enc = np.asarray(encoder([rows[i] for i in idx]), dtype=np.float32)
            except Exception as exc:  # the encoder rejected the input: a client error
                raise Invalid(fields[idx[0]].replace("vector", "input"), f"encoder failed: {exc}") from exc
            if enc.ndim != 2 or enc.shape[0] != len(idx):
                raise Invalid("input", f"encoder returned shape {enc.shape}, expected ({len(idx)}, d)")
            vecs: list[Any] = list(rows)
            for j, i in enumerate(idx):
                vecs[i] = enc[j]
        else:
            vecs = rows
        d = service.dim if service.dim is not None else len(vecs[0])
        lengths = [len(v) for v in vecs]
        if min(lengths) != d or max(lengths) != d or d == 0:
            for i, v in enumerate(vecs):
                if len(v) > service.limits.max_dim:
                    raise TooLarge(fields[i], f"{len(v)} numbers, over the dimension limit of {service.limits.max_dim}")
                if len(v) != d:
                    raise Invalid(fields[i], f"expected embedding dimension {d}, got {len(v)}")
            raise Invalid(fields[0], "vectors must be non-empty")
        if d > service.limits.max_dim:
            raise TooLarge(fields[0], f"{d} numbers, over the dimension limit of {service.limits.max_dim}")
        X = np.asarray(vecs, dtype=np.float64)
        if not (np.isfinite(X).all() and np.abs(X).max() <= F32_MAX):
            bad = ~np.isfinite(X) | (np.abs(X) > F32_MAX)
            i, j = map(int, np.argwhere(bad)[0])
            raise Invalid(f"{fields[i]}[{j}]", "not a finite float32 (NaN, inf or too large)")
        X32 = X.astype(np.float32)
        service.check_vectors(X32, fields[0].split("[")[0] if fields else "vectors")
        return X32

    # ---- endpoints -----------------------------------------------------------------------------
    @app.get("/v1/health", response_model=S.Health, responses=_responses(503))
    def health() -> dict:
        head = service.head()
        model = service.model
        observe_state()
        return {"status": "ok", "version": model.version, "db_version": head["version"],
                "examples": head["examples"], "labels": len(model.labels), "dim": service.dim, "lam": head["lam"],
                "backend": service.store.dialect, "auth": bool(keys), "encoder": encoder is not None}

    @app.get("/v1/labels", response_model=S.LabelsOut, responses=_responses(503, *auth_codes),
             dependencies=require("read", "GET", "/v1/labels"))
    def list_labels() -> dict:
        version, labels = service.labels()
        return {"version": version, "labels": labels}

    @app.post("/v1/labels", status_code=201, response_model=S.Written,
              responses=_responses(400, 409, 503, 507, *auth_codes), dependencies=require("write", "POST", "/v1/labels"))
    def create_label(body: S.LabelIn) -> dict:
        vector = None
        if names is not None:
            check_label_name(body.name, "name", service.limits.max_name)
            vector = name_embedding(body.name, body.description)
        return {"name": body.name,
                "version": service.create_label(body.name, body.description, body.threshold, name_vector=vector)}

    @app.patch("/v1/labels/{name}", response_model=S.Written, responses=_responses(400, 404, 503, 507, *auth_codes),
               dependencies=require("write", "PATCH", "/v1/labels/{name}"))
    def update_label(name: str, body: S.LabelPatch) -> dict:
        fields = set(body.model_fields_set)
        if not fields:
            raise Invalid("body", "nothing to change: give threshold and/or description")
        return {"name": name, "version": service.update_label(name, body.threshold, body.description, fields)}

    @app.get("/v1/labels/{name}/suspicious", response_model=S.SuspiciousOut,
             responses=_responses(404, 409, 503, *auth_codes), dependencies=require("write", "GET", "/v1/labels/{name}/suspicious"))
    def suspicious(name: str, limit: int = 20, include_absent: bool = False) -> dict:
        """Stored examples whose label most likely is wrong: exact leave-one-out probabilities + cleanlab."""
        if not 1 <= limit <= max_batch:
            raise Invalid("limit", f"must be between 1 and {max_batch}")
        return service.suspicious(name, limit, include_absent)

    @app.delete("/v1/labels/{name}", response_model=S.Forgotten, responses=_responses(404, 503, 507, *auth_codes),
                dependencies=require("admin", "DELETE", "/v1/labels/{name}"))
    def forget_label(name: str) -> dict:
        return {"forgotten": name, "version": service.forget_label(name)}

    @app.post("/v1/teach", response_model=S.Taught, responses=_responses(400, 409, 503, 507, *auth_codes),
              dependencies=require("write", "POST", "/v1/teach"))
    def teach(body: S.TeachIn) -> dict:
        check_batch(len(body.examples), "examples")
        rows, raw, fields, labels = [], [], [], []
        for i, ex in enumerate(body.examples):
            if ex.vector is not None and ex.input is not None:
                raise Invalid(f"examples[{i}].vector", "give at most one of vector and input")
            for name, value in ex.labels.items():
                if value not in (0, 1, None):
                    raise Invalid(f"examples[{i}].labels.{name}",
                                  f"must be 1 (positive), 0 (negative) or null (unknown), got {value}")
            labels.append(dict(ex.labels))
            if ex.vector is None and ex.input is None:
                if ex.id is None:
                    raise Invalid(f"examples[{i}].vector", "give a vector (or input), or the id of a stored example")
                continue
            rows.append(ex.vector if ex.vector is not None else ex.input)
            raw.append(ex.vector is None)
            fields.append(f"examples[{i}].vector")
        vectors: list[np.ndarray | None] = [None] * len(body.examples)
        if rows:
            X = matrix(rows, fields, raw)
            with_vector = [i for i, ex in enumerate(body.examples) if ex.vector is not None or ex.input is not None]
            for j, i in enumerate(with_vector):
                vectors[i] = X[j]
        ids, version = service.teach(vectors, labels, [ex.id for ex in body.examples])
        taught.inc(len(ids))
        return {"ids": ids, "version": version}

    @app.post("/v1/lambda", response_model=S.LambdaOut, responses=_responses(400, 409, 503, 507, *auth_codes),
              dependencies=require("admin", "POST", "/v1/lambda"))
    def set_lambda(body: S.LambdaIn) -> dict:
        if body.value is not None:
            if body.lambdas is not None:
                raise Invalid("lambdas", "give value (fix λ) or lambdas (choose λ), not both")
            return {"lam": body.value, "version": service.set_lambda(body.value)}
        if body.lambdas is not None:
            for i, lam in enumerate(body.lambdas):
                if not (np.isfinite(lam) and lam > 0):
                    raise Invalid(f"lambdas[{i}]", "must be a finite λ > 0")
        out = service.calibrate(body.lambdas, choose=True)
        out["loo_map"] = [m if np.isfinite(m) else 0.0 for m in out["loo_map"]]
        return out

    @app.post("/v1/forget", response_model=S.Forgotten, responses=_responses(400, 404, 503, 507, *auth_codes),
              dependencies=require("admin", "POST", "/v1/forget"))
    def forget_examples(body: S.ForgetIn) -> dict:
        check_batch(len(body.ids), "ids")
        return {"forgotten": len(set(body.ids)), "version": service.forget_examples(list(body.ids))}

    @app.post("/v1/predict", response_model=S.PredictOut, responses=_responses(400, 409, 503, *auth_codes),
              dependencies=require("read", "POST", "/v1/predict"))
    async def predict(body: S.PredictIn) -> Response:
        if (body.vectors is None) == (body.inputs is None):
            raise Invalid("vectors", "give exactly one of vectors and inputs")
        rows = body.vectors if body.vectors is not None else body.inputs
        check_batch(len(rows), "vectors" if body.vectors is not None else "inputs")
        if service.dim is None:
            raise Conflict("vectors", "the model has no embedding dimension yet: teach examples first")
        field = "vectors" if body.vectors is not None else "inputs"

        def answer(model, scores) -> dict:
            P = model.proba(scores)
            decided = model.decide(P, body.threshold, body.top_k)
            names = model.names
            return {"version": model.version, "predictions": [
                {"labels": decided[i], "proba": dict(zip(names, P[i].tolist())),
                 "scores": dict(zip(names, scores[i].tolist()))} for i in range(len(rows))]}

        def work() -> dict:
            X = matrix(rows, [f"{field}[{i}]" for i in range(len(rows))], [body.vectors is None] * len(rows))
            return answer(*service.predict(X, body.min_version))

        if len(rows) <= INLINE_ROWS and body.inputs is None and \
                (body.min_version is None or service.model.version >= body.min_version):
            X = matrix(rows, [f"{field}[{i}]" for i in range(len(rows))], [False] * len(rows))
            return JSONResponse(answer(*await batcher.scores(X)))
        return JSONResponse(await asyncio.get_running_loop().run_in_executor(None, work))

    @app.get("/v1/model", responses={200: {"content": {"application/octet-stream": {}},
                                           "description": "An Analytic learner file (mlcil.learners.Learner.load)"},
                                     **_responses(409, 503, *auth_codes)},
             dependencies=require("admin", "GET", "/v1/model"))
    def export_model() -> Response:
        learner = service.export_learner()
        with tempfile.TemporaryDirectory() as tmp:
            path = learner.save(os.path.join(tmp, "model.npz"))
            data = open(path, "rb").read()
        return Response(data, media_type="application/octet-stream",
                        headers={"content-disposition": 'attachment; filename="mlcil-analytic.npz"'})

    @app.get("/metrics", responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                                    **_responses(*auth_codes)}, dependencies=require("read", "GET", "/metrics"))
    def metrics() -> Response:
        observe_state()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.openapi_schema = None
    return app


def limit_threads(threads: int) -> None:
    """One BLAS/OpenMP pool of ``threads`` for torch and numpy in this process.

    Requests already run concurrently; measured here, numpy's default two OpenBLAS threads make
    a 1×512 @ 512×1024 product twenty times slower on a busy two-core machine (3.4 ms vs 0.15 ms).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def app_from_env() -> FastAPI:
    """The app ``mlcil serve --workers N`` runs in each worker: configured by ``$MLCIL_SERVE_CONFIG`` (JSON)."""
    cfg = json.loads(os.environ["MLCIL_SERVE_CONFIG"])
    limit_threads(int(cfg.get("threads", 1)))
    keys = KeyRing.load(cfg.get("keys_file"))
    encoder = names = None
    if cfg.get("encoder"):
        from mlcil.encoders import make_encoder

        model = make_encoder(cfg["encoder"], device="cpu")
        encoder = model.encode
        names = model.encode if model.modality == "text" else None
    return create_app(cfg["db"], options=Options(**cfg.get("options", {})), keys=keys, encoder=encoder, names=names,
                      max_body_bytes=int(cfg.get("max_body_bytes", MAX_BODY_BYTES)),
                      max_batch=int(cfg.get("max_batch", MAX_BATCH)), cors_origins=cfg.get("cors") or None,
                      policy=Policy(**cfg.get("policy", {})))
