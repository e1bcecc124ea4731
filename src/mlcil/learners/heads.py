"""Torch heads on frozen embeddings: parameters, losses and one vectorised training loop.

Shared by the gradient learners (``FineTune``, ``LwF``, ``Replay``, ``PseudoLabel``,
``JointSGD``). A head is a plain dict of tensors, so a learner keeps it as saved state:

- linear (``hidden=0``): ``{"W": d×C, "b": C}``, logits = z W + b;
- one hidden layer (``hidden=h``): ``{"W1": d×h, "b1": h, "W": h×C, "b": C}``,
  logits = ReLU(z W1 + b1) W + b.

z is the standardised input ((x − mean) / scale). Training is mini-batch Adam over
shuffled index batches; every random draw comes from a ``torch.Generator`` the caller
seeds (no global RNG side effect), so CPU runs are bit-for-bit reproducible.

Losses are elementwise (n×C) so that a per-entry mask can leave unknown labels (label
absence) out of the loss:

- ``bce``: binary cross-entropy on logits; targets may be soft (distillation).
- ``asl``: asymmetric loss (Ridnik et al., "Asymmetric Loss For Multi-Label
  Classification", ICCV 2021) with the paper's defaults γ− = 4, γ+ = 0, clip m = 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from mlcil.errors import MlcilError
from mlcil import ridge
from mlcil.learners.base import Learner

LOSSES = ("bce", "asl")

#: ASL defaults of Ridnik et al. (2021): γ− = 4, γ+ = 0, probability margin (clip) 0.05.
ASL_DEFAULTS = {"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05}


# ---- losses (elementwise) ----------------------------------------------------------------
def bce_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Elementwise binary cross-entropy on logits; n×C -> n×C. ``pos_weight`` (C,) scales positives."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=pos_weight)


def asymmetric_loss(logits: torch.Tensor, target: torch.Tensor, gamma_neg: float = 4.0, gamma_pos: float = 0.0,
                    clip: float = 0.05, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Elementwise asymmetric loss (ASL, Ridnik et al. 2021); n×C -> n×C.

    With p = sigmoid(logit) and the shifted probability p_m = max(p − clip, 0):

        ASL = −[ y (1 − p)^γ+ log p  +  (1 − y) p_m^γ− log(1 − p_m) ]

    (the paper's L+ and L−; soft targets y ∈ [0, 1] weight the two terms). ``pos_weight``
    (C,) multiplies the positive term. The official code sums over entries; callers here
    average over the known entries (see :func:`reduce_loss`), which Adam barely notices.
    """
    p = torch.sigmoid(logits)
    log_p = F.logsigmoid(logits)
    if clip > 0:
        p_m = (p - clip).clamp(min=0)
        log_neg = torch.log1p(-p_m)  # 1 − p_m ≥ clip > 0: finite
    else:
        p_m = p
        log_neg = F.logsigmoid(-logits)
    pos = target * log_p
    if gamma_pos:
        pos = pos * (1 - p).pow(gamma_pos)
    if pos_weight is not None:
        pos = pos * pos_weight
    neg = (1 - target) * log_neg
    if gamma_neg:
        neg = neg * p_m.pow(gamma_neg)
    return -(pos + neg)


def elementwise_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, pos_weight=None,
                     asl: dict | None = None) -> torch.Tensor:
    """Dispatch on ``kind`` ('bce' or 'asl'); returns the n×C elementwise loss."""
    if kind == "bce":
        return bce_loss(logits, target, pos_weight)
    if kind == "asl":
        return asymmetric_loss(logits, target, pos_weight=pos_weight, **{**ASL_DEFAULTS, **(asl or {})})
    raise MlcilError(f"loss: expected one of {', '.join(LOSSES)}, got {kind!r}")


def check_loss(kind: str, who: str) -> None:
    if kind not in LOSSES:
        raise MlcilError(f"{who}: loss: expected one of {', '.join(LOSSES)}, got {kind!r}")


