"""The service's routers, one module per resource; :func:`mlcil.serve.app.create_app` includes :data:`ROUTERS`."""

from mlcil.serve.routes import admin, examples, health, labels, predict

ROUTERS = (health.router, labels.router, examples.router, predict.router, admin.router)

__all__ = ["ROUTERS"]
