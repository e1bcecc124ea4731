"""``FineTune``: the lower bound — a torch head trained by BCE, absent labels as negatives."""

from __future__ import annotations

import numpy as np
import torch

from mlcil.learners import heads, ridge
from mlcil.learners.base import Learner, register
from mlcil.learners.heads import minibatches  # noqa: F401  (kept importable from here)


class HeadLearner(Learner):
    """Shared plumbing of the session-by-session gradient heads (not registered).

    State: ``head_`` (dict of tensors, see :mod:`mlcil.learners.heads`), ``mean_`` and
    ``scale_`` (first-session standardisation), ``n_features_``, ``sessions_``.
    Subclasses implement ``_fit_session(inputs, X, Y, gen)`` returning the trained head.
    """

    def _begin(self, X) -> tuple[torch.device, torch.Generator]:
        """Device and this session's generator; creates the head on the first session."""
        dev = ridge.resolve_device(self.device)
        if not self.is_fitted:
            self.n_features_ = X.shape[1]
            self.mean_, self.scale_ = ridge.standardizer(X)
            self.sessions_ = 0
            gen = heads.session_generator(self.seed, 0)
            self.head_ = heads.init_head(X.shape[1], int(getattr(self, "hidden", 0)), dev, gen)
            return dev, gen
        return dev, heads.session_generator(self.seed, self.sessions_)

    def _train(self, params, inputs, terms, gen):
        return heads.train(params, inputs, terms, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                           weight_decay=self.weight_decay, generator=gen, asl=getattr(self, "_asl", None))

    def _finish(self, head, classes: np.ndarray) -> None:
        self.head_ = head
        self.sessions_ += 1
        self._classes = np.concatenate([self.classes_, classes])

    def _old_proba(self, X) -> torch.Tensor:
        """Sigmoid outputs of the current (pre-session) head on raw rows X: n×C_old tensor."""
        return torch.sigmoid(heads.predict_logits(self.head_, X, self.mean_, self.scale_))

    def scores(self, X) -> np.ndarray:
        X = self._check_X(X)
        return heads.predict_logits(self.head_, X, self.mean_, self.scale_).cpu().numpy()

    def _forget(self, keep: np.ndarray) -> None:
        self.head_ = heads.select_outputs(self.head_, keep)

    def _after_load(self) -> None:
        self.head_ = heads.to_device(self.head_, ridge.resolve_device(self.device))


@register("finetune")
class FineTune(HeadLearner):
    """Linear head on embeddings, trained session by session with no protection.

    At session t the head grows by the new classes' columns and is trained with binary
    cross-entropy on the session's examples, every old class counting as a negative
    (label absence read as "not present"). Old classes are overwritten: this is the
    forgetting lower bound. Inputs are standardised with first-session statistics.

    Args:
        epochs, lr, batch_size, weight_decay: Adam training on each session.
        seed: seeds initialisation and shuffling (bit-for-bit reproducible on CPU).
        device: 'cpu', 'cuda' or 'auto'.

    >>> import numpy as np
    >>> from mlcil.protocols import Session
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 4)).astype(np.float32)
    >>> s0 = Session(X, (X[:, :1] > 0).astype(np.uint8), np.array([0]), np.arange(100))
    >>> FineTune(epochs=2).learn(s0).proba(X).shape
    (100, 1)
    """

    def __init__(self, epochs: int = 20, lr: float = 1e-3, batch_size: int = 128, weight_decay: float = 0.0,
                 seed: int = 0, device: str = "cpu") -> None:
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        dev, gen = self._begin(X)
        k = Y.shape[1]
        head = heads.add_outputs(self.head_, k, gen)
        target = torch.zeros(X.shape[0], heads.n_outputs(head), device=dev)
        target[:, -k:] = torch.as_tensor(Y, dtype=torch.float32, device=dev)
        inputs = heads.Inputs(X, dev, self.mean_, self.scale_)
        self._finish(self._train(head, inputs, [heads.Term(target)], gen), classes)
