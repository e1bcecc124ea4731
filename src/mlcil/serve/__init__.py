"""The tagging service (``mlcil serve``): HTTP API over a database-backed analytic model.

Layers, outside in (import :func:`~mlcil.serve.app.create_app` from :mod:`mlcil.serve.app`; FastAPI
is imported there only, so that ``import mlcil`` stays light):

- :mod:`~mlcil.serve.app` builds the app: the service, the routers, middleware, error handlers;
- :mod:`~mlcil.serve.routes` — one ``APIRouter`` per resource (health, labels, examples, predict,
  admin), on shared dependencies (:mod:`~mlcil.serve.deps`, :mod:`~mlcil.serve.security`) and HTTP
  plumbing (:mod:`~mlcil.serve.routing`, :mod:`~mlcil.serve.middleware`, :mod:`~mlcil.serve.metrics`);
- :mod:`~mlcil.serve.service` — the domain (:class:`~mlcil.serve.service.TaggingService`: teach,
  relabel, forget, predict, λ, audit, export); no HTTP, no SQL;
- :mod:`~mlcil.serve.repository` — every SQL statement (SQLite or PostgreSQL);
  :mod:`~mlcil.serve.journal` replays its log into a :class:`~mlcil.serve.state.ModelState`;
- :mod:`~mlcil.serve.refresher` — the background thread that keeps the published model current.

The model is the library's: :class:`mlcil.ridge.RidgeModel` (:mod:`~mlcil.serve.model` adds the
label registry and version), calibrated by :mod:`mlcil.ridge.calibrate`, audited by
:mod:`mlcil.decide.audit`, exported by ``Analytic.from_statistics`` (:mod:`~mlcil.serve.export`).
"""
