"""``POST /v1/predict``: calibrated probabilities, ridge scores and decided labels, naming the model version.

Small vector requests (≤ :data:`INLINE_ROWS` rows, no wait) are scored on the event loop through
the micro-batcher (cheaper than a thread hop); the others in the thread pool.
"""

from __future__ import annotations

import asyncio

from fastapi import Depends
from fastapi.responses import JSONResponse, Response

from mlcil.serve import schemas as S
from mlcil.serve.deps import Scoring, get_scoring
from mlcil.serve.errors import Conflict, Invalid
from mlcil.serve.routing import responses, router

#: predictions of at most this many rows are computed on the event loop (cheaper than a thread hop)
INLINE_ROWS = 16

read = router("read")


def answer(model, scores, threshold: float | None, top_k: int | None) -> dict:
    """The reply body: per row, decided labels, probability and score per label."""
    P = model.proba(scores)
    decided = model.decide(P, threshold, top_k)
    names = model.names
    return {"version": model.version, "predictions": [
        {"labels": decided[i], "proba": dict(zip(names, P[i].tolist())),
         "scores": dict(zip(names, scores[i].tolist()))} for i in range(len(scores))]}


@read.post("/v1/predict", response_model=S.PredictOut, responses=responses(400, 409, 503))
async def predict(body: S.PredictIn, scoring: Scoring = Depends(get_scoring)) -> Response:
    inputs, batcher = scoring
    service = inputs.service
    if (body.vectors is None) == (body.inputs is None):
        raise Invalid("vectors", "give exactly one of vectors and inputs")
    rows = body.vectors if body.vectors is not None else body.inputs
    field = "vectors" if body.vectors is not None else "inputs"
    inputs.check_batch(len(rows), field)
    if service.dim is None:
        raise Conflict("vectors", "the model has no embedding dimension yet: teach examples first")
    fields = [f"{field}[{i}]" for i in range(len(rows))]

    def work() -> dict:
        X = inputs.matrix(rows, fields, [body.vectors is None] * len(rows))
        return answer(*service.predict(X, body.min_version), body.threshold, body.top_k)

    if len(rows) <= INLINE_ROWS and body.inputs is None and \
            (body.min_version is None or service.model.version >= body.min_version):
        X = inputs.matrix(rows, fields, [False] * len(rows))
        return JSONResponse(answer(*await batcher.scores(X), body.threshold, body.top_k))
    return JSONResponse(await asyncio.get_running_loop().run_in_executor(None, work))
