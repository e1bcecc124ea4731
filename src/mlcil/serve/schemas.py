"""Request and response bodies of the HTTP API (pydantic, strict: no ``false`` or ``"0.5"`` for a number).

Unknown fields are refused (``extra='forbid'``), so a misspelt field is an error, not a silent default.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

STRICT = ConfigDict(strict=True, extra="forbid")
NAME_MAX = 200
_CTRL = "\\u0000-\\u001f\\u007f"
#: an id: no control character, no leading or trailing white space (what the service checks)
ID_PATTERN = f"^[^{_CTRL}\\s](?:[^{_CTRL}]*[^{_CTRL}\\s])?$"
#: a label name: an id without '/' or '\\' (it is a URL path segment; '.' and '..' are refused too)
LABEL_PATTERN = f"^[^{_CTRL}\\s/\\\\](?:[^{_CTRL}/\\\\]*[^{_CTRL}\\s/\\\\])?$"


class _Body(BaseModel):
    model_config = STRICT


# ---- errors ----------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    status: int = Field(description="The HTTP status, repeated.")
    field: str = Field(description="The input the error concerns: 'examples[0].vector', 'name', 'authorization', "
                                   "'body', 'db', ...")
    message: str


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the service."""

    error: ErrorDetail


# ---- requests --------------------------------------------------------------------------------
class LabelIn(_Body):
    name: str = Field(min_length=1, max_length=NAME_MAX, json_schema_extra={"pattern": LABEL_PATTERN},
                      description="Unique label name; no '/', '\\', control characters, leading or trailing white "
                                  "space, not '.' or '..'.")
    description: str | None = Field(None, max_length=2000, json_schema_extra={"pattern": "^[^\\u0000]*$"},
                                    description="Free text (kept for zero-shot scoring); no NUL character.")
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="Decision threshold on the probability "
                                                                      "(null = 0.5).")


class LabelPatch(_Body):
    model_config = ConfigDict(**STRICT, json_schema_extra={"minProperties": 1})

    description: str | None = Field(None, max_length=2000, json_schema_extra={"pattern": "^[^\\u0000]*$"})
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="null = back to the default 0.5.")


class ExampleIn(_Body):
    id: str | None = Field(None, min_length=1, max_length=NAME_MAX, json_schema_extra={"pattern": ID_PATTERN},
                           description="Client id (default: a new UUID). An id already stored relabels that example "
                                       "(a vector re-sent for it must equal the stored one within 0.1%: retries are "
                                       "harmless).")
    vector: list[float] | None = Field(None, description="Embedding, d numbers (may be omitted to relabel a stored id).")
    input: Any = Field(None, description="Raw input for the configured encoder (instead of vector).")
    labels: dict[str, int | None] = Field(default_factory=dict, description="Known labels: 1 = positive, "
                                          "0 = explicit negative, null = no longer known (relabel).")


class TeachIn(_Body):
    examples: list[ExampleIn] = Field(min_length=1, description="1 to the server's max_batch examples.")


class PredictIn(_Body):
    vectors: list[list[float]] | None = Field(None, min_length=1, description="1 to max_batch embeddings (or inputs).")
    inputs: list[Any] | None = Field(None, min_length=1, description="1 to max_batch raw inputs for the encoder: at "
                                     "most max_input_chars characters each, max_request_chars in all.")
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="Decide P ≥ this for every label.")
    top_k: int | None = Field(None, ge=1, le=10000, description="Decide the k most probable labels.")
    min_version: int | None = Field(None, ge=0, description="Wait (up to 30 s, without holding a worker thread) "
                                    "until this process serves at least this model version, e.g. the version a "
                                    "teach returned; 409 at once when no such version exists or is being written.")


class LambdaIn(_Body):
    model_config = ConfigDict(**STRICT, json_schema_extra={"not": {"required": ["value", "lambdas"]}})

    value: float | None = Field(None, gt=0.0, description="Fix λ at this value; absent = choose by leave-one-out.")
    lambdas: list[float] | None = Field(None, min_length=1, max_length=50, description="Grid to search (λ > 0).")


class ForgetIn(_Body):
    ids: list[str] = Field(min_length=1, description="1 to max_batch example ids; ids not stored are not an error.")


# ---- responses -------------------------------------------------------------------------------
class Health(BaseModel):
    status: str
    version: int = Field(description="Model version this process serves.")
    db_version: int = Field(description="Latest version in the database.")
    examples: int
    labels: int
    dim: int | None
    lam: float
    backend: str
    auth: bool
    encoder: bool


class LabelOut(BaseModel):
    name: str
    description: str | None
    threshold: float | None
    positives: int
    negatives: int
    created_version: int
    calibrated: bool


class LabelsOut(BaseModel):
    version: int
    labels: list[LabelOut]


class Written(BaseModel):
    name: str
    version: int


class Taught(BaseModel):
    ids: list[str]
    version: int


class Prediction(BaseModel):
    labels: list[str] = Field(description="Decided labels.")
    proba: dict[str, float] = Field(description="Calibrated probability per label.")
    scores: dict[str, float] = Field(description="Ridge score φ(x)ᵀW per label (≈1 positive, ≈0 negative).")


class PredictOut(BaseModel):
    version: int = Field(description="Model version that answered.")
    predictions: list[Prediction]


class Forgotten(BaseModel):
    forgotten: str | int = Field(description="The label forgotten, or how many of the ids were stored and are "
                                             "forgotten now.")
    version: int = Field(description="The version after the forget (the current one when nothing was stored).")
    absent: list[str] = Field([], description="POST /v1/forget: the ids that were not stored (never taught or "
                                              "already forgotten): not an error, a retry is harmless.")


class LambdaOut(BaseModel):
    lam: float
    version: int | None
    lambdas: list[float] = []
    loo_map: list[float] = []
    rows: int = 0


class SuspiciousExample(BaseModel):
    id: str
    given: str
    loo_score: float
    loo_proba: float
    quality: float
    flagged: bool


class SuspiciousOut(BaseModel):
    version: int
    label: str
    audited: int
    examples: list[SuspiciousExample]
