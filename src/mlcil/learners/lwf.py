"""``LwF``: Learning without Forgetting on a torch head, in its multi-label (sigmoid) form."""

from __future__ import annotations

import numpy as np
import torch

from mlcil.learners import heads
from mlcil.learners.base import register
from mlcil.learners.heads import HeadLearner


@register("lwf")
class LwF(HeadLearner):
    """Learning without Forgetting (Li & Hoiem, "Learning without Forgetting", ECCV 2016 / TPAMI 2017).

    At session t the head grows by the new classes' columns and is trained on the
    session's examples with

        loss = L_cls(new columns, Y)  +  λ_distill · BCE(old columns, p_old)

    where p_old (n×C_old) are the sigmoid outputs of the head *before* the session on the
    same examples. The paper distils softmax outputs with temperature T = 2 and weight
    λ_o = 1; with independent sigmoids (multi-label) the old model's probabilities are
    themselves the soft targets, so no temperature is used (the multi-label LwF baselines
    of the MLCIL papers distil sigmoid outputs the same way). Old classes are never
    read as negatives here: their only signal on new data is the distillation.

    The old model's outputs are recomputed batch by batch (:class:`~mlcil.learners.heads.Teacher`)
    so that the distillation gradient is exactly zero until the shared hidden layer moves.
    With a linear head (``hidden=0``) nothing is shared, the old columns therefore never
    change, and LwF reduces to "freeze old classes, train new ones on the session"; the
    default one hidden layer of 512 units is where distillation acts. Measured (B0-C2,
    or B0-C10 for ≥ 30 labels; seed 0; last mAP; mean over scene, emotions, yeast,
    birds, enron, medical): 33.8 with hidden=512, 32.6 linear, 33.1 with λ_distill = 0;
    lr 1e-2 beat 1e-3 (32.5 vs 30.9, linear). Under label absence new classes never see
    the earlier sessions' examples as negatives, which bounds every exemplar-free head.

    Args:
        distill: λ_distill, weight of the distillation term (default 1, as LwF's λ_o).
        loss: 'bce' or 'asl' (asymmetric loss, Ridnik et al. 2021, γ−=4, γ+=0, clip 0.05)
            for the new classes; distillation is always BCE on soft targets.
        hidden: 0 for a linear head, else the width of one ReLU hidden layer (trained too).
        epochs, lr, batch_size, weight_decay: Adam on each session.
        seed: seeds initialisation and shuffling (bit-for-bit reproducible on CPU).
        device: 'cpu', 'cuda' or 'auto'.

    >>> import numpy as np
    >>> from mlcil.protocols import Session
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4)).astype(np.float32)
    >>> model = LwF(epochs=2).learn(Session(X, (X[:, :1] > 0).astype(np.uint8), np.array([0]), np.arange(200)))
    >>> model.learn(Session(X, (X[:, 1:2] > 0).astype(np.uint8), np.array([1]), np.arange(200))).scores(X).shape
    (200, 2)
    """
    #: may change between sessions (training schedule, device); every other parameter is frozen after learning
    mutable_params = frozenset({"device", "epochs", "lr", "batch_size", "weight_decay", "distill"})

    def __init__(self, distill: float = 1.0, loss: str = "bce", hidden: int = 512, epochs: int = 20, lr: float = 1e-2,
                 batch_size: int = 128, weight_decay: float = 0.0, seed: int = 0, device: str = "cpu") -> None:
        self.distill = distill
        self.loss = loss
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        heads.check_loss(self.loss, self.name)
        dev, gen = self._begin(X)
        old, k = heads.n_outputs(self.head_), Y.shape[1]
        target = torch.as_tensor(Y, dtype=torch.float32, device=dev)
        terms = [heads.Term(target, slice(old, None), self.loss)]
        if old:  # the pre-session head is the teacher, evaluated batch by batch
            terms.append(heads.Term(heads.Teacher(self.head_), slice(0, old), "bce", weight=float(self.distill)))
        head = heads.add_outputs(self.head_, k, gen)
        inputs = heads.Inputs(X, dev, self.mean_, self.scale_)
        self._finish(self._train(head, inputs, terms, gen, new_outputs=k), classes)
