"""Baselines: Prototype, LDA, LwF, Replay, PseudoLabel, JointSGD and the shared torch heads."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mlcil.data.dataset import Dataset
from mlcil.learners import LDA, FineTune, JointSGD, LwF, Prototype, PseudoLabel, Replay, heads, make_learner
from mlcil.learners.joint_sgd import positive_weights
from mlcil.learners.pseudolabel import pseudo_label_targets
from mlcil.learners.replay import reservoir_slots
from mlcil.metrics import mean_average_precision
from mlcil.protocols import Protocol, Session

from ..conftest import assert_reproduced


def clustered_dataset(n=900, d=16, L=6, seed=0, noise=0.35):
    """Separable multi-label data: x = sum of its classes' unit centres (×3) + Gaussian noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(L, d))
    centres *= 3 / np.linalg.norm(centres, axis=1, keepdims=True)
    Y = np.zeros((n, L), dtype=np.uint8)
    Y[np.arange(n), rng.integers(0, L, n)] = 1
    second = rng.random(n) < 0.3
    Y[np.flatnonzero(second), rng.integers(0, L, second.sum())] = 1
    X = (Y @ centres + noise * rng.normal(size=(n, d))).astype(np.float32)
    split = np.where(np.arange(n) < int(0.7 * n), "train", "test")
    return Dataset(X, Y, [f"c{i}" for i in range(L)], split=split, name="clusters")


@pytest.fixture(scope="module")
def clusters():
    return Protocol("B0-C2", order="dataset").build(clustered_dataset())


def last_map(learner, stream):
    for t, session in enumerate(stream):
        learner.learn(stream.joint_session(t) if learner.needs_full_labels else session)
    rows = stream.test_rows(len(stream) - 1)
    Y = stream.Y_test[np.ix_(rows, learner.classes_)]
    return mean_average_precision(Y, learner.scores(stream.X_test[rows]))[0]


def union_session(stream):
    """All sessions' rows stacked, each with its own partial labels (absent = 0), in one Session."""
    classes = np.concatenate([s.classes for s in stream])
    Y = np.zeros((sum(s.n for s in stream), len(classes)), dtype=np.uint8)
    start, col = 0, 0
    for s in stream:
        Y[start:start + s.n, col:col + len(s.classes)] = s.Y
        start, col = start + s.n, col + len(s.classes)
    X = np.vstack([s.X for s in stream])
    return Session(X, Y, classes, np.arange(len(X)))


# ---- every baseline learns a separable stream ----------------------------------------------------
@pytest.mark.parametrize("spec, floor", [
    ("prototype", 0.9),
    ("lda", 0.9),
    ("lwf:hidden=0", 0.9),
    ("lwf:hidden=32,loss=asl", 0.9),
    ("pseudolabel:hidden=32", 0.9),
    ("replay:hidden=32", 0.9),
    ("replay:hidden=0,policy=reservoir,memory=100", 0.9),
    ("joint-sgd:hidden=32,epochs=30", 0.95),
    ("joint-sgd:hidden=0,epochs=30,loss=asl,balance=0.5", 0.95),
])
def test_learns_separable_stream(spec, floor, clusters):
    assert last_map(make_learner(spec, seed=0), clusters) > floor


# ---- exact incremental statistics ------------------------------------------------------------------
@pytest.mark.parametrize("cls, params", [(Prototype, {}), (Prototype, {"center": False}), (LDA, {}),
                                         (LDA, {"shrinkage": 1e-4}), (LDA, {"covariance": "diag"})])
def test_incremental_equals_batch(cls, params, clusters):
    inc = cls(**params)
    for session in clusters:
        inc.learn(session)
    batch = cls(**params).learn(union_session(clusters))
    assert inc.classes_.tolist() == batch.classes_.tolist()
    for key in ("sums_", "counts_", "total_") + (("Q_", "between_", "W_", "b_") if cls is LDA else ()):
        np.testing.assert_allclose(getattr(inc, key), getattr(batch, key), rtol=1e-10, atol=1e-10, err_msg=key)
    np.testing.assert_allclose(inc.scores(clusters.X_test), batch.scores(clusters.X_test), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [Prototype, LDA])
