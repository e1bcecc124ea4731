"""``GET /v1/health`` (no key) and ``GET /metrics`` (read): how the process and its database are doing."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import Response

from mlcil.serve import schemas as S
from mlcil.serve.deps import Settings, get_metrics, get_service, get_settings
from mlcil.serve.metrics import CONTENT_TYPE, Metrics
from mlcil.serve.routing import responses, router
from mlcil.serve.service import TaggingService

public = router(None)
read = router("read")


@public.get("/v1/health", response_model=S.Health, responses=responses(503))
def health(request: Request, service: TaggingService = Depends(get_service),
           settings: Settings = Depends(get_settings), metrics: Metrics = Depends(get_metrics)) -> dict:
    head = service.head()
    model = service.model
    metrics.observe(service)
    return {"status": "ok", "version": model.version, "db_version": head["version"],
            "examples": head["examples"], "labels": len(model.labels), "dim": service.dim, "lam": head["lam"],
            "backend": service.store.dialect, "auth": bool(request.app.state.keys),
            "encoder": settings.encoder is not None}


@read.get("/metrics", responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                                 **responses()})
def metrics_text(service: TaggingService = Depends(get_service), metrics: Metrics = Depends(get_metrics)) -> Response:
    return Response(metrics.text(service), media_type=CONTENT_TYPE)
