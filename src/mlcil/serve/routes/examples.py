"""Examples: teach (new examples and relabels, ``POST /v1/teach``) and forget (``POST /v1/forget``)."""

from __future__ import annotations

from fastapi import Depends

from mlcil.serve import schemas as S
from mlcil.serve.deps import Inputs, get_inputs, get_metrics, get_service
from mlcil.serve.metrics import Metrics
from mlcil.serve.routing import responses, router
from mlcil.serve.service import TaggingService

write = router("write")
admin = router("admin")


@write.post("/v1/teach", response_model=S.Taught, responses=responses(400, 409, 503, 507))
def teach(body: S.TeachIn, service: TaggingService = Depends(get_service), inputs: Inputs = Depends(get_inputs),
          metrics: Metrics = Depends(get_metrics)) -> dict:
    vectors, labels, ids = inputs.examples(body.examples)
    ids, version = service.teach(vectors, labels, ids)
    metrics.taught.inc(len(ids))
    return {"ids": ids, "version": version}


@admin.post("/v1/forget", response_model=S.Forgotten, responses=responses(400, 404, 503, 507))
def forget_examples(body: S.ForgetIn, service: TaggingService = Depends(get_service),
                    inputs: Inputs = Depends(get_inputs)) -> dict:
    """Forget examples exactly. Idempotent: ids not stored (never taught, or already forgotten, e.g. by the first
    try of a retried request) are not an error; they are listed in ``absent``. ``forgotten`` counts the examples
    removed by this request; when none was stored, nothing is written and ``version`` is the current one."""
    inputs.check_batch(len(body.ids), "ids")
    version, removed, absent = service.forget_report(list(body.ids))
    return {"forgotten": len(removed), "version": version, "absent": absent}
