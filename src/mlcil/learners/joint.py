"""``Joint``: the ridge/random-feature upper bound (all data, all labels, trained once)."""

from __future__ import annotations

import numpy as np

from mlcil.learners.analytic import Analytic
from mlcil.learners.base import register


@register("joint")
class Joint(Analytic):
    """Upper bound: ridge regression on random features over all training data with all labels.

    ``learn(session)`` refits from scratch on the session it is given; the harness passes
    :meth:`Stream.joint_session` (every example seen so far, every seen label known). It is
    the :class:`Analytic` learner fed one session with full labels, so it gets the same
    feature map, the same λ search (leave-one-out mAP in closed form, the whole grid from one
    eigendecomposition), the same imbalance weighting option and the same Platt calibration
    on leave-one-out scores: a tuned upper bound. ``lambda_search='gcv'`` picks λ minimising the GCV of all its
    rows instead (:func:`mlcil.ridge.gcv_minimum`), the rule :class:`Analytic` with a label memory applies to
    the same union from statistics alone; 'sessions' and 'first' are the same thing here: one session.

    >>> import numpy as np
    >>> from mlcil.protocols import Session
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)).astype(np.float32)
    >>> Y = (X[:, :3] > 0.5).astype(np.uint8)
    >>> model = Joint(M=64).learn(Session(X, Y, np.array([4, 7, 9]), np.arange(200)))
    >>> model.classes_.tolist(), model.scores(X).shape
    ([4, 7, 9], (200, 3))
    """
    mutable_params = frozenset({"device", "memory_budget"})  # may change after learning; every other is frozen

    needs_full_labels = True

    def __init__(self, M: int = 2048, include_x: bool | str = "auto", scaling: str = "auto", clip: float | None = None,
                 balance: bool = False,
                 n_lambdas: int = 13, loo_rows: int = 2000, precision: str = "float64", calibration: str = "platt",
                 memory_budget=None, lambda_search: str = "first", seed: int = 0, device: str = "cpu") -> None:
        super().__init__(M=M, include_x=include_x, scaling=scaling, clip=clip, strategy="negative", balance=balance,
                         n_lambdas=n_lambdas, loo_rows=loo_rows, precision=precision, calibration=calibration,
                         memory_budget=memory_budget, lambda_search=lambda_search, seed=seed, device=device)

    def _union_gcv(self, alpha: float | None = None) -> bool:
        return self.lambda_search == "gcv"  # its one session is the union: GCV minimised over a continuous λ

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        for key in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, key)
        self._classes = np.zeros(0, dtype=np.int64)
        super()._learn(X, Y, classes)
