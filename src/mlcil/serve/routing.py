"""HTTP plumbing shared by every router: strict JSON bodies, the route class, error bodies and status codes.

- :func:`router` makes an ``APIRouter`` for the routes of one API-key scope ('read', 'write',
  'admin'; None = open): its route class (:class:`StrictRoute`) checks the scope
  (:mod:`mlcil.serve.security`) before the body is read and parses JSON bodies strictly
  (duplicate keys, NaN and ±Infinity are malformed JSON: 400). With keys configured,
  :func:`mlcil.serve.app.create_app` includes each scoped router with its ``Security`` dependency
  and the 401/403 answers (:func:`auth_responses`), so OpenAPI shows the schemes.
- :func:`responses` declares a route's error answers with their body model, so clients can trust the spec.
- :func:`install_error_handlers` maps each kind of :class:`~mlcil.serve.errors.ServiceError` to its
  status (:data:`STATUS`) and every error to ``{"error": {"status", "field", "message"}}``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute, APIRouter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from mlcil.serve import schemas as S
from mlcil.serve.errors import (Conflict, Invalid, NotFound, NotReady, ServiceError, StorageFull, TooLarge,
                                Unavailable)
from mlcil.serve.middleware import error_response
from mlcil.serve.security import AUTH_STATUSES, Forbidden, Unauthorized, authorise

#: HTTP status of each kind of service error
STATUS = {Invalid: 422, NotFound: 404, Conflict: 409, TooLarge: 413, Unavailable: 503, StorageFull: 507,
          NotReady: 503, Unauthorized: 401, Forbidden: 403}
DESCRIPTIONS = {400: "Malformed JSON", 401: "Missing or unknown API key", 403: "The key's scope is too small",
                404: "Unknown label or example", 409: "Conflicts with the stored state", 413: "Over a size limit",
                422: "Invalid input (the field is named)", 500: "Internal error",
                503: "Database unavailable, or min_version not reached: retry",
                507: "The database is full: nothing was written"}


def responses(*codes: int) -> dict:
    """OpenAPI error answers of a route: ``codes`` + 413, 422, 500, each an ErrorBody."""
    return {c: {"model": S.ErrorBody, "description": DESCRIPTIONS[c]} for c in sorted(set(codes) | {413, 422, 500})}


def auth_responses() -> dict:
    """The 401 and 403 answers of a route behind an API key."""
    return {c: {"model": S.ErrorBody, "description": DESCRIPTIONS[c]} for c in AUTH_STATUSES}


# ---- strict JSON -------------------------------------------------------------------------------
class _Malformed(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise _Malformed(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str):
    raise _Malformed(f"{name} is not a JSON number")


def strict_loads(body: bytes) -> Any:
    """JSON with duplicate keys, NaN and ±Infinity refused (raised as :class:`json.JSONDecodeError`)."""
    text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Malformed as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def surrogate_field(value: Any, field: str = "") -> str | None:
    """The field ('ids[0]', 'examples[0].labels') of the first string — value or object key — of a parsed JSON
    body that holds a lone UTF-16 surrogate (not Unicode text: no database, no encoder takes it), or None."""
    if isinstance(value, str):
        return (field or "body") if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _has_surrogate(key):
                return field or "body"
            found = surrogate_field(item, f"{field}.{key}" if field else key)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, (str, dict, list)):
                found = surrogate_field(item, f"{field}[{i}]")
                if found is not None:
                    return found
    return None


class StrictRoute(APIRoute):
    """A route whose API-key scope (:attr:`scope_needed`, None = open) is checked before its body is read, and
    whose JSON body is parsed by :func:`strict_loads`; a string with a lone UTF-16 surrogate (only a ``\\udXXX``
    escape can make one) anywhere in the body is a 422 naming its field. Routers of one scope use :func:`router`."""

    scope_needed: str | None = None

    def get_route_handler(self):
        handler = super().get_route_handler()
        needed = self.scope_needed

        async def strict(request: Request) -> Response:
            if needed is not None:
                authorise(request, needed)
            strict_request = _StrictRequest(request.scope, request.receive)
            if request.method in ("POST", "PUT", "PATCH"):
                body = await strict_request.body()
                if b"\\ud" in body or b"\\uD" in body:  # a surrogate escape: look where (rare, so parse twice)
                    try:
                        parsed = strict_loads(body)
                    except (ValueError, UnicodeDecodeError):
                        parsed = None  # malformed: FastAPI answers 400
                    field = surrogate_field(parsed)
                    if field is not None:
                        raise Invalid(field, "contains a lone UTF-16 surrogate (\\ud800-\\udfff escape): not "
                                             "valid Unicode text")
            return await handler(strict_request)

        return strict


_ROUTE_CLASSES: dict[str | None, type[StrictRoute]] = {None: StrictRoute}


def router(scope: str | None) -> APIRouter:
    """An ``APIRouter`` whose routes need an API key of ``scope`` ('read', 'write', 'admin'; None = open)."""
    if scope not in _ROUTE_CLASSES:
        _ROUTE_CLASSES[scope] = type(f"StrictRoute_{scope}", (StrictRoute,), {"scope_needed": scope})
    return APIRouter(route_class=_ROUTE_CLASSES[scope])


# ---- errors ------------------------------------------------------------------------------------
def field_of(loc: tuple | list) -> str:
    """('body', 'examples', 0, 'vector') -> 'examples[0].vector'."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def allowed_methods(routes: list, scope: dict) -> set[str]:
    """The methods of every route (included routers' too) whose path matches the request's."""
    methods: set[str] = set()
    for route in routes:
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if inner is not None:
            methods |= allowed_methods(inner, scope)
        elif getattr(route, "methods", None) and route.matches(scope)[0] != Match.NONE:
            methods |= set(route.methods)
    return methods


def install_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": {"status", "field", "message"}}`` with its status."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
        return error_response(status, exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return error_response(400, "body", f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}")
        return error_response(422, field_of(first.get("loc", ())), first.get("msg", "invalid value"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        response = error_response(exc.status_code, "path" if exc.status_code in (404, 405) else "body",
                                  str(exc.detail))
        if exc.status_code == 405:  # RFC 9110: a 405 names the methods the path has (every route of it)
            methods = allowed_methods(request.app.router.routes, request.scope)
            if methods:
                response.headers["Allow"] = ", ".join(sorted(methods))
        return response