def test_forget_drops_exactly_the_class(cls, clusters):
    model = cls()
    for session in clusters:
        model.learn(session)
    before = model.scores(clusters.X_test)
    model.forget([clusters.class_order[1]])
    np.testing.assert_array_equal(model.scores(clusters.X_test), np.delete(before, 1, axis=1))


@pytest.mark.parametrize("cls", [Prototype, LDA])
def test_sparse_input_matches_dense(cls, clusters):
    dense, sparse = cls(), cls()
    for s in clusters:
        dense.learn(s)
        sparse.learn(Session(sp.csr_matrix(s.X), s.Y, s.classes, s.index, s.t))
    np.testing.assert_allclose(sparse.scores(sp.csr_matrix(clusters.X_test)), dense.scores(clusters.X_test),
                               rtol=1e-5, atol=1e-5)


def test_lda_discriminant_formula():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    Y = (X[:, :2] > 0.3).astype(np.uint8)
    model = LDA(shrinkage=0.2).learn(Session(X, Y, np.array([0, 1]), np.arange(400)))
    X64, m = X.astype(np.float64), X.astype(np.float64).mean(axis=0)
    mus = [X64[Y[:, c] == 1].mean(axis=0) for c in range(2)]
    k = Y.sum(axis=1)
    within = sum(((X64[Y[:, c] == 1] - mus[c]).T @ (X64[Y[:, c] == 1] - mus[c])) for c in range(2)) / k.sum()
    cov = 0.8 * within + 0.2 * np.trace(within) / 5 * np.eye(5)
    for c in range(2):
        w = np.linalg.solve(cov, mus[c] - m)
        np.testing.assert_allclose(model.W_[:, c], w, rtol=1e-8)
        np.testing.assert_allclose(model.b_[c], -0.5 * (mus[c] + m) @ w, rtol=1e-8)


# ---- Replay budgets ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_stream():
    return Protocol("B0-C1", order="dataset").build(clustered_dataset(n=600, L=12, seed=1))


def test_replay_per_class_budget(long_stream):
    model = Replay(per_class=3, epochs=1)
    for session in long_stream:
        model.learn(session)
        owners = model.buffer_["owner"]
        assert model.buffer_size_ <= 3 * len(model.classes_)
        assert np.bincount(owners, minlength=12).max() <= 3
        # label absence: an exemplar's known entries are exactly its owner's session classes
        known = model.buffer_["known"].astype(bool)
        cols = {c: i for i, c in enumerate(model.classes_.tolist())}
        assert all(known[i].tolist() == [j == cols[o] for j in range(len(cols))] for i, o in enumerate(owners))
    assert 0 < model.buffer_bytes < model.state_bytes
    model.forget([long_stream.class_order[0]])
    assert (model.buffer_["owner"] != long_stream.class_order[0]).all()
    assert model.buffer_["Y"].shape == (model.buffer_size_, len(model.classes_))


def test_replay_reservoir_budget(long_stream):
    model = Replay(policy="reservoir", memory=25, epochs=1)
    fed = 0
    for session in long_stream:
        model.learn(session)
        fed += session.n
        assert model.buffer_size_ == min(25, fed) == model.buffer_["known"].shape[0]
    assert model.n_seen_ == fed


def test_replay_buffer_rows_keep_their_labels():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    Y = np.eye(2, dtype=np.uint8)[np.arange(20) % 2]
    model = Replay(policy="reservoir", memory=100, epochs=1).learn(Session(X, Y, np.array([5, 6]), np.arange(20)))
    np.testing.assert_array_equal(model.buffer_["X"], X)
    np.testing.assert_array_equal(model.buffer_["Y"], Y)
    Xs = sp.csr_matrix(X)
    sparse = Replay(per_class=4, epochs=1).learn(Session(Xs, Y, np.array([5, 6]), np.arange(20)))
    assert isinstance(sparse.buffer_["X"], dict) and sparse.buffer_size_ == 8


def test_reservoir_slots_are_uniform():
    """Algorithm R keeps every item of the stream with probability memory / n."""
    kept = np.zeros(100)
    for seed in range(400):
        rng, seen, slot_owner = np.random.default_rng(seed), 0, np.full(10, -1)
        for batch in (7, 40, 53):
            slots = reservoir_slots(seen, batch, 10, rng)
            rows = np.flatnonzero(slots >= 0)
            assert len(np.unique(slots[rows])) == len(rows)
            slot_owner[slots[rows]] = seen + rows
            seen += batch
        kept[slot_owner] += 1
    assert kept.sum() == 4000
    assert abs(kept.mean() - 40) < 1e-9 and kept.std() < 10  # binomial(400, 0.1): std ≈ 6