@dataclass
class Term:
    """One term of a training loss: ``weight`` × mean over known entries of loss(logits[:, cols], target).

    Attributes:
        target: n×k float tensor (0/1 labels or soft probabilities), rows = training rows;
            or a :class:`Teacher` computing soft targets from each batch's inputs.
        cols: the k logit columns it applies to (a slice; ``None`` = all columns).
        loss: 'bce' or 'asl'.
        mask: optional n×k float tensor, 1 = known entry, 0 = left out (label absence).
        weight: the term's weight in the total loss.
        pos_weight: optional (k,) tensor scaling positive entries (class imbalance).
    """

    target: "torch.Tensor | Teacher"
    cols: slice | None = None
    loss: str = "bce"
    mask: torch.Tensor | None = None
    weight: float = 1.0
    pos_weight: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor, idx: torch.Tensor, asl: dict | None = None,
                 Zb: torch.Tensor | None = None) -> torch.Tensor:
        # contiguous: elementwise kernels then take the same code path as for the targets, so a
        # student equal to its Teacher gets an exactly zero gradient (not 1-ulp noise)
        z = logits if self.cols is None else logits[:, self.cols].contiguous()
        t = self.target[idx] if isinstance(self.target, torch.Tensor) else self.target(Zb)
        if self.mask is None and self.pos_weight is None and self.loss == "bce":
            value = F.binary_cross_entropy_with_logits(z, t)  # the plain mean (FineTune's loss)
        else:
            ell = elementwise_loss(self.loss, z, t, self.pos_weight, asl)
            value = reduce_loss(ell, None if self.mask is None else self.mask[idx])
        return value if self.weight == 1.0 else self.weight * value


