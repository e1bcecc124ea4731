"""Shared dependencies of the routers: the service, the app's settings, metrics, batcher, and input checks.

Everything a route needs hangs on ``app.state`` (set once by :func:`mlcil.serve.app.create_app`);
routes get it through ``Depends(...)``, never through closures. The dependencies are ``async``: they
do no I/O, and FastAPI would run a plain ``def`` dependency in the thread pool (a thread hop per
dependency per request).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np
from fastapi import Request

from mlcil.serve.batcher import Batcher
from mlcil.serve.errors import Invalid, TooLarge
from mlcil.serve.metrics import Metrics
from mlcil.serve.service import TaggingService
from mlcil.serve.versions import VersionWaiters

Encoder = Callable[[list], np.ndarray]
F32_MAX = float(np.finfo(np.float32).max)


#: default most characters of one raw input (a text) given to the encoder
MAX_INPUT_CHARS = 2048
#: default most characters of all the raw inputs of one request together
MAX_REQUEST_CHARS = 32768


@dataclass(frozen=True)
class Settings:
    """Per-app request settings: encoder of raw inputs and of label names (None = off), batch limit, and the
    encoder's work bounds: characters per raw input and per request (checked before anything is embedded)."""

    encoder: Encoder | None = None
    names: Encoder | None = None
    max_batch: int = 1024
    max_input_chars: int = MAX_INPUT_CHARS
    max_request_chars: int = MAX_REQUEST_CHARS


def input_chars(value: Any) -> int:
    """Characters of a raw input: a string's length; any other JSON value's compact JSON text length."""
    if isinstance(value, str):
        return len(value)
    return len(json.dumps(value, separators=(",", ":")))


async def get_service(request: Request) -> TaggingService:
    return request.app.state.service


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


