"""Fixtures for the tagging service: a fresh database per test on SQLite and PostgreSQL.

PostgreSQL tests use ``$MLCIL_TEST_POSTGRES_URL`` (start a server with ``eval "$(.ci/postgres.sh)"``),
one fresh schema per test. Without the URL they skip locally and *fail* under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from mlcil.serve.service import TaggingService
from mlcil.serve.store import Store

PG_ENV = "MLCIL_TEST_POSTGRES_URL"
_SERVICES: list[TaggingService] = []
_STORES: list[Store] = []


def close_all() -> None:
    """Stop the background threads of every service a test opened, then close every store."""
    while _SERVICES:
        service = _SERVICES.pop()
        if hasattr(service, "refresher"):  # its __init__ got as far as the refresher
            service.close()
    while _STORES:
        _STORES.pop().close()


@pytest.fixture(autouse=True)
def close_stores(monkeypatch):
    """Stop every service's background thread and close every store a test opened."""
    init, service_init = Store.__init__, TaggingService.__init__

    def tracking_init(self, *args, **kwargs):
        _STORES.append(self)
        init(self, *args, **kwargs)

    def tracking_service_init(self, *args, **kwargs):
        _SERVICES.append(self)
        service_init(self, *args, **kwargs)

    monkeypatch.setattr(Store, "__init__", tracking_init)
    monkeypatch.setattr(TaggingService, "__init__", tracking_service_init)
    yield
    close_all()


def postgres_url() -> str | None:
    """The test server's URL; pytest.fail on CI when unset, skip otherwise."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{PG_ENV} is not set but CI=true: run eval \"$(.ci/postgres.sh)\" before the tests")
        pytest.skip(f"{PG_ENV} not set (start one with: eval \"$(.ci/postgres.sh)\")")
    return url


@pytest.fixture
def pg_schema_url():
    """A URL whose search_path is a fresh schema (dropped afterwards)."""
    import psycopg

    url = postgres_url()
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    close_all()  # before the schema goes
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tagger.db'}"
    return request.getfixturevalue("pg_schema_url")


def features(X: np.ndarray, R: np.ndarray, include_x: bool = True) -> np.ndarray:
    """Reference φ in numpy float64: ReLU(x̂ᵀR) ⊕ x̂, x̂ = x/‖x‖ (independent of the torch code)."""
    X = np.asarray(X, dtype=np.float64)
    Xh = X / np.linalg.norm(X, axis=1, keepdims=True)
    phi = np.maximum(Xh @ R.astype(np.float64), 0.0)
    return np.hstack([phi, Xh]) if include_x else phi


def make_batch(rng: np.random.Generator, n: int, d: int, names: list[str]) -> tuple[np.ndarray, list[dict[str, int]]]:
    """n random embeddings and partial labels over ``names``: each label known with prob. 0.6."""
    X = rng.normal(size=(n, d)).astype(np.float32)
    labels = []
    for x in X:
        row = {}
        for j, name in enumerate(names):
            if rng.random() < 0.6:
                row[name] = int(x[j % d] > 0)
        labels.append(row)
    return X, labels
