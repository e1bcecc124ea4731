"""The service's errors: what went wrong, in domain words; ``app.py`` maps each kind to an HTTP status.

Every error names the ``field`` it concerns (``examples[3].vector``, ``name``, ``db``) and says what
was expected. Nothing here knows HTTP: the status codes live in :data:`mlcil.serve.app.STATUS`.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service refuses: the ``field`` it concerns and a message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Invalid(ServiceError):
    """Malformed or out-of-range input (a wrong dimension, an unknown label, a bad name)."""


class NotFound(ServiceError):
    """The named label or example does not exist."""


class Conflict(ServiceError):
    """The request contradicts the stored state (a taken name, an id stored with another vector)."""


class TooLarge(ServiceError):
    """Over a hard bound (batch size, labels, dimension)."""


class Unavailable(ServiceError):
    """The database cannot be used right now (busy, unreachable, deleted): retry later; nothing was written."""


class StorageFull(ServiceError):
    """The database refused to grow (disk or page limit full): nothing was written."""


class NotReady(ServiceError):
    """The model version asked for is not built yet (``min_version`` waited too long)."""
