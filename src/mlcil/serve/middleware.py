"""ASGI middleware of the service: the request body limit, and per-request metrics with JSON 500s.

:class:`BodyLimit` refuses a body over the limit with 413 — lazily, when the route reads it (after
the key was checked), from the declared ``Content-Length`` or from the bytes received.
:class:`Observe` counts every answer (5xx included) under bounded label values and turns any
unhandled failure into a JSON 500.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

log = logging.getLogger("mlcil.serve")

#: methods counted under their own name in metrics; any other is counted as 'other'
METHODS = {"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"}


def error_response(status: int, field: str, message: str) -> JSONResponse:
    """The service's error body ``{"error": {"status", "field", "message"}}``."""
    def text(value: str) -> str:  # a lone surrogate echoed from the input must not break the answer
        return value.encode("utf-8", "backslashreplace").decode("utf-8")

    return JSONResponse({"error": {"status": status, "field": text(field), "message": text(message)}},
                        status_code=status)


class BodyLimit:
    """Request bodies of at most ``limit`` bytes; reading a larger one raises a 413 ``HTTPException``."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        declared_over = length is not None and (not length.isdigit() or int(length) > self.limit)
        seen = 0

        async def limited():
            nonlocal seen
            if declared_over:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class Observe:
    """Counts every answer by (route template, method, status) and its latency; unhandled errors → JSON 500.

    ``count(route, method, status, seconds)`` is called once per request; routes are the app's path
    templates ('unmatched' otherwise) and methods outside :data:`METHODS` are 'other', so label
    values stay bounded whatever clients send.
    """

    def __init__(self, app, *, routes: list, count: Callable[[str, str, int, float], None]) -> None:
        self.app = app
        self.routes = routes
        self.count = count
        self._paths: dict[tuple[str, str], str | None] = {}

    def _route(self, scope) -> str | None:
        key = (scope["method"], scope["path"])
        if key in self._paths:
            return self._paths[key]
        found = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                found = getattr(route, "path", None)
                break
        if len(self._paths) < 4096:  # hot paths are few; label names in paths could be many
            self._paths[key] = found
        return found

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "other"
        path = self._route(scope)
        status = {"code": 500, "started": False}

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = int(message["status"]), True
            await send(message)

        async def watched_receive():
            message = await receive()
            if message["type"] == "http.disconnect" and not status["started"]:
                status["code"] = 499  # the client went away: not a server error
            return message

        try:
            await self.app(scope, watched_receive, counted_send)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON 500, counted
            if status["code"] == 499:
                return
            log.exception("unhandled error on %s %s", scope["method"], scope.get("path"))
            if not status["started"]:
                await error_response(500, "server", f"internal error: {type(exc).__name__}")(scope, receive,
                                                                                            counted_send)
            status["code"] = 500
        finally:
            self.count(path or "unmatched", method, status["code"], time.perf_counter() - start)
