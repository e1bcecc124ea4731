"""API keys with scopes, stored as SHA-256 hashes (the service never holds a key in clear).

Scopes are ordered: ``read`` (predict, list labels, metrics) < ``write`` (also create labels,
teach) < ``admin`` (also forget labels and examples). A keys file (or the environment variable
``MLCIL_SERVE_KEYS``) holds one key per line::

    # sha256 of the key        scope  name (optional)
    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  admin  alice

Entries in the environment variable may also be separated by ``;``. ``mlcil serve
--generate-key SCOPE`` prints a fresh random key and its line.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from mlcil.errors import MlcilError

SCOPES = ("read", "write", "admin")
ENV_VAR = "MLCIL_SERVE_KEYS"


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    """A fresh random key (256 bits, URL-safe)."""
    return "mlcil_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Key:
    """One configured key: its hash, scope and a name for logs."""

    digest: str
    scope: str
    name: str


class KeyRing:
    """Configured keys; empty = authentication disabled."""

    def __init__(self, keys: list[Key] | None = None) -> None:
        self.keys = list(keys or [])

    def __bool__(self) -> bool:
        return bool(self.keys)

    @staticmethod
    def parse(text: str, source: str) -> "KeyRing":
        """Keys from lines ``<sha256 hex> <scope> [name]`` (``#`` comments, ``;`` also separates)."""
        keys = []
        for n, line in enumerate(re.split(r"[\n;]", text), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            digest = parts[0].lower().removeprefix("sha256:")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise MlcilError(f"{source}: entry {n}: expected the 64-hex-digit SHA-256 of a key, got {parts[0]!r}")
            if len(parts) < 2 or parts[1] not in SCOPES:
                raise MlcilError(f"{source}: entry {n}: scope must be one of {', '.join(SCOPES)}")
            keys.append(Key(digest, parts[1], " ".join(parts[2:]) or f"key{n}"))
        return KeyRing(keys)

    @staticmethod
    def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> "KeyRing":
        """Keys from a file and from ``$MLCIL_SERVE_KEYS`` (both, when both are set)."""
        env = os.environ if env is None else env
        keys: list[Key] = []
        if path is not None:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise MlcilError(f"keys: cannot read {path}: {exc.strerror}") from exc
            keys += KeyRing.parse(text, str(path)).keys
        if env.get(ENV_VAR):
            keys += KeyRing.parse(env[ENV_VAR], ENV_VAR).keys
        return KeyRing(keys)

    def scope_of(self, key: str) -> Key | None:
        """The configured key matching ``key`` (constant-time comparison of digests), or None."""
        digest = hash_key(key)
        found = None
        for k in self.keys:
            if hmac.compare_digest(k.digest, digest):
                found = k
        return found


def allows(scope: str, needed: str) -> bool:
    """Whether a key of ``scope`` may do what needs ``needed``."""
    return SCOPES.index(scope) >= SCOPES.index(needed)
