"""Admin: λ (``POST /v1/lambda``: fix it, or choose it by leave-one-out and recalibrate) and the model
download (``GET /v1/model``: the library's learner file)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
from fastapi import Depends
from fastapi.responses import Response

from mlcil.serve import schemas as S
from mlcil.serve.deps import get_service
from mlcil.errors import MlcilError
from mlcil.serve.errors import Conflict, Invalid
from mlcil.serve.routing import responses, router
from mlcil.serve.service import TaggingService

admin = router("admin")


@admin.post("/v1/lambda", response_model=S.LambdaOut, responses=responses(400, 409, 503, 507))
def set_lambda(body: S.LambdaIn, service: TaggingService = Depends(get_service)) -> dict:
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


@admin.get("/v1/model", responses={200: {"content": {"application/octet-stream": {}},
                                         "description": "An Analytic learner file (mlcil.learners.Learner.load)"},
                                   **responses(409, 503)})
def export_model(service: TaggingService = Depends(get_service)) -> Response:
    learner = service.export_learner()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = learner.save(os.path.join(tmp, "model.npz"))
        except MlcilError as exc:  # NotFittedError included: answered like the export's other refusals
            raise Conflict("labels", f"nothing to export: {exc}") from None
        with open(path, "rb") as f:
            data = f.read()
    return Response(data, media_type="application/octet-stream",
                    headers={"content-disposition": 'attachment; filename="mlcil-analytic.npz"'})
