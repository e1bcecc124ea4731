"""Labels: list, create, change, audit (``/v1/labels``, ``/v1/labels/{name}``, ``.../suspicious``), forget."""

from __future__ import annotations

from fastapi import Depends

from mlcil.serve import schemas as S
from mlcil.serve.deps import Inputs, Settings, get_inputs, get_service, get_settings
from mlcil.serve.errors import Invalid
from mlcil.serve.routing import responses, router
from mlcil.serve.service import TaggingService, check_label_name

read = router("read")
write = router("write")
admin = router("admin")


@read.get("/v1/labels", response_model=S.LabelsOut, responses=responses(503))
def list_labels(service: TaggingService = Depends(get_service)) -> dict:
    version, labels = service.labels()
    return {"version": version, "labels": labels}


@write.post("/v1/labels", status_code=201, response_model=S.Written, responses=responses(400, 409, 503, 507))
def create_label(body: S.LabelIn, service: TaggingService = Depends(get_service),
                 inputs: Inputs = Depends(get_inputs)) -> dict:
    vector = None
    if inputs.settings.names is not None:
        check_label_name(body.name, "name", service.limits.max_name)
        vector = inputs.name_embedding(body.name, body.description)
    return {"name": body.name,
            "version": service.create_label(body.name, body.description, body.threshold, name_vector=vector)}


@write.patch("/v1/labels/{name}", response_model=S.Written, responses=responses(400, 404, 503, 507))
def update_label(name: str, body: S.LabelPatch, service: TaggingService = Depends(get_service)) -> dict:
    fields = set(body.model_fields_set)
    if not fields:
        raise Invalid("body", "nothing to change: give threshold and/or description")
    return {"name": name, "version": service.update_label(name, body.threshold, body.description, fields)}


@write.get("/v1/labels/{name}/suspicious", response_model=S.SuspiciousOut, responses=responses(404, 409, 503))
def suspicious(name: str, limit: int = 20, include_absent: bool = False,
               service: TaggingService = Depends(get_service), settings: Settings = Depends(get_settings)) -> dict:
    """Stored examples whose label most likely is wrong: exact leave-one-out probabilities + cleanlab."""
    if not 1 <= limit <= settings.max_batch:
        raise Invalid("limit", f"must be between 1 and {settings.max_batch}")
    return service.suspicious(name, limit, include_absent)


@admin.delete("/v1/labels/{name}", response_model=S.Forgotten, responses=responses(404, 503, 507))
def forget_label(name: str, service: TaggingService = Depends(get_service)) -> dict:
    return {"forgotten": name, "version": service.forget_label(name)}
