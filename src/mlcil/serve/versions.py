"""Waiting for a model version (``min_version``) without a worker thread.

A request that asks for a version this process does not serve yet waits on an asyncio future of
its own event loop, resolved by the thread that publishes the version (the refresher) through
``call_soon_threadsafe``: no thread of the pool is held while it waits, so waiting requests never
delay the predictions that need one. A version that cannot arrive (beyond the database's version
plus what this process's writes in flight can add) is refused at once by the route, not waited for.
"""

from __future__ import annotations

import asyncio
import threading

from mlcil.serve.errors import NotReady
from mlcil.serve.model import Model
from mlcil.serve.service import TaggingService

#: most requests waiting for a version at once in one process (each holds a future and a connection)
MAX_WAITERS = 10000


class VersionWaiters:
    """The requests of one service waiting for a published version, resolved when it is published."""

    def __init__(self, service: TaggingService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._waiting: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        service.on_publish(self._published)

    def __len__(self) -> int:
        return len(self._waiting)

    def _published(self, model: Model) -> None:
        with self._lock:
            ready = [w for w in self._waiting if w[0] <= model.version]
            if not ready:
                return
            self._waiting = [w for w in self._waiting if w[0] > model.version]
        for _, loop, future in ready:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass

    async def wait(self, version: int, timeout: float) -> Model:
        """The published model once it reaches ``version``; :class:`NotReady` after ``timeout`` seconds."""
        service = self.service
        if service.model.version >= version:
            return service.model
        loop = asyncio.get_running_loop()
        if not service.refresher.running:  # no background thread: catch up now (in the pool, briefly)
            model = await loop.run_in_executor(None, service.refresh)
            if model.version >= version:
                return model
            raise NotReady("min_version", f"version {version} is not built yet (this process serves "
                                          f"{model.version}; the database is at {service.counters.db_version})")
        future = loop.create_future()
        with self._lock:
            if len(self._waiting) >= MAX_WAITERS:
                raise NotReady("min_version", f"{MAX_WAITERS} requests already wait for a version: retry")
            self._waiting.append((version, loop, future))
        if service.model.version >= version:  # published between the first look and the registration
            _resolve(future)
        service.refresher.wake()
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise NotReady("min_version", f"version {version} is not built yet after {timeout:g} s (this process "
                                          f"serves {service.model.version}; the database is at "
                                          f"{service.counters.db_version})") from None
        finally:
            with self._lock:
                self._waiting = [w for w in self._waiting if w[2] is not future]
        return service.model


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
