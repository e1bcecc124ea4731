"""Shared plumbing of the token learners ``krt`` and ``csc`` (torch): token input, attention, training.

Token input. A learner here reads the token features that ride with X (:class:`mlcil.data.dataset.TokenFeatures`,
``mlcil embed --tokens``): T (n×t×d, float16) and a mask (n×t bool). Without them it falls back to the
pooled embedding as a sequence of one token (t = 1, documented in each learner): the attention then has
a single key, so the methods reduce to heads on the pooled vector. Which input a learner learned from
is kept (``input_``: 'tokens' or 'pooled'); scoring rows without tokens after learning from tokens is an
error that names ``mlcil embed --tokens``.

Parameters are plain dicts of tensors (saved as learned state, as :mod:`mlcil.learners.heads` does).
Attention and layer norm are written out here (:func:`class_attention`, :func:`layer_norm`) so that tests
can check them against ``torch.nn.MultiheadAttention`` and ``torch.nn.functional.layer_norm``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mlcil import ridge
from mlcil.data.dataset import check_features, token_features
from mlcil.errors import MlcilError
from mlcil.learners.base import Learner

#: rows scored at once
SCORE_CHUNK = 512


# ---- building blocks ------------------------------------------------------------------------
def uniform(shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> torch.Tensor:
    """U(−1/√fan_in, 1/√fan_in) float32 on the CPU (``nn.Linear``'s initialisation), from ``generator``."""
    bound = 1.0 / math.sqrt(max(int(fan_in), 1))
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def layer_norm(x: torch.Tensor, p: dict, prefix: str, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last axis with weight ``p[prefix + '.g']`` and bias ``p[prefix + '.b']``."""
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * p[prefix + ".g"] + p[prefix + ".b"]


def init_layer_norm(p: dict, prefix: str, D: int) -> None:
    p[prefix + ".g"], p[prefix + ".b"] = torch.ones(D), torch.zeros(D)


def init_attention(p: dict, prefix: str, D: int, gen: torch.Generator) -> None:
    """Query, key, value and output projections (D×D each, with biases)."""
    for w in ("q", "k", "v", "o"):
        p[f"{prefix}.W{w}"] = uniform((D, D), D, gen)
        p[f"{prefix}.b{w}"] = torch.zeros(D)


def class_attention(p: dict, prefix: str, z: torch.Tensor, X: torch.Tensor, mask: torch.Tensor,
                    heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class attention (CaiT's, as KRT's incremental cross-attention uses it): each of m query tokens
    attends over itself and the t input tokens, never over the other queries.

    z: n×m×D queries (task or class tokens); X: n×t×D tokens; mask: n×t bool (False = padding,
    never attended). With h = ``heads`` heads of D/h dims, for query j and head r:

        a_j = softmax([q_j·k(z_j), q_j·k(X_1..t)] / √(D/h)),   out_j = a_j · [v(z_j); v(X)]

    q, k, v = linear maps ``p[prefix.Wq]`` ... (x W + b); the heads' outputs are concatenated and
    mapped by ``Wo``. Returns (n×m×D outputs, n×h×m×(1+t) attention weights).
    """
    n, m, D = z.shape
    t = X.shape[1]
    dh = D // heads

    def lin(x, w):
        return x @ p[f"{prefix}.W{w}"] + p[f"{prefix}.b{w}"]

    def split(x):  # n×L×D -> n×h×L×dh
        return x.reshape(n, x.shape[1], heads, dh).transpose(1, 2)

    Q, Kz, Vz = split(lin(z, "q")), split(lin(z, "k")), split(lin(z, "v"))
    KX, VX = split(lin(X, "k")), split(lin(X, "v"))
    s_self = (Q * Kz).sum(-1, keepdim=True) / math.sqrt(dh)                     # n×h×m×1
    s_X = (Q @ KX.transpose(-1, -2)) / math.sqrt(dh)                            # n×h×m×t
    s_X = s_X.masked_fill(~mask[:, None, None, :], float("-inf"))
    a = torch.softmax(torch.cat([s_self, s_X], dim=-1), dim=-1)
    out = a[..., :1] * Vz + a[..., 1:] @ VX                                     # n×h×m×dh
    out = out.transpose(1, 2).reshape(n, m, D)
    assert a.shape[-1] == 1 + t
    return lin(out, "o"), a


def init_mlp(p: dict, prefix: str, D: int, hidden: int, gen: torch.Generator) -> None:
    p[prefix + ".W1"], p[prefix + ".b1"] = uniform((D, hidden), D, gen), torch.zeros(hidden)
    p[prefix + ".W2"], p[prefix + ".b2"] = uniform((hidden, D), hidden, gen), torch.zeros(D)


def mlp(p: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x @ p[prefix + ".W1"] + p[prefix + ".b1"]) @ p[prefix + ".W2"] + p[prefix + ".b2"]


def init_projection(p: dict, d_in: int, D: int, gen: torch.Generator) -> None:
    """Input projection of the tokens (KRT's "linear projection" of the patch tokens): d_in -> D, then LayerNorm."""
    p["proj.W"], p["proj.b"] = uniform((d_in, D), d_in, gen), torch.zeros(D)
    init_layer_norm(p, "proj.ln", D)


def project(p: dict, T: torch.Tensor) -> torch.Tensor:
    return layer_norm(T @ p["proj.W"] + p["proj.b"], p, "proj.ln")


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Elementwise binary entropy (nats) of σ(logits)."""
    p = torch.sigmoid(logits)
    return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits))


# ---- training ---------------------------------------------------------------------------------
def adam(params: dict, trainable: dict[str, torch.Tensor | None], loss_fn, n: int, *, epochs: int, lr: float,
         batch_size: int, generator: torch.Generator) -> dict:
    """Mini-batch Adam (no weight decay) over shuffled rows. ``trainable``: name -> None (train all of
    the tensor) or a 0/1 mask of its shape (entries with 0 stay exactly as they are: their gradient is
    zeroed, and Adam without weight decay then never moves them). ``loss_fn(p, idx)`` -> scalar.
    Returns the trained copy of ``params``."""
    p = {k: v.detach().clone() for k, v in params.items()}
    leaves = [p[k].requires_grad_(True) for k in trainable]
    masks = [trainable[k] for k in trainable]
    opt = torch.optim.Adam(leaves, lr=lr)
    for _ in range(int(epochs)):
        for idx in torch.randperm(n, generator=generator).split(int(batch_size)):
            opt.zero_grad(set_to_none=False)
            loss = loss_fn(p, idx)
            loss.backward()
            for leaf, m in zip(leaves, masks):
                if m is not None and leaf.grad is not None:
                    leaf.grad.mul_(m)
            opt.step()
    return {k: v.detach() for k, v in p.items()}


class TokenLearner(Learner):
    """Token input, its fallback, scoring in chunks (not registered; ``krt`` and ``csc`` build on it).

    Subclasses implement ``_fit(T, mask, Y, classes)`` (tensors on the CPU) and ``_logits(p, T, mask)``.
    """

    uses_torch = True
    _tokens_in = None

    def learn(self, X, Y=None, classes=None, **kwargs) -> "TokenLearner":
        """As :meth:`Learner.learn`; reads the token features riding with X (or the session's X)."""
        self._tokens_in = token_features(X)
        try:
            return super().learn(X, Y, classes, **kwargs)
        finally:
            vars(self).pop("_tokens_in", None)

    def _token_input(self, X, tokens, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(n×t×d float32 tensor, n×t bool tensor): the tokens, or the pooled X as one token."""
        n = X.shape[0]
        learned = getattr(self, "input_", None)
        if tokens is not None and learned != "pooled":
            T, mask = tokens
            if T.shape[0] != n:
                raise MlcilError(f"{self.name}: {what}: {T.shape[0]} token rows for {n} rows of X")
            d_tok = getattr(self, "token_dim_", None)
            if d_tok is not None and T.shape[2] != d_tok:
                raise MlcilError(f"{self.name}: {what}: token features of {T.shape[2]} dims, learned with {d_tok}")
            mask = np.asarray(mask, dtype=bool).copy()
            mask[~mask.any(axis=1), 0] = True  # an empty row attends to its (zero) first token
            return torch.as_tensor(np.asarray(T, dtype=np.float32)), torch.as_tensor(mask)
        if learned == "tokens":
            raise MlcilError(f"{self.name}: {what} carries no token features, but this learner learned from tokens: "
                             "score rows of a dataset embedded with `mlcil embed --tokens` (or pass a TokenFeatures)")
        dense = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        return torch.as_tensor(dense, dtype=torch.float32)[:, None, :], torch.ones(n, 1, dtype=torch.bool)

    def _learn(self, X, Y: np.ndarray, classes: np.ndarray) -> None:
        tokens = self._tokens_in
        if tokens is not None and getattr(self, "input_", None) == "pooled":
            tokens = None  # learned from the pooled vector: stay on it
        T, mask = self._token_input(X, tokens, "session.X")
        n, t, d = T.shape
        ridge.check_budget(self.name, {"token features (float32)": 4 * n * t * d,
                                       "activations (about 8 per token and width)": 4 * 8 * n * t * int(self.dim)},
                           hint="embed fewer tokens (mlcil embed --tokens N) or lower dim")
        if not self.is_fitted:
            self.input_ = "tokens" if tokens is not None else "pooled"
            self.token_dim_ = int(d)
            self.n_features_ = int(X.shape[1])
            self.sessions_ = 0
        torch.manual_seed(0)  # nothing here draws from the global generator; belt and braces for dropout-free ops
        self._fit(T, mask, torch.as_tensor(Y, dtype=torch.float32), classes)
        self.sessions_ += 1
        self._classes = np.concatenate([self.classes_, classes])

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.seed) * 1000 + int(getattr(self, "sessions_", 0)))

    def _all_logits(self, p: dict, T: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self._logits(p, T[i:i + SCORE_CHUNK], mask[i:i + SCORE_CHUNK])
                              for i in range(0, T.shape[0], SCORE_CHUNK)]) if T.shape[0] else \
                torch.zeros(0, len(self.classes_))

    def scores(self, X) -> np.ndarray:
        """n × len(classes_) logits (from the tokens riding with X, or the pooled X as one token)."""
        tokens = token_features(X)
        X = check_features(X, f"{self.name}: X", d=getattr(self, "n_features_", None))
        T, mask = self._token_input(X, tokens, "X")
        return self._all_logits(self.params_, T, mask).numpy().astype(np.float64)

    def _check_common(self) -> None:
        for key in ("dim", "heads", "epochs", "batch_size"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise MlcilError(f"{self.name}: {key}: expected a positive integer, got {v!r}")
        if int(self.dim) % int(self.heads):
            raise MlcilError(f"{self.name}: dim ({self.dim}) must be a multiple of heads ({self.heads})")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise MlcilError(f"{self.name}: lr: expected a positive learning rate, got {self.lr!r}")

    # ---- exemplar memory (off by default: memory=0) -------------------------------------------
    def _memory(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(T_m float32, mask_m, Y_m) of the kept exemplars, Y_m over the classes learned so far with NaN
        where a label is unknown (a class introduced after the exemplar's session); None when empty."""
        T_m = getattr(self, "memory_T_", None)
        if T_m is None or T_m.shape[0] == 0:
            return None
        return T_m.float(), self.memory_mask_, self.memory_Y_

    def _remember(self, T: torch.Tensor, mask: torch.Tensor, Y: torch.Tensor, gen: torch.Generator) -> None:
        """Keep up to ``memory`` session rows per new class (seeded random choice among its positives),
        with their labels for this session's classes; earlier classes' entries are NaN (unknown), and so
        are this session's entries of exemplars kept before. Exemplars count against ``state_bytes``."""
        per_class = int(getattr(self, "memory", 0) or 0)
        old_C = len(self.classes_)
        k = Y.shape[1]
        prev = getattr(self, "memory_T_", None)
        if prev is not None and prev.shape[0]:
            self.memory_Y_ = torch.cat([self.memory_Y_, torch.full((prev.shape[0], k), float("nan"))], dim=1)
        if per_class <= 0:
            return
        chosen: list[int] = []
        for c in range(k):
            pos = torch.nonzero(Y[:, c] > 0).flatten()
            pick = pos[torch.randperm(len(pos), generator=gen)[:per_class]].tolist()
            chosen.extend(i for i in pick if i not in chosen)
        if not chosen:
            return
        idx = torch.as_tensor(sorted(chosen))
        Y_new = torch.cat([torch.full((len(idx), old_C), float("nan")), Y[idx]], dim=1)
        T_new, m_new = T[idx].half(), mask[idx]
        if prev is None or prev.shape[0] == 0:
            self.memory_T_, self.memory_mask_, self.memory_Y_ = T_new, m_new, Y_new
            return
        if prev.shape[1:] != T_new.shape[1:]:
            raise MlcilError(f"{self.name}: exemplars of {tuple(prev.shape[1:])} tokens × dims, this session's rows "
                             f"have {tuple(T_new.shape[1:])}; embed every session with the same --tokens")
        self.memory_T_ = torch.cat([prev, T_new])
        self.memory_mask_ = torch.cat([self.memory_mask_, m_new])
        self.memory_Y_ = torch.cat([self.memory_Y_, Y_new])


def masked_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the entries whose target is not NaN (0 when there are none)."""
    known = ~torch.isnan(target)
    if not known.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known], target[known])
