"""``KRT``: Knowledge Restore and Transfer (Dong et al., ICCV 2023) on frozen token features (torch)."""

from __future__ import annotations

import numpy as np
import torch

from mlcil.errors import MlcilError
from mlcil.learners import attention as A
from mlcil.learners.base import register


@register("krt")
class KRT(A.TokenLearner):
    """KRT (Dong, Luo, He, Wei, Cheng, Gong, "Knowledge Restore and Transfer for Multi-Label
    Class-Incremental Learning", ICCV 2023), written from the paper's description on frozen features.

    Tokens X (n×t×d, e.g. MiniLM's per-token states; see :mod:`mlcil.learners.attention` for the
    pooled fallback) are projected, X̂ = LN(X W_p + b_p) (D = ``dim``). Session s owns a task token
    τ_s (D) and a head (W_s, b_s) for its classes. The incremental cross-attention block (one class-
    attention layer, shared by all sessions) turns every task token into an output:

        z_s = τ_s + CA(LN₁(τ_s), LN₁(X̂)),   z_s ← z_s + MLP(LN₂(z_s)),   logits_s = LN₃(z_s) W_s + b_s

    with CA = :func:`~mlcil.learners.attention.class_attention` (each token attends over itself and
    the tokens, ``heads`` heads). Session t trains the projection, the block, τ_t and head t with

        L = BCE(logits_t, Y_t) + ρ · BCE(logits_<t, Ŷ) + κ · mean_s<t ‖z_s − z_s^old‖²

    - knowledge restoration (the paper's dynamic pseudo-labels): Ŷ = 1[σ(old model's logits) > η]
      on the session's rows, η = ``pseudo_threshold`` (0.7);
    - knowledge retention (the paper's token loss): old tokens' outputs z_s stay close to the
      pre-session model's z_s^old on the same rows;
    - old tokens τ_<t and heads are frozen (never updated after their session).

    What differs from the paper on frozen features: KRT fine-tunes its backbone (TResNet-M) with the
    ICA module; here the encoder is frozen and only the projection, block, tokens and heads train. The
    paper's unified knowledge-transfer (KT) token is not modelled (the shared block plays its part).
    The paper keeps a small exemplar memory (20 per class in the field's re-benchmarks); ``memory``
    (exemplars per class, kept as token features) is 0 by default, so the default is exemplar-free
    and not the paper's setting: pass ``memory=20`` for it.

    Args:
        dim: D, width of the projection and the block (128); heads: attention heads (4).
        pseudo_threshold: η (0.7); restore: ρ (1); retain: κ (1).
        memory: exemplars kept per class (0 = exemplar-free).
        epochs, lr, batch_size: Adam per session (20, 1e-3, 64). seed: initialisation and shuffling.
        device: 'cpu' (the learner computes on the CPU; 'auto'/'cuda' are accepted for the harness).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 6)).astype(np.float32)
    >>> model = KRT(dim=8, heads=2, epochs=2).learn(X, (X[:, :2] > 0).astype(np.uint8))
    >>> model.learn(X, (X[:, 2:3] > 0).astype(np.uint8)).scores(X).shape
    (64, 3)
    """

    mutable_params = frozenset({"device", "epochs", "lr", "batch_size", "restore", "retain", "pseudo_threshold"})

    def __init__(self, dim: int = 128, heads: int = 4, pseudo_threshold: float = 0.7, restore: float = 1.0,
                 retain: float = 1.0, memory: int = 0, epochs: int = 20, lr: float = 1e-3, batch_size: int = 64,
                 seed: int = 0, device: str = "cpu") -> None:
        self.dim = dim
        self.heads = heads
        self.pseudo_threshold = pseudo_threshold
        self.restore = restore
        self.retain = retain
        self.memory = memory
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    # ---- the model ---------------------------------------------------------------------------
    @staticmethod
    def token_outputs(p: dict, T: torch.Tensor, mask: torch.Tensor, sessions: int, heads: int) -> torch.Tensor:
        """n × sessions × D outputs z_s of the task tokens τ_0..τ_{sessions−1}."""
        X = A.project(p, T)
        tau = torch.stack([p[f"tok.{s}"] for s in range(sessions)])
        z = tau.expand(T.shape[0], -1, -1)
        out, _ = A.class_attention(p, "blk.attn", A.layer_norm(z, p, "blk.ln1"), A.layer_norm(X, p, "blk.ln1"),
                                   mask, heads)
        z = z + out
        return z + A.mlp(p, "blk.mlp", A.layer_norm(z, p, "blk.ln2"))

    @staticmethod
    def head_logits(p: dict, z: torch.Tensor) -> torch.Tensor:
        """n × C logits: session s's head on LN₃(z_s), concatenated in session order."""
        zn = A.layer_norm(z, p, "out.ln")
        return torch.cat([zn[:, s] @ p[f"head.W.{s}"] + p[f"head.b.{s}"] for s in range(z.shape[1])], dim=1)

    def _logits(self, p: dict, T: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head_logits(p, self.token_outputs(p, T, mask, self.sessions_, int(self.heads)))

    # ---- one session ---------------------------------------------------------------------------
    def _fit(self, T: torch.Tensor, mask: torch.Tensor, Y: torch.Tensor, classes: np.ndarray) -> None:
        self._check_common()
        if not 0 <= float(self.pseudo_threshold) <= 1:
            raise MlcilError(f"krt: pseudo_threshold: expected a probability in [0, 1], got {self.pseudo_threshold!r}")
        gen = self._generator()
        D, h, s, k = int(self.dim), int(self.heads), int(self.sessions_), Y.shape[1]
        old = getattr(self, "params_", None)
        if old is None:
            p: dict = {}
            A.init_projection(p, T.shape[2], D, gen)
            A.init_layer_norm(p, "blk.ln1", D)
            A.init_attention(p, "blk.attn", D, gen)
            A.init_layer_norm(p, "blk.ln2", D)
            A.init_mlp(p, "blk.mlp", D, 2 * D, gen)
            A.init_layer_norm(p, "out.ln", D)
        else:
            p = dict(old)
        p[f"tok.{s}"] = torch.randn(D, generator=gen) * 0.02
        p[f"head.W.{s}"], p[f"head.b.{s}"] = A.uniform((D, k), D, gen), torch.zeros(k)
        C_old = len(self.classes_)
        mem = self._memory()
        if mem is not None:  # exemplars: their known old labels; the new classes count as negatives there
            T_m, mask_m, Y_m = mem
            T_all, mask_all = torch.cat([T, T_m]), torch.cat([mask, mask_m])
        else:
            T_all, mask_all = T, mask
        n, n_all = T.shape[0], T_all.shape[0]
        target = torch.zeros(n_all, C_old + k)
        target[:n, C_old:] = Y
        z_old = None
        if s:
            with torch.no_grad():
                z_old = torch.cat([self.token_outputs(old, T_all[i:i + A.SCORE_CHUNK], mask_all[i:i + A.SCORE_CHUNK],
                                                      s, h) for i in range(0, n_all, A.SCORE_CHUNK)])
                pseudo = (torch.sigmoid(self.head_logits(old, z_old)) > float(self.pseudo_threshold)).float()
            target[:, :C_old] = pseudo
            if mem is not None:
                known = ~torch.isnan(Y_m)
                target[n:, :C_old] = torch.where(known, torch.nan_to_num(Y_m), pseudo[n:])
        shared = [key for key in p if not key.startswith(("tok.", "head."))]
        trainable = {key: None for key in [*shared, f"tok.{s}", f"head.W.{s}", f"head.b.{s}"]}

        def loss(q, idx):
            z = self.token_outputs(q, T_all[idx], mask_all[idx], s + 1, h)
            logits = self.head_logits(q, z)
            total = A.masked_bce(logits[:, C_old:], target[idx, C_old:])
            if s:
                total = total + float(self.restore) * A.masked_bce(logits[:, :C_old], target[idx, :C_old])
                total = total + float(self.retain) * ((z[:, :s] - z_old[idx]) ** 2).mean()
            return total

        self.params_ = A.adam(p, trainable, loss, n_all, epochs=int(self.epochs), lr=float(self.lr),
                              batch_size=int(self.batch_size), generator=gen)
        self._remember(T, mask, Y, gen)
