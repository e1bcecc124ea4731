"""Learners: one file per method on the shared :class:`Learner` base, found by registry name."""

from mlcil.learners.analytic import Analytic
from mlcil.learners.base import REGISTRY, Learner, register
from mlcil.learners.factory import make_learner, parse_learner_spec, resolve_learner_names
from mlcil.learners.finetune import FineTune
from mlcil.learners.joint import Joint

__all__ = ["REGISTRY", "Analytic", "FineTune", "Joint", "Learner", "make_learner", "parse_learner_spec",
           "register", "resolve_learner_names"]
