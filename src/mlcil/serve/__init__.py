"""The tagging service (``mlcil serve``): HTTP API over a database-backed analytic model.

Import :func:`create_app` from :mod:`mlcil.serve.app` (FastAPI is imported there only, so that
``import mlcil`` stays light); the engine is :class:`mlcil.serve.service.TaggingService`.
"""
