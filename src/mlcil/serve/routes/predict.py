"""``POST /v1/predict``: calibrated probabilities, ridge scores and decided labels, naming the model version.

Small vector requests (≤ :data:`INLINE_ROWS` rows) are scored on the event loop through the
micro-batcher (cheaper than a thread hop); the others in the thread pool. ``min_version`` is awaited
on the event loop (:mod:`mlcil.serve.versions`), never in a pool thread; a version that cannot
arrive is a 409 at once.
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
#: longest wait for ``min_version`` (seconds), on the event loop (no pool thread)
WAIT_S = 30.0

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
    inputs, batcher, waiters = scoring
    service = inputs.service
    if (body.vectors is None) == (body.inputs is None):
        raise Invalid("vectors", "give exactly one of vectors and inputs")
    rows = body.vectors if body.vectors is not None else body.inputs
    field = "vectors" if body.vectors is not None else "inputs"
    inputs.check_batch(len(rows), field)
    if body.inputs is not None and inputs.settings.encoder is not None:  # bounded before anything runs
        inputs.check_encoder_work(rows, [f"inputs[{i}]" for i in range(len(rows))])
    if service.dim is None:
        raise Conflict("vectors", "the model has no embedding dimension yet: teach examples first")
    fields = [f"{field}[{i}]" for i in range(len(rows))]
    loop = asyncio.get_running_loop()
    wanted = body.min_version
    if wanted is not None and service.model.version < wanted:
        # a version that cannot arrive is refused at once; one that can is awaited without a pool thread
        if not await loop.run_in_executor(None, service.version_can_arrive, wanted):
            raise Conflict("min_version", f"version {wanted} does not exist and no write in flight can make it: "
                                          f"the database is at {service.counters.db_version}; pass a version a "
                                          "write returned")
        await waiters.wait(wanted, WAIT_S)

    def work() -> dict:
        X = inputs.matrix(rows, fields, [body.vectors is None] * len(rows))
        return answer(*service.predict(X), body.threshold, body.top_k)

    if len(rows) <= INLINE_ROWS and body.inputs is None:
        X = inputs.matrix(rows, fields, [False] * len(rows))
        return JSONResponse(answer(*await batcher.scores(X), body.threshold, body.top_k))
    return JSONResponse(await loop.run_in_executor(None, work))
