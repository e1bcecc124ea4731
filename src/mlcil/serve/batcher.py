"""Micro-batching: predictions of the requests that reach the event loop together share one φ(X)ᵀW."""

from __future__ import annotations

import asyncio
from typing import Callable

import numpy as np

from mlcil.serve.service import TaggingService


class Batcher:
    """Stacks the rows of every prediction ready in the same loop iteration and scores them at once.

    φ of a batch-1 request is bound by reading R (d×M floats) from memory: stacking the rows of
    every request ready in the same loop iteration reads R once for all of them. Each request
    still gets the model version it was scored with.
    """

    def __init__(self, service: TaggingService, observe: Callable[[int], None]) -> None:
        self.service = service
        self.observe = observe
        self.pending: list[tuple[np.ndarray, asyncio.Future]] = []

    async def scores(self, X: np.ndarray):
        """(model, n×C scores) of rows X, scored with the other requests of this loop iteration."""
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