class Inputs:
    """Turns request rows (vectors, or raw inputs for the encoder) into checked n×d float32 embeddings."""

    def __init__(self, service: TaggingService, settings: Settings) -> None:
        self.service = service
        self.settings = settings

    def check_batch(self, n: int, field: str) -> None:
        """1..max_batch rows."""
        if n == 0:
            raise Invalid(field, "empty batch")
        if n > self.settings.max_batch:
            raise TooLarge(field, f"batch of {n} over the limit of {self.settings.max_batch}")

    def check_encoder_work(self, inputs: list[Any], fields: list[str]) -> None:
        """The encoder's bounds, before it runs: at most ``max_input_chars`` characters per input and
        ``max_request_chars`` in all (413 naming the input and the bound)."""
        per, total_max = self.settings.max_input_chars, self.settings.max_request_chars
        total = 0
        for value, field in zip(inputs, fields):
            size = input_chars(value)
            if size > per:
                raise TooLarge(field, f"{size} characters, over the limit of {per} characters per input "
                                      "(max_input_chars)")
            total += size
            if total > total_max:
                raise TooLarge(field, f"the inputs up to this one have {total} characters, over the limit of "
                                      f"{total_max} characters per request (max_request_chars): send fewer per request")

    def matrix(self, rows: list[Any], fields: list[str], raw: list[bool]) -> np.ndarray:
        """Embeddings n×d float32 from vectors or (where ``raw``) the encoder; finite, one d."""
        service, encoder = self.service, self.settings.encoder
        n = len(rows)
        if any(raw):
            if encoder is None:
                i = raw.index(True)
                raise Invalid(fields[i].replace("vector", "input"),
                              "raw inputs need an encoder; none is configured (send embedding vectors)")
            idx = [i for i in range(n) if raw[i]]
            self.check_encoder_work([rows[i] for i in idx], [fields[i].replace("vector", "input") for i in idx])
            try:
                enc = np.asarray(encoder([rows[i] for i in idx]), dtype=np.float32)
            except Exception as exc:  # the encoder rejected the input: a client error
                raise Invalid(fields[idx[0]].replace("vector", "input"), f"encoder failed: {exc}") from exc
            if enc.ndim != 2 or enc.shape[0] != len(idx):
                raise Invalid("input", f"encoder returned shape {enc.shape}, expected ({len(idx)}, d)")
            vecs: list[Any] = list(rows)
            for j, i in enumerate(idx):
                vecs[i] = enc[j]
        else:
            vecs = rows
        d = service.dim if service.dim is not None else len(vecs[0])
        max_dim = service.limits.max_dim
        lengths = [len(v) for v in vecs]
        if min(lengths) != d or max(lengths) != d or d == 0:
            for i, v in enumerate(vecs):
                if len(v) > max_dim:
                    raise TooLarge(fields[i], f"{len(v)} numbers, over the dimension limit of {max_dim}")
                if len(v) != d:
                    raise Invalid(fields[i], f"expected embedding dimension {d}, got {len(v)}")
            raise Invalid(fields[0], "vectors must be non-empty")
        if d > max_dim:
            raise TooLarge(fields[0], f"{d} numbers, over the dimension limit of {max_dim}")
        X = np.asarray(vecs, dtype=np.float64)
        if not (np.isfinite(X).all() and np.abs(X).max() <= F32_MAX):
            bad = ~np.isfinite(X) | (np.abs(X) > F32_MAX)
            i, j = map(int, np.argwhere(bad)[0])
            raise Invalid(f"{fields[i]}[{j}]", "not a finite float32 (NaN, inf or too large)")
        X32 = X.astype(np.float32)
        service.check_vectors(X32, fields[0].split("[")[0] if fields else "vectors")
        return X32

    def examples(self, examples: list[Any]) -> tuple[list[np.ndarray | None], list[dict[str, int | None]],
                                                      list[str | None]]:
        """(vectors, known labels, ids) of a teach body's examples: a vector is None for a stored id given
        without vector or input (a relabel); raw inputs go through the encoder."""
        self.check_batch(len(examples), "examples")
        rows, raw, fields, labels = [], [], [], []
        for i, ex in enumerate(examples):
            if ex.vector is not None and ex.input is not None:
                raise Invalid(f"examples[{i}].vector", "give at most one of vector and input")
            for name, value in ex.labels.items():
                if value not in (0, 1, None):
                    raise Invalid(f"examples[{i}].labels.{name}",
                                  f"must be 1 (positive), 0 (negative) or null (unknown), got {value}")
            labels.append(dict(ex.labels))
            if ex.vector is None and ex.input is None:
                if ex.id is None:
                    raise Invalid(f"examples[{i}].vector", "give a vector (or input), or the id of a stored example")
                continue
            rows.append(ex.vector if ex.vector is not None else ex.input)
            raw.append(ex.vector is None)
            fields.append(f"examples[{i}].vector")
        vectors: list[np.ndarray | None] = [None] * len(examples)
        if rows:
            X = self.matrix(rows, fields, raw)
            with_vector = [i for i, ex in enumerate(examples) if ex.vector is not None or ex.input is not None]
            for j, i in enumerate(with_vector):
                vectors[i] = X[j]
        return vectors, labels, [ex.id for ex in examples]

    def name_embedding(self, name: str, description: str | None) -> np.ndarray | None:
        """The label's name ('cooking-time' -> 'cooking time') and description embedded by the text
        encoder, d floats; None when no text encoder is configured."""
        names = self.settings.names
        if names is None:
            return None
        text = name.replace("_", " ").replace("-", " ") + (f": {description}" if description else "")
        try:
            vec = np.asarray(names([text]), dtype=np.float32)
        except Exception as exc:  # the encoder rejected the text: a client error
            raise Invalid("description", f"text encoder failed on the label's name: {exc}") from exc
        if vec.ndim != 2 or vec.shape[0] != 1:
            raise Invalid("description", f"text encoder returned shape {vec.shape}, expected (1, d)")
        return vec[0]


async def get_inputs(request: Request) -> Inputs:
    return request.app.state.inputs


class Scoring(NamedTuple):
    """What ``/v1/predict`` needs: the input checks, the micro-batcher and the version waiters, as one dependency (each dependency
    FastAPI solves per request costs about 3% of a batch-1 prediction's CPU time, measured)."""

    inputs: Inputs
    batcher: Batcher
    waiters: VersionWaiters


async def get_scoring(request: Request) -> Scoring:
    return request.app.state.scoring
