"""Where work runs: this process (``local``, the default) or a Ray cluster (``ray``).

Learners whose state is additive (``analytic``, ``joint``, ``prototype``, ``lda``) take an engine
in ``learn(session, engine=...)``; their full-data passes become a pure function of a block of
rows that the engine maps over blocks and sums in a fixed order (:mod:`mlcil.engines.base`); the
solve stays on the driver. ``mlcil bench --engine ray`` and ``mlcil embed --engine ray`` use
:class:`RayEngine`, which needs ``pip install 'mlcil[ray]'`` (imported only when used).
"""

from __future__ import annotations

from typing import Any

from mlcil.engines.base import LOCAL, Engine, LocalEngine, add, split_rows, statistics_block, tree_add
from mlcil.errors import MlcilError

ENGINES = ("local", "ray")


def __getattr__(name: str) -> Any:  # RayEngine without importing ray (or its module) up front
    if name == "RayEngine":
        from mlcil.engines.ray_engine import RayEngine

        return RayEngine
    raise AttributeError(f"module 'mlcil.engines' has no attribute {name!r}")


def resolve_engine(engine: Any = None) -> Engine:
    """None or 'local' -> the local engine; 'ray' -> a :class:`RayEngine` on a local cluster (or the one
    this process already runs); an :class:`Engine` as is."""
    if engine is None or (isinstance(engine, str) and engine == "local"):
        return LOCAL
    if isinstance(engine, Engine):
        return engine
    if isinstance(engine, str) and engine == "ray":
        from mlcil.engines.ray_engine import RayEngine

        return RayEngine()
    raise MlcilError(f"engine: expected one of {', '.join(ENGINES)} or an mlcil.engines.Engine, got {engine!r}")


__all__ = ["ENGINES", "LOCAL", "Engine", "LocalEngine", "RayEngine", "add", "resolve_engine", "split_rows",
           "statistics_block", "tree_add"]
