"""`krt`: the class-attention block against torch's own attention, the loss terms against a direct
computation, frozen old tokens and heads, token input and its fallback, the exemplar memory."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlcil.data.dataset import Dataset, TokenFeatures
from mlcil.errors import MlcilError
from mlcil.learners import attention as A
from mlcil.learners import make_learner
from mlcil.learners.krt import KRT
from mlcil.protocols import Protocol

from .conftest import token_dataset

FAST = dict(dim=8, heads=2, epochs=2, batch_size=32)


def token_stream(n=120, t=5, d=6, L=4, seed=0):
    ds = token_dataset(n, 90, "tok", t, d, L, seed)
    return ds, Protocol("B2-C2", order="dataset").build(ds)


def test_class_attention_matches_torch_multihead_attention():
    g = torch.Generator().manual_seed(0)
    D, h, n, m, t = 8, 2, 3, 2, 5
    p = {}
    A.init_attention(p, "a", D, g)
    for w in "qkvo":
        p[f"a.b{w}"] = torch.randn(D, generator=g) * 0.1
    z, X = torch.randn(n, m, D, generator=g), torch.randn(n, t, D, generator=g)
    mask = torch.ones(n, t, dtype=torch.bool)
    mask[0, 3:] = False
    out, attn = A.class_attention(p, "a", z, X, mask, h)
    mha = torch.nn.MultiheadAttention(D, h, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([p["a.Wq"].T, p["a.Wk"].T, p["a.Wv"].T]))
        mha.in_proj_bias.copy_(torch.cat([p["a.bq"], p["a.bk"], p["a.bv"]]))
        mha.out_proj.weight.copy_(p["a.Wo"].T)
        mha.out_proj.bias.copy_(p["a.bo"])
    for j in range(m):  # query j sees itself and the tokens, not the other query
        keys = torch.cat([z[:, j:j + 1], X], dim=1)
        pad = torch.cat([torch.zeros(n, 1, dtype=torch.bool), ~mask], dim=1)
        ref, ref_w = mha(z[:, j:j + 1], keys, keys, key_padding_mask=pad, average_attn_weights=False)
        torch.testing.assert_close(out[:, j:j + 1], ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(attn[:, :, j], ref_w[:, :, 0], atol=1e-6, rtol=1e-5)
    assert (attn[0, :, :, 4:] == 0).all()  # padding gets no attention


def test_layer_norm_and_entropy_direct():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, generator=g)
    p = {"n.g": torch.rand(6, generator=g), "n.b": torch.randn(6, generator=g)}
    torch.testing.assert_close(A.layer_norm(x, p, "n"), F.layer_norm(x, (6,), p["n.g"], p["n.b"]))
    q = torch.sigmoid(x).double()
    torch.testing.assert_close(A.entropy(x).double(), -(q * q.log() + (1 - q) * (1 - q).log()), atol=1e-6, rtol=1e-6)


def test_loss_terms_and_frozen_old_tokens(monkeypatch):
    ds, stream = token_stream()
    seen = {}
    real = A.adam

    def spy(p, trainable, loss_fn, n, **kw):
        seen.update(p=p, trainable=trainable, loss_fn=loss_fn)
        return real(p, trainable, loss_fn, n, **kw)

    monkeypatch.setattr(A, "adam", spy)
    model = KRT(**FAST, restore=0.7, retain=2.0).learn(stream.sessions[0])
    old = {k: v.clone() for k, v in model.params_.items()}
    s1 = stream.sessions[1]
    model.learn(s1)
    assert set(seen["trainable"]) == {k for k in seen["p"] if not k.endswith(".0")}  # old token and head frozen
    for key in ("tok.0", "head.W.0", "head.b.0"):
        torch.testing.assert_close(model.params_[key], old[key], rtol=0, atol=0)
    assert not torch.equal(model.params_["blk.attn.Wq"], old["blk.attn.Wq"])  # the shared block trains
    # the loss, directly: BCE(new) + ρ BCE(old, 1[σ(old) > 0.7]) + κ mean ‖z_0 − z_0^old‖²
    T = torch.as_tensor(ds.T[s1.index].astype(np.float32))
    mask = torch.as_tensor(ds.mask[s1.index])
    Y = torch.as_tensor(s1.Y, dtype=torch.float32)
    z_old = KRT.token_outputs(old, T, mask, 1, 2)
    pseudo = (torch.sigmoid(KRT.head_logits(old, z_old)) > 0.7).float()
    for params in (seen["p"], model.params_):
        z = KRT.token_outputs(params, T, mask, 2, 2)
        logits = KRT.head_logits(params, z)
        expected = (F.binary_cross_entropy_with_logits(logits[:, 2:], Y)
                    + 0.7 * F.binary_cross_entropy_with_logits(logits[:, :2], pseudo)
                    + 2.0 * ((z[:, :1] - z_old) ** 2).mean())
        got = seen["loss_fn"](params, torch.arange(len(Y)))
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # before training, the old token's output is the old model's: the retention term is exactly 0
    z0 = KRT.token_outputs(seen["p"], T, mask, 2, 2)[:, :1]
    torch.testing.assert_close(z0, z_old, rtol=0, atol=0)


def test_reads_tokens_ignores_padding_and_refuses_pooled_rows():
    ds, stream = token_stream()
    model = KRT(**FAST)
    for s in stream:
        model.learn(s)
    assert model.input_ == "tokens" and model.token_dim_ == 6
    S = model.scores(stream.X_test)
    T, mask = ds.T[np.flatnonzero(ds.split == "test")].copy(), ds.mask[np.flatnonzero(ds.split == "test")]
    T[~mask] = 7.0  # what the padding holds does not matter
    np.testing.assert_allclose(model.scores(TokenFeatures(np.asarray(stream.X_test), T, mask)), S, atol=1e-5)
    with pytest.raises(MlcilError, match="--tokens"):
        model.scores(np.asarray(stream.X_test))


def test_pooled_fallback_is_one_token():
    ds, stream = token_stream()
    plain = Dataset(np.asarray(ds.X), ds.Y, ds.label_names, ds.split, "plain")
    pstream = Protocol("B2-C2", order="dataset").build(plain)
    model = KRT(**FAST)
    for s in pstream:
        model.learn(s)
    assert model.input_ == "pooled" and model.token_dim_ == ds.X.shape[1]
    # a learner that learned from pooled vectors keeps to them when rows do carry tokens
    np.testing.assert_array_equal(model.scores(stream.X_test), model.scores(np.asarray(stream.X_test)))


def test_memory_keeps_exemplars_with_unknown_labels_as_nan():
    ds, stream = token_stream()
    model = make_learner("krt:dim=8,heads=2,epochs=1,memory=3")
    model.learn(stream.sessions[0])
    assert model.memory_T_.shape[0] <= 6 and model.memory_Y_.shape[1] == 2
    before = model.state_bytes
    model.learn(stream.sessions[1])
    Y_m = model.memory_Y_
    assert Y_m.shape[1] == 4 and torch.isnan(Y_m[:, 2:]).any() and model.state_bytes > before
    first = ~torch.isnan(Y_m[:, 0])
    assert torch.isnan(Y_m[first, 2:]).all()  # session-0 exemplars: session-1 labels unknown
    assert KRT().memory == 0  # exemplar-free by default
