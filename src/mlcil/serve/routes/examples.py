"""Examples: teach (new examples and relabels, ``POST /v1/teach``) and forget (``POST /v1/forget``)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends

from mlcil.serve import schemas as S
from mlcil.serve.deps import Inputs, get_inputs, get_metrics, get_service
from mlcil.serve.errors import Invalid
from mlcil.serve.metrics import Metrics
from mlcil.serve.routing import StrictRoute, responses
from mlcil.serve.security import requires
from mlcil.serve.service import TaggingService

router = APIRouter(route_class=StrictRoute)


@router.post("/v1/teach", response_model=S.Taught, responses=responses(400, 409, 503, 507),
             dependencies=[requires("write")])
def teach(body: S.TeachIn, service: TaggingService = Depends(get_service), inputs: Inputs = Depends(get_inputs),
          metrics: Metrics = Depends(get_metrics)) -> dict:
    inputs.check_batch(len(body.examples), "examples")
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
        X = inputs.matrix(rows, fields, raw)
        with_vector = [i for i, ex in enumerate(body.examples) if ex.vector is not None or ex.input is not None]
        for j, i in enumerate(with_vector):
            vectors[i] = X[j]
    ids, version = service.teach(vectors, labels, [ex.id for ex in body.examples])
    metrics.taught.inc(len(ids))
    return {"ids": ids, "version": version}


@router.post("/v1/forget", response_model=S.Forgotten, responses=responses(400, 404, 503, 507),
             dependencies=[requires("admin")])
def forget_examples(body: S.ForgetIn, service: TaggingService = Depends(get_service),
                    inputs: Inputs = Depends(get_inputs)) -> dict:
    inputs.check_batch(len(body.ids), "ids")
    return {"forgotten": len(set(body.ids)), "version": service.forget_examples(list(body.ids))}
