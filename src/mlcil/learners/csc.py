"""``CSC``: Confidence Self-Calibration (Du et al., ECCV 2024) on frozen token features (torch)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mlcil.learners import attention as A
from mlcil.learners.base import register

#: per-class parameters (one row per class, in ``classes_`` order)
PER_CLASS = ("query", "act.W", "act.b", "gcn.W", "gcn.b")
#: widest D for which :meth:`CSC.propagate` uses the fused attention (on the CPU it is faster at D = 32,
#: slower at D = 128, forward and backward measured side by side)
FUSED_MAX_DIM = 64


@register("csc")
class CSC(A.TokenLearner):
    """CSC (Du, Zhou, Lyu, Gu, Tang, Zhang, "Confidence Self-Calibration for Multi-Label Class-Incremental
    Learning", ECCV 2024), written from the paper's description on frozen token features.

    Tokens X (n×t×d; pooled fallback as in :mod:`mlcil.learners.attention`) are projected,
    X̂ = LN(X W_p + b_p) (D = ``dim``). With C the classes seen so far:

    - class activation: each class c has a query q_c; a_c = softmax_t(X̂ q_c / √D) over the real
      tokens, and the label node v_c = Σ_t a_{c,t} X̂_t (n×C×D). Activation branch:
      s^act_c = v_c · w^act_c + b^act_c;
    - class-incremental graph over the label nodes: a general relation R^gen = softmax_row(G)
      (G: C×C, learned, growing by the new classes' rows and columns each session) and a
      sample-specific relation R^spec(x) = softmax_row((V W_q)(V W_k)ᵀ / √D); R = (R^gen + R^spec)/2;
      H = V + LeakyReLU(R V W_g); graph branch: s^gcn_c = h_c · w^gcn_c + b^gcn_c;
    - scores: s = (s^act + s^gcn) / 2.

    Session t trains the shared maps (projection, W_q, W_k, W_g), the new classes' rows (queries,
    branch weights) and G's new rows and columns; old classes' rows and G's old block stay frozen:

        L = BCE(s_new, Y_t) + λ · BCE(s_old, σ(s_old^pre)) − β · mean H(σ(s_old))

    λ = ``distill`` (the pre-session model's outputs as soft targets, as the paper's distillation);
    β = ``calibrate``: the confidence self-calibration, a max-entropy regulariser that keeps the old
    classes' outputs on new data from becoming over-confident (H = binary entropy).

    What differs from the paper on frozen features: CSC fine-tunes its backbone (TResNet-M) and builds its
    class activation on the backbone's spatial map; here the encoder is frozen and the activation reads
    the cached token features. The paper's exemplar memory is ``memory`` (per class, token features),
    0 by default: the default is exemplar-free, not the paper's setting.

    Args:
        dim: D (128); heads: unused by the graph, kept for the shared checks (4).
        distill: λ (1); calibrate: β (0.1); memory: exemplars per class (0).
        epochs, lr, batch_size: Adam per session (20, 1e-3, 64). seed. device ('cpu').

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 6)).astype(np.float32)
    >>> model = CSC(dim=8, epochs=2).learn(X, (X[:, :2] > 0).astype(np.uint8))
    >>> model.learn(X, (X[:, 2:3] > 0).astype(np.uint8)).scores(X).shape
    (64, 3)
    """

    mutable_params = frozenset({"device", "epochs", "lr", "batch_size", "distill", "calibrate"})

    def __init__(self, dim: int = 128, heads: int = 4, distill: float = 1.0, calibrate: float = 0.1, memory: int = 0,
                 epochs: int = 20, lr: float = 1e-3, batch_size: int = 64, seed: int = 0, device: str = "cpu") -> None:
        self.dim = dim
        self.heads = heads
        self.distill = distill
        self.calibrate = calibrate
        self.memory = memory
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    # ---- the model ---------------------------------------------------------------------------
    @staticmethod
    def label_nodes(p: dict, T: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(V n×C×D label nodes, a n×C×t class activation weights)."""
        X = A.project(p, T)
        s = X @ p["query"].T / math.sqrt(X.shape[-1])                      # n×t×C
        s = s.masked_fill(~mask[:, :, None], float("-inf"))
        a = torch.softmax(s, dim=1).transpose(1, 2)                        # n×C×t
        return a @ X, a

    @staticmethod
    def relations(p: dict, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R^gen C×C, R^spec n×C×C): the general and the sample-specific relations (rows sum to 1)."""
        general = torch.softmax(p["graph.G"], dim=-1)
        specific = torch.softmax((V @ p["rel.Wq"]) @ (V @ p["rel.Wk"]).transpose(1, 2) / math.sqrt(V.shape[-1]), dim=-1)
        return general, specific

    @classmethod
    def propagate(cls, p: dict, V: torch.Tensor) -> torch.Tensor:
        """R V = ((R^gen + R^spec) / 2) V, n×C×D: the relations of :meth:`relations` applied to the label nodes.

        Up to ``FUSED_MAX_DIM`` dims it is computed without forming any n×C×C tensor: R^gen V as one C×C
        by C×(n·D) product, R^spec V as torch's scaled dot-product attention of the label nodes over
        themselves (queries V W_q, keys V W_k, values V, scale 1/√D); the n×C×C softmax and its gradient
        dominate a narrow graph's cost on sets with hundreds of classes. Wider, forming R is faster on the
        CPU (measured in docs/learners/csc.md). Both compute the same product (tests compare them)."""
        n, C, D = V.shape
        if D > FUSED_MAX_DIM:
            general, specific = cls.relations(p, V)
            return ((general[None] + specific) / 2) @ V
        general = torch.softmax(p["graph.G"], dim=-1)
        gen_V = (general @ V.transpose(0, 1).reshape(C, n * D)).reshape(C, n, D).transpose(0, 1)
        spec_V = F.scaled_dot_product_attention(V @ p["rel.Wq"], V @ p["rel.Wk"], V)
        return (gen_V + spec_V) / 2

    @classmethod
    def branches(cls, p: dict, T: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s^act, s^gcn), each n×C."""
        V, _ = cls.label_nodes(p, T, mask)
        H = V + F.leaky_relu(cls.propagate(p, V) @ p["gcn.Wg"], 0.2)
        act = (V * p["act.W"]).sum(-1) + p["act.b"]
        gcn = (H * p["gcn.W"]).sum(-1) + p["gcn.b"]
        return act, gcn

    def _logits(self, p: dict, T: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        act, gcn = self.branches(p, T, mask)
        return (act + gcn) / 2

    # ---- one session ---------------------------------------------------------------------------
    def _fit(self, T: torch.Tensor, mask: torch.Tensor, Y: torch.Tensor, classes: np.ndarray) -> None:
        self._check_common()
        gen = self._generator()
        D, k = int(self.dim), Y.shape[1]
        C_old = len(self.classes_)
        old = getattr(self, "params_", None)
        new = {"query": torch.randn(k, D, generator=gen) * D ** -0.5, "act.W": A.uniform((k, D), D, gen),
               "act.b": torch.zeros(k), "gcn.W": A.uniform((k, D), D, gen), "gcn.b": torch.zeros(k)}
        if old is None:
            p: dict = {}
            A.init_projection(p, T.shape[2], D, gen)
            p["rel.Wq"], p["rel.Wk"], p["gcn.Wg"] = (A.uniform((D, D), D, gen) for _ in range(3))
            p.update(new)
            p["graph.G"] = torch.zeros(k, k)
        else:
            p = dict(old)
            for key in PER_CLASS:
                p[key] = torch.cat([old[key], new[key]])
            G = torch.zeros(C_old + k, C_old + k)
            G[:C_old, :C_old] = old["graph.G"]
            p["graph.G"] = G
        trainable: dict = {key: None for key in ("proj.W", "proj.b", "proj.ln.g", "proj.ln.b", "rel.Wq", "rel.Wk",
                                                 "gcn.Wg")}
        for key in PER_CLASS:  # only the new classes' rows
            m = torch.zeros_like(p[key])
            m[C_old:] = 1
            trainable[key] = m
        g_mask = torch.ones_like(p["graph.G"])
        g_mask[:C_old, :C_old] = 0
        trainable["graph.G"] = g_mask
        mem = self._memory()
        if mem is not None:
            T_m, mask_m, Y_m = mem
            T_all, mask_all = torch.cat([T, T_m]), torch.cat([mask, mask_m])
        else:
            T_all, mask_all = T, mask
        n, n_all = T.shape[0], T_all.shape[0]
        target = torch.zeros(n_all, C_old + k)
        target[:n, C_old:] = Y
        if C_old:
            with torch.no_grad():
                soft = torch.sigmoid(torch.cat([self._logits(old, T_all[i:i + A.SCORE_CHUNK],
                                                             mask_all[i:i + A.SCORE_CHUNK])
                                                for i in range(0, n_all, A.SCORE_CHUNK)]))
            target[:, :C_old] = soft
            if mem is not None:
                known = ~torch.isnan(Y_m)
                target[n:, :C_old] = torch.where(known, torch.nan_to_num(Y_m), soft[n:])

        def loss(q, idx):
            logits = self._logits(q, T_all[idx], mask_all[idx])
            total = A.masked_bce(logits[:, C_old:], target[idx, C_old:])
            if C_old:
                total = total + float(self.distill) * A.masked_bce(logits[:, :C_old], target[idx, :C_old])
                total = total - float(self.calibrate) * A.entropy(logits[:, :C_old]).mean()
            return total

        self.params_ = A.adam(p, trainable, loss, n_all, epochs=int(self.epochs), lr=float(self.lr),
                              batch_size=int(self.batch_size), generator=gen)
        self._remember(T, mask, Y, gen)

    def _forget(self, keep: np.ndarray) -> None:
        """Drop classes: their rows of the per-class parameters and their rows and columns of G
        (the remaining classes' scores change only through the graph's relations)."""
        idx = torch.as_tensor(np.flatnonzero(keep))
        p = dict(self.params_)
        for key in PER_CLASS:
            p[key] = p[key][idx]
        p["graph.G"] = p["graph.G"][idx][:, idx]
        self.params_ = p
        if getattr(self, "memory_Y_", None) is not None:
            self.memory_Y_ = self.memory_Y_[:, idx]
