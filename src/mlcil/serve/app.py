"""HTTP API of the tagging service (FastAPI; OpenAPI docs at ``/docs``, spec at ``/openapi.json``).

Endpoints (JSON; errors are ``{"error": {"status", "field", "message"}}`` with a 4xx status):

- ``GET  /v1/health`` — no key needed: status, model version, counts, whether auth is on.
- ``GET  /v1/labels`` (read) — labels with counts of known positives / explicit negatives.
- ``POST /v1/labels`` (write) — create a label: name, optional description and threshold.
- ``POST /v1/teach`` (write) — a batch of examples, each an embedding ``vector`` (or a raw
  ``input`` when an encoder is configured) with the labels known for it: ``{"cat": 1, "dog": 0}``
  (1 = positive, 0 = explicit negative; labels not named are absent; both count as 0 in the
  ridge targets). One database transaction per request; the reply names the new version.
- ``POST /v1/predict`` (read) — scores (ridge outputs φ(x)ᵀW, ≈1 positive, ≈0 negative; not
  calibrated probabilities) and decided labels: ``top_k`` if given, else score ≥ the request's
  ``threshold`` if given, else ≥ each label's own threshold (default 0.5); plus the version used.
- ``PATCH /v1/labels/{name}`` (write) — set a label's threshold (null = default) or description.
- ``DELETE /v1/labels/{name}`` (admin) — forget a label exactly.
- ``POST /v1/forget`` (admin) — forget examples by id exactly.
- ``POST /v1/lambda`` (admin) — set the ridge λ, or choose it by closed-form leave-one-out mAP
  over stored examples (one eigendecomposition of G for the whole grid).
- ``GET  /metrics`` (read) — Prometheus metrics.
"""

from __future__ import annotations

import math
import sqlite3
import time
from typing import Any, Callable

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlcil.serve.auth import KeyRing, allows
from mlcil.serve.service import Options, ServiceError, TaggingService
from mlcil.serve.store import Store

Encoder = Callable[[list], np.ndarray]
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_BATCH = 1024


# ---- request bodies --------------------------------------------------------------------------
class LabelIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Unique label name.")
    description: str | None = Field(None, max_length=2000)
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="Decision threshold on the ridge score.")


class LabelPatch(BaseModel):
    description: str | None = Field(None, max_length=2000)
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="null = back to the default 0.5.")


class ExampleIn(BaseModel):
    id: str | None = Field(None, min_length=1, max_length=200, description="Client id (default: a new UUID).")
    vector: list[float] | None = Field(None, description="Embedding, d floats.")
    input: Any = Field(None, description="Raw input for the configured encoder (instead of vector).")
    labels: dict[str, int] = Field(default_factory=dict,
                                   description="Known labels: 1 = positive, 0 = explicit negative.")


class TeachIn(BaseModel):
    examples: list[ExampleIn]


class PredictIn(BaseModel):
    vectors: list[list[float]] | None = None
    inputs: list[Any] | None = None
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1, le=10000)


class LambdaIn(BaseModel):
    value: float | None = Field(None, gt=0.0, description="Set λ to this value; absent = choose by leave-one-out.")
    lambdas: list[float] | None = Field(None, min_length=1, max_length=50, description="Grid to search (λ > 0).")
    sample: int = Field(2000, ge=3, le=20000, description="Stored examples scored by leave-one-out.")


class ForgetIn(BaseModel):
    ids: list[str]


# ---- errors ----------------------------------------------------------------------------------
def _error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "field": field, "message": message}}, status_code=status)


def _field(loc: tuple | list) -> str:
    """('body', 'examples', 0, 'vector') -> 'examples[0].vector'."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


class _BodyLimit:
    """ASGI middleware: 413 for bodies over ``limit`` bytes (read before the app sees them)."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = _error(413, "body", f"request body over {self.limit} bytes")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_large(scope, receive, send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                return await too_large(scope, receive, send)
            if not message.get("more_body", False):
                break
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


