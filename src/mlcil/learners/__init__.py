"""Learners: one file per method on the shared :class:`Learner` base, found by registry name.

The closed-form learners (``analytic``, ``joint``, ``prototype``, ``lda``) run on NumPy/SciPy.
The gradient heads (``finetune``, ``lwf``, ``replay``, ``pseudolabel``, ``joint-sgd``) and the token
learners (``krt``, ``csc``) need
PyTorch (``pip install 'mlcil[torch]'``): they are registered by name and imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlcil.learners.analytic import Analytic
from mlcil.learners.base import REGISTRY, Learner, register
from mlcil.learners.calibrated import Calibrated
from mlcil.learners.factory import make_learner, parse_learner_spec, resolve_learner_names
from mlcil.learners.joint import Joint
from mlcil.learners.l3a import L3A
from mlcil.learners.lda import LDA
from mlcil.learners.prototype import Prototype

#: torch-based learners: class name -> (module, registry name)
TORCH_LEARNERS = {
    "FineTune": ("mlcil.learners.finetune", "finetune"),
    "LwF": ("mlcil.learners.lwf", "lwf"),
    "Replay": ("mlcil.learners.replay", "replay"),
    "PseudoLabel": ("mlcil.learners.pseudolabel", "pseudolabel"),
    "JointSGD": ("mlcil.learners.joint_sgd", "joint-sgd"),
    "KRT": ("mlcil.learners.krt", "krt"),
    "CSC": ("mlcil.learners.csc", "csc"),
}
for _cls, (_module, _name) in TORCH_LEARNERS.items():
    REGISTRY.add_lazy(_name, _module, _cls, extra="torch")


def __getattr__(name: str) -> Any:
    """``from mlcil.learners import FineTune`` imports the torch learner on first use."""
    if name in TORCH_LEARNERS:
        module, registry_name = TORCH_LEARNERS[name]
        REGISTRY[registry_name]  # a clear MlcilError when torch is missing
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'mlcil.learners' has no attribute {name!r}")


__all__ = ["CSC", "KRT", "REGISTRY", "Analytic", "Calibrated", "FineTune", "Joint", "JointSGD", "L3A", "LDA", "Learner", "LwF",
           "Prototype", "PseudoLabel", "Replay", "make_learner", "parse_learner_spec", "register", "resolve_learner_names"]
