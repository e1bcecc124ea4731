"""mlcil: continual multi-label learning on frozen embeddings.

The front door::

    from mlcil import Analytic
    model = Analytic().learn(X1, Y1, classes=["cat", "dog"])      # session 1: its labels only
    model.learn(X2, Y2, classes=["bird"])                          # session 2: new labels, no old data
    model.predict(X)                                               # n × 3 label sets, columns = model.classes_

Learners (closed form on NumPy/SciPy: :class:`Analytic`, :class:`Joint`, :class:`Prototype`, :class:`LDA`;
gradient heads with PyTorch, ``pip install 'mlcil[torch]'``: ``FineTune``, ``LwF``, ``Replay``,
``PseudoLabel``, ``JointSGD``), data (:func:`load_dataset`, :class:`Dataset`), protocols
(:class:`Protocol`, :class:`Session`) and the harness (:func:`run_benchmark`, :class:`BenchConfig`).
"""

from __future__ import annotations

from typing import Any

from mlcil.errors import MlcilError, NotFittedError

from mlcil.version import __version__

# name -> module that defines it; imported on first use so that `import mlcil` stays light
_EXPORTS = {
    "Analytic": "mlcil.learners", "Joint": "mlcil.learners", "Prototype": "mlcil.learners", "LDA": "mlcil.learners",
    "FineTune": "mlcil.learners", "LwF": "mlcil.learners", "Replay": "mlcil.learners",
    "PseudoLabel": "mlcil.learners", "JointSGD": "mlcil.learners", "Learner": "mlcil.learners",
    "Calibrated": "mlcil.learners",
    "make_learner": "mlcil.learners", "REGISTRY": "mlcil.learners",
    "Dataset": "mlcil.data", "load_dataset": "mlcil.data", "list_datasets": "mlcil.data",
    "Protocol": "mlcil.protocols", "Session": "mlcil.protocols", "Stream": "mlcil.protocols",
    "run_benchmark": "mlcil.bench", "BenchConfig": "mlcil.bench",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlcil' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)  # a torch learner without torch raises here
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["MlcilError", "NotFittedError", "__version__", *_EXPORTS]