# ---- pseudo-labels -----------------------------------------------------------------------------------
def test_pseudo_label_targets_hand_made():
    p_old = np.array([[0.95, 0.10], [0.70, 0.71], [0.20, 0.99]])
    Y = np.array([[1, 0], [0, 1], [0, 0]], dtype=np.uint8)
    T = pseudo_label_targets(p_old, Y, threshold=0.7)
    np.testing.assert_array_equal(T, [[1, 0, 1, 0], [0, 1, 0, 1], [0, 1, 0, 0]])
    assert pseudo_label_targets(p_old, Y, threshold=0.05)[:, :2].sum() == 6


def test_pseudolabel_adds_exactly_the_confident_old_classes(clusters):
    model = PseudoLabel(epochs=5, hidden=16, threshold=0.6)
    model.learn(clusters.sessions[0])
    s1 = clusters.sessions[1]
    p_old = torch.sigmoid(torch.as_tensor(model.scores(s1.X))).numpy()
    model.learn(s1)
    assert model.pseudo_positives_ == [0, int((p_old > 0.6).sum())]
    assert model.pseudo_positives_[1] > 0


# ---- the torch heads ---------------------------------------------------------------------------------
def numpy_asl(z, y, gamma_neg, gamma_pos, clip, pos_weight=1.0):
    p = 1 / (1 + np.exp(-z))
    p_m = np.maximum(p - clip, 0) if clip > 0 else p
    return -(pos_weight * y * (1 - p) ** gamma_pos * np.log(p) + (1 - y) * p_m ** gamma_neg * np.log(1 - p_m))


@pytest.mark.parametrize("gamma_neg, gamma_pos, clip", [(4, 0, 0.05), (2, 1, 0.0), (0, 0, 0.0), (4, 2, 0.2)])
def test_asymmetric_loss_matches_numpy(gamma_neg, gamma_pos, clip):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3, size=(50, 7))
    y = (rng.random((50, 7)) < 0.3).astype(np.float64)
    y[:5] = rng.random((5, 7))  # soft targets too
    pw = rng.random(7) + 0.5
    got = heads.asymmetric_loss(torch.as_tensor(z), torch.as_tensor(y), gamma_neg, gamma_pos, clip,
                                pos_weight=torch.as_tensor(pw)).numpy()
    np.testing.assert_allclose(got, numpy_asl(z, y, gamma_neg, gamma_pos, clip, pw), rtol=1e-10, atol=1e-12)
    if gamma_neg == gamma_pos == clip == 0:  # ASL without focusing or margin is BCE
        np.testing.assert_allclose(got, heads.bce_loss(torch.as_tensor(z), torch.as_tensor(y),
                                                       torch.as_tensor(pw)).numpy(), rtol=1e-10)


