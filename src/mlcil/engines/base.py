"""Engines: where the additive passes of learning run, and the local (default) engine.

A learner whose state is a sum over rows (``analytic``, ``joint``: G = Σ φφᵀ, B = Σ φyᵀ;
``prototype``: class sums and counts; ``lda``: the same plus a scatter matrix) hands each
full-data pass to an engine as a pure function of a block of rows. The engine splits the rows
into blocks, evaluates the function on each block (here, or on other processes and machines) and
adds the results in a fixed order (a tree of sums over block ids); the learner then solves on the
driver. Because the function is pure and the order of the sum is fixed by block id, not by which
block finished first, the result does not depend on scheduling, retries or the number of workers,
only (in the last bits) on how the rows were split into blocks and on the floating-point kernels
of the machines that ran them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlcil.errors import MlcilError
from mlcil.ridge.stats import Stats, partial_statistics


def split_rows(n: int, blocks: int | Sequence[int]) -> list[tuple[int, int]]:
    """Row ranges [(start, stop), ...] of ``blocks`` consecutive blocks covering 0..n.

    ``blocks`` is a number k of blocks (sizes differ by at most one row; with k > n some blocks are
    empty) or the list of block sizes itself (non-negative, summing to n).
    """
    if isinstance(blocks, (int, np.integer)) and not isinstance(blocks, bool):
        k = int(blocks)
        if k < 1:
            raise MlcilError(f"blocks: expected a number of blocks >= 1 or a list of block sizes, got {blocks!r}")
        edges = [n * i // k for i in range(k + 1)]
    else:
        try:
            sizes = [int(s) for s in blocks]
        except (TypeError, ValueError):
            raise MlcilError(f"blocks: expected a number of blocks >= 1 or a list of block sizes, "
                             f"got {blocks!r}") from None
        if not sizes or min(sizes) < 0 or sum(sizes) != n:
            raise MlcilError(f"blocks: block sizes must be >= 0 and sum to the {n} rows, got {sizes}")
        edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def add(a: Any, b: Any) -> Any:
    """a + b for additive results: tuples element by element; Stats, arrays and numbers by ``+``."""
    if isinstance(a, tuple):
        if not isinstance(b, tuple) or len(a) != len(b):
            raise MlcilError(f"engine: cannot add results of different structure ({type(a).__name__} of "
                             f"{len(a)} and {type(b).__name__})")
        return tuple(add(x, y) for x, y in zip(a, b))
    return a + b


def tree_add(parts: list[Any]) -> Any:
    """Σ parts by pairwise reduction in list order (the order of :func:`mlcil.ridge.tree_sum`)."""
    if not parts:
        raise MlcilError("engine: nothing to sum")
    level = list(parts)
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


def statistics_block(X, Y, weights, fmap, precision: str = "float64", gram: bool = True) -> Stats:
    """The ridge statistics of one block: :func:`mlcil.ridge.partial_statistics` in block-first order."""
    return partial_statistics(fmap, X, Y, weights, precision=precision, gram=gram)


class Engine:
    """Where a learner's additive passes run. Subclasses implement :meth:`accumulate`.

    Attributes:
        name: 'local' or 'ray'.
        local: True when everything runs in this process (every learner accepts a local engine;
            only additive ones, ``Learner.distributable``, accept another).
    """

    name: str = "engine"
    local: bool = True

    def accumulate(self, fn: Callable[..., Any], X, *rows, args: tuple = (), desc: str = "accumulate") -> Any:
        """Σ over row blocks b of ``fn(X[b], *(r[b] for r in rows), *args)``.

        Args:
            fn: a pure, module-level (importable) function of a block returning an additive value:
                :class:`~mlcil.ridge.Stats`, an array, a number, or a tuple of those.
            X: n×d rows (dense array or CSR).
            rows: per-row arrays sliced with X (first dimension n); None passes through as None.
            args: constant arguments appended to every call (e.g. the feature map).
            desc: label of the progress bar.
        """
        raise NotImplementedError

    def statistics(self, fmap, X, Y, weights: np.ndarray | None = None, precision: str = "float64",
                   gram: bool = True) -> Stats:
        """Ridge statistics (G, B, n) of rows X with labels Y: :func:`mlcil.ridge.partial_statistics`
        accumulated over this engine's blocks."""
        Y = np.asarray(Y)
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise MlcilError(f"statistics: Y must be n×C with n = {X.shape[0]} rows, got shape {Y.shape}")
        return self.accumulate(statistics_block, X, Y, weights, args=(fmap, precision, gram), desc="statistics")

    def describe(self) -> dict:
        """What the report records about the engine."""
        return {"name": self.name}

    def close(self) -> None:
        """Release what the engine started (nothing for the local engine)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def block_of(X, start: int, stop: int):
    """Rows start:stop of a dense array or CSR matrix (None stays None)."""
    return None if X is None else X[start:stop]


class LocalEngine(Engine):
    """Everything in this process. With ``blocks=None`` (the default) ``fn`` sees all rows at once,
    exactly the arithmetic of a learner without an engine; with ``blocks`` it is evaluated block by
    block and summed like a distributed engine would (a reference for the distributed path).
    """

    name = "local"
    local = True

    def __init__(self, blocks: int | Sequence[int] | None = None) -> None:
        self.blocks = blocks

    def accumulate(self, fn: Callable[..., Any], X, *rows, args: tuple = (), desc: str = "accumulate") -> Any:
        if self.blocks is None:
            return fn(X, *rows, *args)
        parts = [fn(block_of(X, a, b), *(block_of(r, a, b) for r in rows), *args)
                 for a, b in split_rows(X.shape[0], self.blocks)]
        return tree_add(parts)

    def describe(self) -> dict:
        return {"name": self.name, "blocks": self.blocks}

    def __repr__(self) -> str:
        return "LocalEngine()" if self.blocks is None else f"LocalEngine(blocks={self.blocks!r})"


#: The default engine: this process, all rows at once.
LOCAL = LocalEngine()
