"""`csc`: class activation, label nodes and the graph's relations against direct NumPy computations,
the loss terms (distillation, max-entropy calibration), the growing graph with frozen old classes."""

import numpy as np
import torch
import torch.nn.functional as F

from mlcil.learners import attention as A
from mlcil.learners.csc import CSC

from .test_krt import token_stream

FAST = dict(dim=8, heads=2, epochs=2, batch_size=32)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_label_nodes_relations_and_branches_direct():
    ds, stream = token_stream()
    model = CSC(**FAST)
    for s in stream.sessions[:2]:
        model.learn(s)
    p = {k: v.double() for k, v in model.params_.items()}
    rows = np.arange(10)
    T = torch.as_tensor(ds.T[rows].astype(np.float64))
    mask = torch.as_tensor(ds.mask[rows])
    Xh = A.project(p, T).numpy()
    q = p["query"].numpy()
    s = np.einsum("ntd,cd->nct", Xh, q) / np.sqrt(8)
    s[np.broadcast_to(~ds.mask[rows][:, None, :], s.shape)] = -np.inf
    a = softmax(s, axis=2)
    V = np.einsum("nct,ntd->ncd", a, Xh)
    V_t, a_t = CSC.label_nodes(p, T, mask)
    np.testing.assert_allclose(a_t.numpy(), a, atol=1e-10)
    np.testing.assert_allclose(V_t.numpy(), V, atol=1e-10)
    general, specific = CSC.relations(p, V_t)
    np.testing.assert_allclose(general.numpy(), softmax(p["graph.G"].numpy(), 1), atol=1e-12)
    Wq, Wk = p["rel.Wq"].numpy(), p["rel.Wk"].numpy()
    ref_spec = softmax(np.einsum("ncd,nkd->nck", V @ Wq, V @ Wk) / np.sqrt(8), 2)
    np.testing.assert_allclose(specific.numpy(), ref_spec, atol=1e-10)
    R = (softmax(p["graph.G"].numpy(), 1)[None] + ref_spec) / 2
    Z = R @ V @ p["gcn.Wg"].numpy()
    H = V + np.where(Z > 0, Z, 0.2 * Z)
    act = (V * p["act.W"].numpy()).sum(-1) + p["act.b"].numpy()
    gcn = (H * p["gcn.W"].numpy()).sum(-1) + p["gcn.b"].numpy()
    np.testing.assert_allclose(model._logits(p, T, mask).numpy(), (act + gcn) / 2, atol=1e-9)


def test_graph_grows_and_old_classes_stay_frozen(monkeypatch):
    ds, stream = token_stream()
    seen = {}
    real = A.adam

    def spy(p, trainable, loss_fn, n, **kw):
        seen.update(p=p, loss_fn=loss_fn, trainable=trainable)
        return real(p, trainable, loss_fn, n, **kw)

    monkeypatch.setattr(A, "adam", spy)
    model = CSC(**FAST, distill=0.5, calibrate=0.3).learn(stream.sessions[0])
    old = {k: v.clone() for k, v in model.params_.items()}
    s1 = stream.sessions[1]
    model.learn(s1)
    p = model.params_
    assert p["graph.G"].shape == (4, 4) and p["query"].shape == (4, 8)
    torch.testing.assert_close(p["graph.G"][:2, :2], old["graph.G"], rtol=0, atol=0)
    assert p["graph.G"][2:].abs().sum() > 0  # the new rows and columns learned
    for key in ("query", "act.W", "act.b", "gcn.W", "gcn.b"):
        torch.testing.assert_close(p[key][:2], old[key], rtol=0, atol=0)
        assert not torch.equal(p[key][2:], seen["p"][key][2:])
    # loss terms, directly: BCE(new) + λ BCE(old, σ(old model)) − β mean H(σ(old))
    T = torch.as_tensor(ds.T[s1.index].astype(np.float32))
    mask = torch.as_tensor(ds.mask[s1.index])
    Y = torch.as_tensor(s1.Y, dtype=torch.float32)
    soft = torch.sigmoid(model._logits(old, T, mask))
    logits = model._logits(p, T, mask)
    q = torch.sigmoid(logits[:, :2]).clamp(1e-12, 1 - 1e-12)
    ent = -(q * q.log() + (1 - q) * (1 - q).log()).mean()
    expected = (F.binary_cross_entropy_with_logits(logits[:, 2:], Y)
                + 0.5 * F.binary_cross_entropy_with_logits(logits[:, :2], soft) - 0.3 * ent)
    torch.testing.assert_close(seen["loss_fn"](p, torch.arange(len(Y))), expected, atol=1e-5, rtol=1e-5)


def test_forget_drops_rows_and_graph_entries():
    ds, stream = token_stream()
    model = CSC(**FAST)
    for s in stream.sessions[:2]:
        model.learn(s)
    G = model.params_["graph.G"].clone()
    model.forget([1])
    assert model.classes_.tolist() == [0, 2, 3] and model.params_["query"].shape[0] == 3
    torch.testing.assert_close(model.params_["graph.G"], G[[0, 2, 3]][:, [0, 2, 3]])
    assert model.scores(stream.X_test).shape == (len(stream.Y_test), 3)


def test_propagate_equals_forming_the_relation():
    """R V both ways (fused attention at D <= FUSED_MAX_DIM, the formed n×C×C relation above) against NumPy."""
    from mlcil.learners import csc as csc_module

    g = torch.Generator().manual_seed(3)
    for D in (8, csc_module.FUSED_MAX_DIM + 8):
        n, C = 3, 5
        p = {"graph.G": torch.randn(C, C, generator=g, dtype=torch.float64),
             "rel.Wq": torch.randn(D, D, generator=g, dtype=torch.float64) / D ** 0.5,
             "rel.Wk": torch.randn(D, D, generator=g, dtype=torch.float64) / D ** 0.5}
        V = torch.randn(n, C, D, generator=g, dtype=torch.float64)
        Vn, Wq, Wk = V.numpy(), p["rel.Wq"].numpy(), p["rel.Wk"].numpy()
        spec = softmax(np.einsum("ncd,nkd->nck", Vn @ Wq, Vn @ Wk) / np.sqrt(D), 2)
        R = (softmax(p["graph.G"].numpy(), 1)[None] + spec) / 2
        np.testing.assert_allclose(CSC.propagate(p, V).numpy(), R @ Vn, atol=1e-10)