def reduce_loss(ell: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``ell`` over the entries where ``mask`` is 1 (all entries when mask is None)."""
    if mask is None:
        return ell.mean()
    return (ell * mask).sum() / mask.sum().clamp(min=1.0)


# ---- parameters --------------------------------------------------------------------------
def _uniform(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """rows×cols uniform in ±1/sqrt(rows) (fan-in scaled), drawn on CPU from ``generator``."""
    bound = 1.0 / np.sqrt(rows)
    return (torch.rand(rows, cols, generator=generator) * 2 - 1) * bound


def init_head(d: int, hidden: int, device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A head with no output column yet: linear (hidden=0) or one ReLU hidden layer of ``hidden`` units."""
    params = {}
    width = d
    if int(hidden) > 0:
        params["W1"] = _uniform(d, int(hidden), generator).to(device)
        params["b1"] = torch.zeros(int(hidden), device=device)
        width = int(hidden)
    params["W"] = torch.zeros(width, 0, device=device)
    params["b"] = torch.zeros(0, device=device)
    return params


def add_outputs(params: dict, k: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Append ``k`` output columns (fan-in uniform weights, zero bias); returns a new dict."""
    W, b = params["W"], params["b"]
    new = _uniform(W.shape[0], k, generator).to(W.device)
    return {**params, "W": torch.cat([W, new], dim=1), "b": torch.cat([b, torch.zeros(k, device=b.device)])}


def select_outputs(params: dict, keep: np.ndarray) -> dict[str, torch.Tensor]:
    """Keep the output columns where ``keep`` (bool, C) is True (forgetting classes)."""
    mask = torch.as_tensor(keep, device=params["W"].device)
    return {**params, "W": params["W"][:, mask], "b": params["b"][mask]}


def to_device(params: dict, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in params.items()}


def forward(params: dict, Z: torch.Tensor) -> torch.Tensor:
    """Logits n×C of standardised inputs Z (n×d).

    During training the new classes' output block may be held apart as ``W+``/``b+``
    (see :func:`train`): its logits are appended after those of ``W``/``b``.
    """
    if "W1" in params:
        Z = torch.relu(Z @ params["W1"] + params["b1"])
    out = Z @ params["W"] + params["b"]
    if "W+" in params:
        out = torch.cat([out, Z @ params["W+"] + params["b+"]], dim=1)
    return out


class Teacher:
    """Soft targets computed per batch from a frozen head: sigmoid(teacher logits), no gradient.

    Used as a :class:`Term` target for distillation (LwF). Computing them on the batch,
    with the same operations and shapes as the student's old-class block, makes the
    distillation gradient exactly zero while the student still equals the teacher, so
    Adam never turns rounding noise into parameter steps.
    """

    def __init__(self, params: dict) -> None:
        self.params = params

    def __call__(self, Zb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(forward(self.params, Zb))


def n_outputs(params: dict) -> int:
    return int(params["W"].shape[1])


# ---- data --------------------------------------------------------------------------------
def standardizer(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (mean, scale) of X: dense input is standardised, CSR input scaled by its column root
    mean square and not centred (centring would densify it). Constant features get scale 1."""
    shift, scale = ridge.fit_scaling(X, "scale" if sp.issparse(X) else "standardize")
    return (np.zeros(X.shape[1], dtype=np.float32) if shift is None else shift), scale


def to_tensor(X, device: torch.device, mean, scale) -> torch.Tensor:
    """Dense float32 tensor of (X − mean) / scale for a bounded block of rows (CSR is densified here)."""
    if sp.issparse(X):
        X = X.toarray()
    T = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
    return (T - torch.as_tensor(mean, device=device)) / torch.as_tensor(scale, device=device)


class Inputs:
    """Standardised rows on a device: dense X is converted once, CSR X per batch (bounded memory)."""

    def __init__(self, X, device: torch.device, mean, scale) -> None:
        self.sparse = sp.issparse(X)
        self.X, self.device, self.mean, self.scale = X, device, mean, scale
        self.n = X.shape[0]
        self.Z = None if self.sparse else to_tensor(X, device, mean, scale)

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        if self.Z is not None:
            return self.Z[idx]
        return to_tensor(self.X[idx.cpu().numpy()], self.device, self.mean, self.scale)


def predict_logits(params: dict, X, mean, scale, chunk: int | None = None) -> torch.Tensor:
    """Logits of raw rows X (dense or CSR) in bounded chunks, without gradients; n×C tensor on the head's device."""
    dev = params["W"].device
    chunk = chunk or ridge.rows_per_chunk(X.shape[1])
    out = []
    with torch.no_grad():
        for start in range(0, X.shape[0], chunk):
            Z = to_tensor(X[start:start + chunk], dev, mean, scale)
            out.append(forward(params, Z))
    if not out:
        return torch.zeros(0, n_outputs(params), device=dev)
    return torch.cat(out)


def minibatches(n: int, batch_size: int, generator: torch.Generator):
    """Shuffled index batches covering 0..n-1 once (one epoch)."""
    perm = torch.randperm(n, generator=generator)
    return perm.split(batch_size)


def train(params: dict, inputs: Inputs, terms: list[Term], *, epochs: int, lr: float, batch_size: int,
          weight_decay: float, generator: torch.Generator, asl: dict | None = None,
          on_epoch=None, new_outputs: int = 0) -> dict[str, torch.Tensor]:
    """Adam on the sum of ``terms`` over shuffled mini-batches; returns the trained (detached) params.

    Every parameter of the head is trained. ``on_epoch(epoch, params)`` (optional) is
    called after each epoch with detached parameters (validation, early stopping).
    Targets and masks must live on the inputs' device. ``new_outputs=k`` holds the last
    k output columns in a separate block while training, so the old columns' logits are
    computed exactly as the pre-session head computes them (see :class:`Teacher`).
    """
    dev = inputs.device
    k = int(new_outputs)
    if 0 < k < n_outputs(params):
        W, b = params["W"], params["b"]
        params = {**params, "W": W[:, :-k], "b": b[:-k], "W+": W[:, -k:], "b+": b[-k:]}
    live = {name: v.detach().contiguous().clone().requires_grad_(True) for name, v in params.items()}
    opt = torch.optim.Adam(list(live.values()), lr=lr, weight_decay=weight_decay)

    def merged() -> dict[str, torch.Tensor]:
        out = {name: v.detach() for name, v in live.items() if name not in ("W+", "b+")}
        if "W+" in live:
            out["W"] = torch.cat([out["W"], live["W+"].detach()], dim=1)
            out["b"] = torch.cat([out["b"], live["b+"].detach()])
        return out

    for epoch in range(int(epochs)):
        for idx in minibatches(inputs.n, int(batch_size), generator):
            idx = idx.to(dev)
            opt.zero_grad(set_to_none=True)
            Zb = inputs.rows(idx)
            logits = forward(live, Zb)
            loss = None
            for term in terms:
                value = term(logits, idx, asl, Zb)
                loss = value if loss is None else loss + value
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch, merged())
    return merged()


def session_generator(seed: int, session: int) -> torch.Generator:
    """CPU generator for one session's draws (initialisation, shuffling): seed·1000 + session."""
    return torch.Generator().manual_seed(int(seed) * 1000 + int(session))


class HeadLearner(Learner):
    """Shared plumbing of the session-by-session gradient heads (not registered).

    State: ``head_`` (dict of tensors, see :mod:`mlcil.learners.heads`), ``mean_`` and
    ``scale_`` (first-session standardisation), ``n_features_``, ``sessions_``.
    Subclasses implement ``_learn`` with :meth:`_begin`, :meth:`_train` and :meth:`_finish`.
    """

    uses_torch = True  # its state is torch tensors (saved and loaded as tensors)

    def _begin(self, X) -> tuple[torch.device, torch.Generator]:
        """Device and this session's generator; creates the head on the first session."""
        dev = torch.device(ridge.resolve_device(self.device))
        d, hidden = X.shape[1], int(getattr(self, "hidden", 0))
        width = hidden or (len(self.classes_) + 64)  # outputs are unknown here: a generous allowance
        ridge.check_budget(self.name, {
            f"head parameters and Adam state ({d}×{width} float32, 4 copies)": 4 * 4 * d * width,
            "standardised inputs (dense rows on the device)": 0 if sp.issparse(X) else 4 * X.shape[0] * d,
        }, hint="use fewer features (or sparse input, kept sparse)")
        if not self.is_fitted:
            self.n_features_ = X.shape[1]
            self.mean_, self.scale_ = standardizer(X)
            self.sessions_ = 0
            gen = session_generator(self.seed, 0)
            self.head_ = init_head(X.shape[1], int(getattr(self, "hidden", 0)), dev, gen)
            return dev, gen
        return dev, session_generator(self.seed, self.sessions_)

    def _train(self, params, inputs, terms, gen, new_outputs: int = 0):
        return train(params, inputs, terms, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                     weight_decay=self.weight_decay, generator=gen, new_outputs=new_outputs)

    def _finish(self, head, classes: np.ndarray) -> None:
        self.head_ = head
        self.sessions_ += 1
        self._classes = np.concatenate([self.classes_, classes])

    def _old_proba(self, X) -> torch.Tensor:
        """Sigmoid outputs of the current (pre-session) head on raw rows X: n×C_old tensor."""
        return torch.sigmoid(predict_logits(self.head_, X, self.mean_, self.scale_))

    def scores(self, X) -> np.ndarray:
        X = self._check_X(X)
        return predict_logits(self.head_, X, self.mean_, self.scale_).cpu().numpy()

    def _forget(self, keep: np.ndarray) -> None:
        self.head_ = select_outputs(self.head_, keep)

    def _after_load(self) -> None:
        self.head_ = to_device(self.head_, torch.device(ridge.resolve_device(self.device)))