# ---- the app ---------------------------------------------------------------------------------
def create_app(db: str | Store | TaggingService = "sqlite:///tagger.db", *, options: Options | None = None,
               keys: KeyRing | None = None, encoder: Encoder | None = None, max_body_bytes: int = MAX_BODY_BYTES,
               max_batch: int = MAX_BATCH, cors_origins: list[str] | None = None) -> FastAPI:
    """The FastAPI app over a database URL (or an open store / service).

    keys: API keys (None or empty = auth disabled). encoder: raw inputs (list) -> n×d
    embeddings, used for ``input``/``inputs``; None = vectors only. max_body_bytes, max_batch:
    request limits (413). cors_origins: allowed origins (None = CORS off).
    """
    service = db if isinstance(db, TaggingService) else TaggingService(
        db if isinstance(db, Store) else Store(db), options)
    keys = keys or KeyRing()
    app = FastAPI(title="mlcil tagging service", version="1",
                  description="Add a label, teach it with a few embeddings, every client sees it at once; "
                              "exact forgetting. Random features + ridge through sufficient statistics.")
    app.state.service = service
    registry = CollectorRegistry()
    requests = Counter("mlcil_requests", "HTTP requests", ["route", "method", "status"], registry=registry)
    latency = Histogram("mlcil_request_seconds", "HTTP request latency", ["route"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    version_g = Gauge("mlcil_model_version", "Model version served by this process", registry=registry)
    state_g = Gauge("mlcil_state_bytes", "Bytes of sufficient statistics (G, B) in memory", registry=registry)
    examples_g = Gauge("mlcil_examples", "Examples in the model", registry=registry)
    labels_g = Gauge("mlcil_labels", "Labels in the model", registry=registry)
    taught = Counter("mlcil_taught_examples", "Examples acknowledged by teach in this process", registry=registry)

    def observe_state() -> None:
        s = service.state
        version_g.set(s.version)
        state_g.set(s.nbytes())
        examples_g.set(s.n_examples)
        labels_g.set(len(s.label_ids))

    @app.middleware("http")
    async def measure(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        requests.labels(path, request.method, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - start)
        return response

    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"])

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return _error(exc.status, exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return _error(400, "body", f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}")
        return _error(422, _field(first.get("loc", ())), first.get("msg", "invalid value"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, "path" if exc.status_code in (404, 405) else "body", str(exc.detail))

    @app.exception_handler(sqlite3.OperationalError)
    async def busy(request: Request, exc: sqlite3.OperationalError):
        return _error(503, "db", f"database busy, retry: {exc}")

    try:
        import psycopg

        @app.exception_handler(psycopg.OperationalError)
        async def pg_unavailable(request: Request, exc: psycopg.OperationalError):
            return _error(503, "db", f"database unavailable, retry: {exc}".strip())
    except ImportError:  # PostgreSQL support not installed: SQLite only
        pass

    def require(needed: str):
        def check(request: Request) -> None:
            if not keys:
                return
            header = request.headers.get("authorization", "")
            key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
            if not key:
                raise ServiceError(401, "authorization", "missing API key (Authorization: Bearer <key>)")
            found = keys.scope_of(key)
            if found is None:
                raise ServiceError(401, "authorization", "unknown API key")
            if not allows(found.scope, needed):
                raise ServiceError(403, "authorization", f"this key has scope {found.scope!r}; {needed!r} is needed")
        return Depends(check)

    # ---- input checks --------------------------------------------------------------------
    def check_batch(n: int, field: str) -> None:
        if n == 0:
            raise ServiceError(422, field, "empty batch")
        if n > max_batch:
            raise ServiceError(413, field, f"batch of {n} over the limit of {max_batch}")

    def matrix(rows: list[Any], fields: list[str], raw: list[bool]) -> np.ndarray:
        """Embeddings n×d float32 from vectors or (when ``raw``) the encoder; finite, one d."""
        n = len(rows)
        if any(raw):
            if encoder is None:
                i = raw.index(True)
                raise ServiceError(422, fields[i].replace("vector", "input"),
                                   "raw inputs need an encoder; none is configured (send embedding vectors)")
            idx = [i for i in range(n) if raw[i]]
            try:
                enc = np.asarray(encoder([rows[i] for i in idx]), dtype=np.float32)
            except Exception as exc:  # the encoder rejected the input: a client error
                raise ServiceError(422, fields[idx[0]].replace("vector", "input"), f"encoder failed: {exc}") from exc
            if enc.ndim != 2 or enc.shape[0] != len(idx):
                raise ServiceError(422, "input", f"encoder returned shape {enc.shape}, expected ({len(idx)}, d)")
            vecs: list[Any] = list(rows)
            for j, i in enumerate(idx):
                vecs[i] = enc[j]
        else:
            vecs = rows
        dims = {len(v) for v in vecs}
        d = service.dim if service.dim is not None else len(vecs[0])
        for i, v in enumerate(vecs):
            if len(v) != d:
                raise ServiceError(422, fields[i], f"expected embedding dimension {d}, got {len(v)}")
        if d == 0 or len(dims) != 1:
            raise ServiceError(422, fields[0], "vectors must be non-empty")
        X = np.asarray(vecs, dtype=np.float64)
        bad = ~np.isfinite(X) | (np.abs(X) > np.finfo(np.float32).max)
        if bad.any():
            i, j = map(int, np.argwhere(bad)[0])
            raise ServiceError(422, f"{fields[i]}[{j}]", "not a finite float32 (NaN, inf or too large)")
        return X.astype(np.float32)

    # ---- endpoints ------------------------------------------------------------------------
    @app.get("/v1/health")
    def health() -> dict:
        state = service.refresh()
        observe_state()
        return {"status": "ok", "version": state.version, "examples": state.n_examples,
                "labels": len(state.label_ids), "dim": service.dim, "lam": service.lam(state), "backend": service.store.dialect,
                "auth": bool(keys), "encoder": encoder is not None}

    @app.get("/v1/labels", dependencies=[require("read")])
    def list_labels() -> dict:
        return {"version": service.refresh().version, "labels": service.labels()}

    @app.post("/v1/labels", status_code=201, dependencies=[require("write")])
    def create_label(body: LabelIn) -> dict:
        if body.name != body.name.strip():
            raise ServiceError(422, "name", "leading or trailing white space")
        version = service.create_label(body.name, body.description, body.threshold)
        return {"name": body.name, "version": version}

    @app.patch("/v1/labels/{name}", dependencies=[require("write")])
    def update_label(name: str, body: LabelPatch) -> dict:
        fields = set(body.model_fields_set)
        if not fields:
            raise ServiceError(422, "body", "nothing to change: give threshold and/or description")
        return {"name": name, "version": service.update_label(name, body.threshold, body.description, fields)}

    @app.get("/v1/labels/{name}/suspicious", dependencies=[require("write")])
    def suspicious(name: str, limit: int = 20, include_absent: bool = False) -> dict:
        """Stored examples whose label most likely is wrong: exact leave-one-out scores + cleanlab."""
        if not 1 <= limit <= max_batch:
            raise ServiceError(422, "limit", f"must be between 1 and {max_batch}")
        return service.suspicious(name, limit, include_absent)

    @app.delete("/v1/labels/{name}", dependencies=[require("admin")])
    def forget_label(name: str) -> dict:
        return {"forgotten": name, "version": service.forget_label(name)}

    @app.post("/v1/teach", dependencies=[require("write")])
    def teach(body: TeachIn) -> dict:
        check_batch(len(body.examples), "examples")
        rows, raw, fields = [], [], []
        for i, ex in enumerate(body.examples):
            if (ex.vector is None) == (ex.input is None):
                raise ServiceError(422, f"examples[{i}].vector", "give exactly one of vector and input")
            rows.append(ex.vector if ex.vector is not None else ex.input)
            raw.append(ex.vector is None)
            fields.append(f"examples[{i}].vector")
            for name, value in ex.labels.items():
                if value not in (0, 1):
                    raise ServiceError(422, f"examples[{i}].labels.{name}", f"must be 1 (positive) or 0 (negative), got {value}")
        X = matrix(rows, fields, raw)
        ids, version = service.teach(X, [dict(ex.labels) for ex in body.examples], [ex.id for ex in body.examples])
        taught.inc(len(ids))
        service.maybe_snapshot()
        return {"ids": ids, "version": version}

    @app.post("/v1/lambda", dependencies=[require("admin")])
    def set_lambda(body: LambdaIn) -> dict:
        if body.value is not None:
            if not math.isfinite(body.value):
                raise ServiceError(422, "value", "must be a finite λ > 0")
            return {"lam": body.value, "version": service.set_lambda(body.value)}
        if body.lambdas is not None:
            for i, lam in enumerate(body.lambdas):
                if not (math.isfinite(lam) and lam > 0):
                    raise ServiceError(422, f"lambdas[{i}]", "must be a finite λ > 0")
        return service.choose_lambda(body.lambdas, body.sample)

    @app.post("/v1/forget", dependencies=[require("admin")])
    def forget_examples(body: ForgetIn) -> dict:
        check_batch(len(body.ids), "ids")
        return {"forgotten": len(set(body.ids)), "version": service.forget_examples(list(body.ids))}

    @app.post("/v1/predict", dependencies=[require("read")])
    def predict(body: PredictIn) -> dict:
        if (body.vectors is None) == (body.inputs is None):
            raise ServiceError(422, "vectors", "give exactly one of vectors and inputs")
        rows = body.vectors if body.vectors is not None else body.inputs
        check_batch(len(rows), "vectors" if body.vectors is not None else "inputs")
        service.refresh()
        if service.dim is None:
            raise ServiceError(409, "vectors", "the model has no embedding dimension yet: teach examples first")
        X = matrix(rows, [f"vectors[{i}]" for i in range(len(rows))], [body.vectors is None] * len(rows))
        state, S = service.scores(X)
        names = state.label_names
        if body.top_k is not None:
            k = min(body.top_k, len(names))
            order = np.argsort(-S, axis=1, kind="stable")[:, :k]
            decided = [[names[j] for j in row] for row in order]
        else:
            t = np.array([body.threshold if body.threshold is not None else (th if th is not None else 0.5)
                          for th in state.thresholds])
            decided = [[names[j] for j in np.flatnonzero(row >= t)] for row in np.clip(S, 0.0, 1.0)]
        observe_state()
        return {"version": state.version,
                "predictions": [{"labels": decided[i], "scores": {n: float(S[i, j]) for j, n in enumerate(names)}}
                                for i in range(len(rows))]}

    @app.get("/metrics", dependencies=[require("read")])
    def metrics() -> Response:
        observe_state()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
