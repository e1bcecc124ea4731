"""``Joint``: the ridge/random-feature upper bound (all data, all labels, trained once)."""

from __future__ import annotations

import numpy as np

from mlcil.learners.analytic import Analytic
from mlcil.learners.base import register


@register("joint")
class Joint(Analytic):
    """Upper bound: ridge regression on random features over all training data with all labels.

    ``learn(session)`` refits from scratch on the session it is given; the harness passes
    :meth:`Stream.joint_session` (every example seen so far, every seen label known). It shares
    :class:`Analytic`'s learning code on one session with full labels, so it gets the same
    feature map, the same λ search (leave-one-out mAP in closed form, the whole grid from one
    eigendecomposition), the same imbalance weighting option and the same Platt calibration
    on leave-one-out scores: a tuned upper bound. ``lambda_search='gcv'`` picks λ minimising the GCV of all its
    rows instead (:func:`mlcil.ridge.gcv_minimum`), the rule :class:`Analytic` with a label memory applies to
    the same union from statistics alone; 'sessions' and 'first' are the same thing here: one session.

    Its parameters are its own (``get_params()`` is its signature, so ``sklearn.base.clone`` works);
    what :class:`Analytic` lets one choose and an upper bound fixes (absent labels: none, so strategy
    'negative'; no pseudo-labels, no label memory, no later recalibration) are class attributes below.

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

    # Analytic's parameters that Joint fixes: read by the shared learning code, not parameters of Joint
    strategy = "negative"
    alpha = None
    pseudo_threshold = 0.7
    pseudo_calibration = "ridge"
    calibrate_later = False
    memory = None
    memory_key = "content"
    prior = 1.0  # a session's label embeddings (names) count as β-weighted examples, as in Analytic

    def __init__(self, M: int = 2048, include_x: bool | str = "auto", scaling: str = "auto", clip: float | None = None,
                 balance: bool = False,
                 n_lambdas: int = 13, loo_rows: int = 2000, precision: str = "float64", calibration: str = "platt",
                 memory_budget=None, lambda_search: str = "first", seed: int = 0, device: str = "cpu") -> None:
        self.M = M
        self.include_x = include_x
        self.scaling = scaling
        self.clip = clip
        self.balance = balance
        self.n_lambdas = n_lambdas
        self.loo_rows = loo_rows
        self.precision = precision
        self.calibration = calibration
        self.memory_budget = memory_budget
        self.lambda_search = lambda_search
        self.seed = seed
        self.device = device

    def _union_gcv(self, alpha: float | None = None) -> bool:
        return self.lambda_search == "gcv"  # its one session is the union: GCV minimised over a continuous λ

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        for key in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, key)
        self._classes = np.zeros(0, dtype=np.int64)
        super()._learn(X, Y, classes)
