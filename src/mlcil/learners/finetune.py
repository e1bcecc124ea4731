"""``FineTune``: the lower bound — a torch head trained by BCE, absent labels as negatives."""

from __future__ import annotations

import numpy as np
import torch

from mlcil.learners import heads
from mlcil.learners.base import register
from mlcil.learners.heads import HeadLearner, minibatches  # noqa: F401  (minibatches: kept importable from here)


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
    #: may change between sessions (training schedule, device); every other parameter is frozen after learning
    mutable_params = frozenset({"device", "epochs", "lr", "batch_size", "weight_decay"})

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
