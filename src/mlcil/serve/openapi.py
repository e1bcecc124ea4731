"""The limits the service enforces, stated in its OpenAPI document (they depend on the app's settings).

Static bounds live on the request models (:mod:`mlcil.serve.schemas`: minItems, patterns,
minProperties, ``not``); :func:`state_limits` adds those an app's settings choose (max_batch, the
dimension and name limits, characters per input) when the document is generated.
"""

from __future__ import annotations

from fastapi import FastAPI

from mlcil.serve import schemas as S
from mlcil.serve.deps import Settings
from mlcil.serve.options import Limits


def _array_of(prop: dict) -> dict | None:
    """The array schema of a property (itself, or its ``anyOf`` array branch)."""
    if prop.get("type") == "array":
        return prop
    return next((b for b in prop.get("anyOf", ()) if b.get("type") == "array"), None)


def state_limits(app: FastAPI, settings: Settings, limits: Limits) -> None:
    """Make ``app.openapi()`` state the limits this app enforces (they depend on its settings): items per request
    (maxItems = max_batch), numbers per vector (maxItems = the dimension limit), characters per input, id and name
    patterns and lengths, label keys, the ``suspicious`` limit, and the path's label name."""
    base = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = base()
        c = spec["components"]["schemas"]
        vector = {"minItems": 1, "maxItems": limits.max_dim}
        name = {"maxLength": limits.max_name, "minLength": 1}
        _array_of(c["TeachIn"]["properties"]["examples"])["maxItems"] = settings.max_batch
        ids = _array_of(c["ForgetIn"]["properties"]["ids"])
        ids["maxItems"] = settings.max_batch
        ids["items"].update(name, pattern=S.ID_PATTERN)
        predict = c["PredictIn"]["properties"]
        rows = _array_of(predict["vectors"])
        rows["maxItems"] = settings.max_batch
        rows["items"].update(vector)
        _array_of(predict["inputs"])["maxItems"] = settings.max_batch
        _array_of(predict["inputs"])["items"] = {"maxLength": settings.max_input_chars,
                                                 "description": "A raw input (text): at most max_input_chars "
                                                                "characters; max_request_chars in all the inputs."}
        ex = c["ExampleIn"]["properties"]
        _array_of(ex["vector"]).update(vector)
        ex["input"].update(maxLength=settings.max_input_chars)
        ex["id"]["anyOf"][0].update(name)
        ex["labels"]["additionalProperties"]["anyOf"][0].update(minimum=0, maximum=1)
        ex["labels"].update(maxProperties=limits.max_labels,
                            propertyNames={**name, "pattern": S.LABEL_PATTERN})
        c["LabelIn"]["properties"]["name"]["maxLength"] = limits.max_name
        for path in ("/v1/labels/{name}", "/v1/labels/{name}/suspicious"):
            for op in spec["paths"][path].values():
                for param in op.get("parameters", ()):
                    if param["name"] == "name":
                        param["schema"].update(name, pattern=S.LABEL_PATTERN)
                    if param["name"] == "limit":
                        param["schema"].update(minimum=1, maximum=settings.max_batch)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi
