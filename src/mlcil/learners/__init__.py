"""Learners: one file per method on the shared :class:`Learner` base, found by registry name."""

from mlcil.learners.analytic import Analytic
from mlcil.learners.base import REGISTRY, Learner, register
from mlcil.learners.factory import make_learner, parse_learner_spec, resolve_learner_names
from mlcil.learners.finetune import FineTune
from mlcil.learners.joint import Joint
from mlcil.learners.joint_sgd import JointSGD
from mlcil.learners.lda import LDA
from mlcil.learners.lwf import LwF
from mlcil.learners.prototype import Prototype
from mlcil.learners.pseudolabel import PseudoLabel
from mlcil.learners.replay import Replay

__all__ = ["REGISTRY", "Analytic", "FineTune", "Joint", "JointSGD", "LDA", "Learner", "LwF", "Prototype",
           "PseudoLabel", "Replay", "make_learner", "parse_learner_spec", "register", "resolve_learner_names"]