def test_asl_defaults_are_the_papers():
    assert heads.ASL_DEFAULTS == {"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05}
    z = torch.tensor([[30.0, -30.0]], requires_grad=True)
    heads.asymmetric_loss(z, torch.tensor([[1.0, 0.0]])).sum().backward()
    assert torch.isfinite(z.grad).all()  # saturated logits: no NaN gradients


def test_masked_entries_leave_the_loss():
    rng = np.random.default_rng(1)
    logits = torch.as_tensor(rng.normal(size=(6, 3)), dtype=torch.float32)
    target = torch.as_tensor((rng.random((6, 3)) < 0.5).astype(np.float32))
    mask = torch.ones(6, 3)
    mask[:, 2] = 0
    term = heads.Term(target, None, "bce", mask=mask)
    full = heads.Term(target[:, :2], slice(0, 2), "bce")
    idx = torch.arange(6)
    torch.testing.assert_close(term(logits, idx), full(logits, idx))


def test_finetune_matches_the_original_training_loop(stream):
    """The refactor onto heads.py keeps FineTune's behaviour bit for bit (reference: its former loop)."""
    model = FineTune(epochs=3, batch_size=64)
    W, b = None, None
    for t, s in enumerate(stream):
        model.learn(s)
        X, Y = s.X, s.Y
        if t == 0:
            mean, scale = heads.standardizer(X)
            W, b = torch.zeros(X.shape[1], 0), torch.zeros(0)
        gen = torch.Generator().manual_seed(t)
        k, d = Y.shape[1], X.shape[1]
        W = torch.cat([W, (torch.rand(d, k, generator=gen) * 2 - 1) * (1.0 / np.sqrt(d))], dim=1).requires_grad_(True)
        b = torch.cat([b, torch.zeros(k)]).requires_grad_(True)
        Z = heads.to_tensor(X, torch.device("cpu"), mean, scale)
        target = torch.zeros(X.shape[0], W.shape[1])
        target[:, -k:] = torch.as_tensor(Y, dtype=torch.float32)
        opt = torch.optim.Adam([W, b], lr=1e-3)
        for _ in range(3):
            for idx in torch.randperm(X.shape[0], generator=gen).split(64):
                opt.zero_grad()
                torch.nn.BCEWithLogitsLoss()(Z[idx] @ W + b, target[idx]).backward()
                opt.step()
        W, b = W.detach(), b.detach()
        np.testing.assert_array_equal(model.head_["W"].numpy(), W.numpy())
        np.testing.assert_array_equal(model.head_["b"].numpy(), b.numpy())


@pytest.mark.parametrize("spec", ["lwf:hidden=16,loss=asl", "pseudolabel:hidden=16",
                                  "replay:policy=reservoir,memory=50,hidden=16", "joint-sgd:hidden=16,balance=1"])
def test_seeds_reproduce_bit_for_bit(spec, stream):
    def run(seed):
        model = make_learner(spec + ",epochs=2", seed=seed)
        for t, s in enumerate(stream):
            model.learn(stream.joint_session(t) if model.needs_full_labels else s)
        return model.scores(stream.X_test)

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_training_has_no_global_rng_side_effect(stream):
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.random(3)
    torch.manual_seed(123)
    np.random.seed(123)
    for spec in ("lwf:epochs=1,hidden=8", "replay:policy=reservoir,epochs=1,hidden=8", "joint-sgd:epochs=1,hidden=8"):
        model = make_learner(spec, seed=0)
        model.learn(stream.joint_session(0) if model.needs_full_labels else stream.sessions[0])
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.random(3), expected[1])


def test_joint_sgd_picks_the_best_epoch(synthetic):
    X, Y = synthetic.X, synthetic.Y
    model = JointSGD(epochs=6, hidden=16).learn(Session(X, Y, np.arange(Y.shape[1]), np.arange(len(X))))
    assert len(model.val_map_) == 6 and model.best_epochs_ == int(np.argmax(model.val_map_)) + 1
    np.testing.assert_allclose(positive_weights(np.array([[1, 0], [0, 0], [0, 0], [1, 1]]), 1.0), [1.0, 3.0])
    np.testing.assert_allclose(positive_weights(np.array([[1, 0], [0, 0]]), 0.0), [1.0, 1.0])


def test_lwf_distillation_protects_the_shared_layer(stream):
    """With a hidden layer, λ_distill > 0 keeps old outputs closer to the old model than λ = 0."""
    s0, s1 = stream.sessions[:2]
    drift = {}
    for lam in (0.0, 10.0):
        model = LwF(distill=lam, hidden=16, epochs=10).learn(s0)
        before = model.scores(stream.X_test)
        model.learn(s1)
        drift[lam] = np.abs(model.scores(stream.X_test)[:, :2] - before).mean()
    assert drift[10.0] < drift[0.0]


def test_lwf_linear_head_keeps_old_columns_exactly(stream):
    """Linear head: the batch-wise teacher makes distillation gradients exactly zero, old columns never move."""
    model = LwF(hidden=0, epochs=5).learn(stream.sessions[0])
    before = model.scores(stream.X_test)
    W, b = model.head_["W"].clone(), model.head_["b"].clone()
    for session in stream.sessions[1:]:
        model.learn(session)
    np.testing.assert_array_equal(model.head_["W"][:, :2].numpy(), W.numpy())  # the weights: exactly
    np.testing.assert_array_equal(model.head_["b"][:2].numpy(), b.numpy())
    # the scores come from a wider matrix product now, which a BLAS may round differently
    assert_reproduced(model.scores(stream.X_test)[:, :2], before)
