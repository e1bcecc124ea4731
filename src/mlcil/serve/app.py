"""HTTP API of the tagging service (FastAPI; OpenAPI docs at ``/docs``, spec at ``/openapi.json``).

:func:`create_app` builds the service and includes the routers of :mod:`mlcil.serve.routes`; it maps
nothing itself. Endpoints (JSON; every error is ``{"error": {"status", "field", "message"}}``, 5xx
included):

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

With API keys configured, a route's key scope is a ``Security`` dependency (:mod:`mlcil.serve.security`)
of its router, checked before the body is read (401/403); the body limit (413) and request metrics are middleware
(:mod:`mlcil.serve.middleware`). JSON bodies are parsed strictly (duplicate keys, NaN and Infinity
are malformed JSON).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from mlcil.serve.auth import KeyRing
from mlcil.serve.batcher import Batcher
from mlcil.serve.deps import MAX_INPUT_CHARS, MAX_REQUEST_CHARS, Encoder, Inputs, Scoring, Settings
from mlcil.serve.labelstudio import router as labelstudio_router
from mlcil.serve.metrics import Metrics
from mlcil.serve.middleware import BodyLimit, Observe
from mlcil.serve.openapi import state_limits
from mlcil.serve.options import Limits, Options, Policy
from mlcil.serve.repository import Store
from mlcil.serve.routes import ROUTERS
from mlcil.serve.routing import auth_responses, install_error_handlers
from mlcil.serve.security import requires
from mlcil.serve.service import TaggingService
from mlcil.serve.versions import VersionWaiters

MAX_BODY_BYTES = 16 * 1024 * 1024
#: the GIL switch interval of a ``mlcil serve`` process (Python's default: 5 ms). A teach's thread gives the GIL
#: up at each database round trip and, while the event loop handles predictions, waits up to the interval to get
#: it back; at 5 ms a PostgreSQL teach (four round trips) waited longer for the GIL than for the database
#: (docs/service/limits.md). Predictions lose nothing measurable: they are short and release it in numpy.
SWITCH_INTERVAL_S = 0.001
MAX_BATCH = 1024
DESCRIPTION = ("Add a label, teach it with a few embeddings, every client sees it within the refresh bound; exact "
               "relabelling and forgetting. The library's Analytic model: random features + ridge through "
               "sufficient statistics, calibrated probabilities.")


def create_app(db: str | Store | TaggingService = "sqlite:///tagger.db", *, options: Options | None = None,
               keys: KeyRing | None = None, encoder: Encoder | None = None, max_body_bytes: int = MAX_BODY_BYTES,
               max_batch: int = MAX_BATCH, cors_origins: list[str] | None = None, limits: Limits | None = None,
               policy: Policy | None = None, names: Encoder | None = None, max_input_chars: int = MAX_INPUT_CHARS,
               max_request_chars: int = MAX_REQUEST_CHARS) -> FastAPI:
    """The FastAPI app over a database URL (or an open store / service).

    keys: API keys (None or empty = auth disabled). encoder: raw inputs (list) -> n×d
    embeddings, used for ``input``/``inputs``; None = vectors only. names: texts (list of str) ->
    n×d embeddings by the text encoder that embeds the inputs: a label created then gets a name
    example from its name and description (zero-shot scores before its first example); None = off.
    max_body_bytes, max_batch: request limits (413). max_input_chars, max_request_chars: the encoder's work per raw
    input and per request, in characters (413 before anything is embedded). cors_origins: allowed origins (None = CORS off).
    limits, policy: see :class:`~mlcil.serve.options.Limits` and :class:`~mlcil.serve.options.Policy`.
    """
    if isinstance(db, TaggingService):
        service = db
    else:
        service = TaggingService(db if isinstance(db, Store) else Store(db), options, limits, policy)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # everything loaded so far (the model, the app) lives as long as the process: move it out of the
        # cyclic collector's reach, so that its full collections stay short under load
        gc.collect()
        gc.freeze()
        yield
        service.close()

    app = FastAPI(title="mlcil tagging service", version="2", lifespan=lifespan, description=DESCRIPTION)
    metrics = Metrics()
    app.state.service = service
    app.state.keys = keys or KeyRing()
    app.state.settings = Settings(encoder=encoder, names=names, max_batch=max_batch, max_input_chars=max_input_chars,
                                  max_request_chars=max_request_chars)
    app.state.metrics = metrics
    app.state.batcher = Batcher(service, metrics.batch_rows.observe)
    app.state.inputs = Inputs(service, app.state.settings)
    app.state.waiters = VersionWaiters(service)
    app.state.scoring = Scoring(app.state.inputs, app.state.batcher, app.state.waiters)
    install_error_handlers(app)
    state_limits(app, app.state.settings, service.limits)
    for router in ROUTERS:  # a router of a scope gets its Security dependency and 401/403 when keys are set
        scope = router.route_class.scope_needed if app.state.keys else None
        app.include_router(router, dependencies=[requires(scope)] if scope else None,
                           responses=auth_responses() if scope else None)
    app.include_router(labelstudio_router)  # Label Studio's ML backend protocol, its own auth (Basic)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    routes = [r for r in app.router.routes if hasattr(r, "path")] + [r for router in ROUTERS for r in router.routes]
    app.add_middleware(Observe, routes=routes, count=metrics.count)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"])
    return app


def limit_threads(threads: int) -> None:
    """One BLAS/OpenMP pool of ``threads`` for numpy (and torch, when an encoder loaded it) in this process.

    Requests already run concurrently; measured here, numpy's default two OpenBLAS threads make
    a 1×512 @ 512×1024 product twenty times slower on a busy two-core machine (3.4 ms vs 0.15 ms).
    Torch is not imported here: only when something else already did.
    """
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def app_from_env() -> FastAPI:
    """The app ``mlcil serve --workers N`` runs in each worker: configured by ``$MLCIL_SERVE_CONFIG`` (JSON)."""
    cfg = json.loads(os.environ["MLCIL_SERVE_CONFIG"])
    keys = KeyRing.load(cfg.get("keys_file"))
    encoder = names = None
    if cfg.get("encoder"):
        from mlcil.encoders import make_encoder  # torch-based: imported only when an encoder is configured

        model = make_encoder(cfg["encoder"], device="cpu")
        encoder = model.encode
        names = model.encode if model.modality == "text" else None
    limit_threads(int(cfg.get("threads", 1)))
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return create_app(cfg["db"], options=Options(**cfg.get("options", {})), keys=keys, encoder=encoder, names=names,
                      max_body_bytes=int(cfg.get("max_body_bytes", MAX_BODY_BYTES)),
                      max_batch=int(cfg.get("max_batch", MAX_BATCH)),
                      max_input_chars=int(cfg.get("max_input_chars", MAX_INPUT_CHARS)),
                      max_request_chars=int(cfg.get("max_request_chars", MAX_REQUEST_CHARS)), cors_origins=cfg.get("cors") or None,
                      policy=Policy(**cfg.get("policy", {})))
