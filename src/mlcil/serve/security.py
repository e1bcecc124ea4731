"""API-key security as FastAPI dependencies: ``Security(requires(scope))`` on the routers of a scope.

The dependency reads the key from ``Authorization: Bearer <key>`` or ``X-API-Key`` (declared
through :class:`~fastapi.security.HTTPBearer` and :class:`~fastapi.security.APIKeyHeader`, so the
OpenAPI spec shows both schemes) and checks its scope against the app's :class:`KeyRing`
(``app.state.keys``; empty = auth off: the routers are then included without it, and OpenAPI claims
no scheme). :class:`~mlcil.serve.routing.StrictRoute` runs the same check before the request body is read, so a client without a key never makes the server read
(or parse) its body: no key and a malformed or oversized body is a 401.
"""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from mlcil.serve.auth import KeyRing, allows
from mlcil.serve.errors import ServiceError

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key in X-API-Key")

#: request scope entry holding the name of the key that passed
KEY_NAME = "mlcil.key"


class Unauthorized(ServiceError):
    """No API key, or an unknown one (401)."""


class Forbidden(ServiceError):
    """The key's scope is too small for the route (403)."""


def _key_of(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key", "")


def authorise(request: Request, needed: str) -> str | None:
    """The name of the request's key when it allows ``needed`` (None when auth is off); raises
    :class:`Unauthorized` or :class:`Forbidden`. Checked once per request (the result is kept)."""
    if KEY_NAME in request.scope:
        return request.scope[KEY_NAME]
    keys: KeyRing = request.app.state.keys
    if not keys:
        return None
    key = _key_of(request)
    if not key:
        raise Unauthorized("authorization", "missing API key (Authorization: Bearer <key>)")
    found = keys.scope_of(key)
    if found is None:
        raise Unauthorized("authorization", "unknown API key")
    if not allows(found.scope, needed):
        raise Forbidden("authorization", f"this key has scope {found.scope!r}; {needed!r} is needed")
    request.scope[KEY_NAME] = found.name
    return found.name


class Scope:
    """Dependency: the request's API key must have at least scope ``needed`` ('read' < 'write' < 'admin')."""

    def __init__(self, needed: str) -> None:
        self.needed = needed

    async def __call__(self, request: Request, _bearer: HTTPAuthorizationCredentials | None = Security(bearer),
                 _key: str | None = Security(api_key)) -> str | None:
        return authorise(request, self.needed)


def requires(needed: str):
    """``Security(...)`` of a route that needs scope ``needed``."""
    return Security(Scope(needed))


#: the statuses a route with a scope may answer besides its own
AUTH_STATUSES = (401, 403)
