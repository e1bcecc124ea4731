"""The service's routers: one module per resource, one ``APIRouter`` per API-key scope in it (see
:func:`mlcil.serve.routing.router`); :func:`mlcil.serve.app.create_app` includes :data:`ROUTERS`."""

from mlcil.serve.routes import admin, examples, health, labels, predict

#: in the order requests are matched: the hot paths (predict, teach) first
ROUTERS = (predict.read, examples.write, health.public, labels.read, labels.write, health.read, labels.admin,
           examples.admin, admin.admin)

__all__ = ["ROUTERS"]
