"""lambda_search='sessions' and 'gcv': λ re-chosen after every session, checked against brute-force
leave-one-out and an explicit hat matrix."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mlcil.learners import Analytic
from mlcil.protocols import Protocol, Session

from .conftest import make_dataset


def brute_force_curve(Phi_all, Phi, Y, grid):
    """Leave-one-out mAP of rows Phi (labels Y, already among Phi_all's rows) for each λ, by refitting
    without each row: W₋ᵢ = (G − φᵢφᵢᵀ + λI)⁻¹ (B − φᵢyᵢᵀ), G = Φ_allᵀΦ_all, B = ΦᵀY."""
    G = Phi_all.T @ Phi_all
    B = Phi.T @ Y
    curve = []
    for lam in grid:
        S = np.empty(Y.shape)
        for i in range(len(Phi)):
            f = Phi[i:i + 1]
            W = np.linalg.solve(G - f.T @ f + lam * np.eye(len(G)), B - f.T @ Y[i:i + 1])
            S[i] = f @ W
        curve.append(np.mean([average_precision_score(Y[:, j], S[:, j]) for j in range(Y.shape[1]) if Y[:, j].any()]))
    return np.array(curve)


def test_lambda_is_the_argmax_of_the_class_weighted_evidence():
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=260, d=6, L=5, seed=4))
    learner = Analytic(M=12, scaling="none", include_x=True, strategy="negative", lambda_search="sessions")
    learner.learn(stream.sessions[0])
    grid = learner.lambda_grid_
    phi = lambda X: learner._features(X).astype(np.float64)  # noqa: E731
    P0 = phi(stream.sessions[0].X)
    curve0 = brute_force_curve(P0, P0, stream.sessions[0].Y.astype(float), grid)
    np.testing.assert_allclose(learner.lambda_evidence_, 2 * curve0, rtol=1e-6, atol=1e-9)
    for t in (1, 2):
        learner.learn(stream.sessions[t])
        Pt = phi(stream.sessions[t].X)
        P_all = np.vstack([phi(s.X) for s in stream.sessions[: t + 1]])
        curve = brute_force_curve(P_all, Pt, stream.sessions[t].Y.astype(float), grid)
        if t == 1:
            expected = 2 * curve0 + len(stream.sessions[t].classes) * curve
        else:
            expected = expected + len(stream.sessions[t].classes) * curve
        np.testing.assert_allclose(learner.lambda_evidence_, expected, rtol=1e-6, atol=1e-9)
        assert learner.lambda_ == grid[int(np.argmax(expected))]
        Y = np.hstack([np.vstack([s.Y if u == v else np.zeros((s.n, len(stream.sessions[u].classes)))
                                  for v, s in enumerate(stream.sessions[: t + 1])]) for u in range(t + 1)])
        W = np.linalg.solve(P_all.T @ P_all + learner.lambda_ * np.eye(P_all.shape[1]), P_all.T @ Y)
        np.testing.assert_allclose(learner.W_, W, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("search", ["first", "sessions", "gcv"])
def test_first_keeps_the_first_lambda(search):
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=300, d=8, L=6, seed=1))
    learner = Analytic(M=24, strategy="negative", lambda_search=search).learn(stream.sessions[0])
    first = learner.lambda_
    for s in stream.sessions[1:]:
        learner.learn(s)
    if search == "first":
        assert learner.lambda_ == first and not hasattr(learner, "lambda_evidence_")
    else:
        assert learner.lambda_ in learner.lambda_grid_
        assert learner.lambda_evidence_.shape == learner.lambda_grid_.shape


def explicit_gcv(Phi, Y, grid, max_dof=0.5, per_label=False):
    """GCV of the rows Phi alone for each λ by the hat matrix H = Φ(ΦᵀΦ + λI)⁻¹Φᵀ: ‖Y − HY‖²/n / (1 − tr H/n)²,
    or with ``per_label`` every label counted equally, Σ_c ‖y_c − Hy_c‖² / ‖y_c‖² / (1 − tr H/n)² over the
    labels with a positive (a session's evidence); +inf where tr H > max_dof·n."""
    n, out = len(Phi), []
    has = (Y ** 2).sum(axis=0) > 0
    for lam in grid:
        H = Phi @ np.linalg.solve(Phi.T @ Phi + lam * np.eye(Phi.shape[1]), Phi.T)
        dof = np.trace(H)
        rss = ((Y - H @ Y) ** 2).sum(axis=0)
        err = (rss[has] / (Y ** 2).sum(axis=0)[has]).sum() if per_label else rss.sum() / n
        out.append(np.inf if dof > max_dof * n else err / (1 - dof / n) ** 2)
    return np.array(out)


@pytest.mark.parametrize("memory,strategy", [(None, "negative"), ("labels", "known")])
def test_gcv_lambda_is_the_argmin_of_the_summed_session_curves(memory, strategy):
    """Each session is scored on its own rows and given labels (other sessions' rows are not read as
    negatives); with a label memory and a system per session ('known'), reappearing rows count in their
    session's curve too."""
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=260, d=6, L=5, seed=4))
    learner = Analytic(M=12, scaling="none", include_x=True, strategy=strategy, lambda_search="gcv", memory=memory)
    phi = lambda X: learner._features(X).astype(np.float64)  # noqa: E731
    total = None
    for t, session in enumerate(stream.sessions):
        learner.learn(session)
        grid = learner.lambda_grid_
        assert len(grid) == 25
        curve = explicit_gcv(phi(session.X), session.Y.astype(float), grid, per_label=True)
        total = curve if total is None else total + curve
        np.testing.assert_allclose(learner.lambda_evidence_, -total, rtol=1e-6)
        assert learner.lambda_ == grid[int(np.argmin(total))]
    # W is the ridge solution at that λ (rows of every session, absent labels read as 0)
    P_all = np.vstack([phi(s.X) for s in stream.sessions])
    Y = np.hstack([np.vstack([s.Y if u == v else np.zeros((s.n, len(stream.sessions[u].classes)))
                              for v, s in enumerate(stream.sessions)]) for u in range(len(stream.sessions))])
    if memory is None:
        W = np.linalg.solve(P_all.T @ P_all + learner.lambda_ * np.eye(P_all.shape[1]), P_all.T @ Y)
        np.testing.assert_allclose(learner.W_, W, rtol=1e-7, atol=1e-9)


def test_gcv_merge_takes_lambda_from_the_pooled_evidence():
    """Shards spawned from one frame each sum their own sessions' curves; the merge pools the evidence."""
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=300, d=6, L=4, seed=2))
    shard = [np.arange(s.n) % 2 == 0 for s in stream.sessions]
    pick = lambda s, m: Session(s.X[m], s.Y[m], s.classes, s.index[m], s.t)  # noqa: E731
    a = Analytic(M=16, strategy="negative", lambda_search="gcv").learn(pick(stream.sessions[0], shard[0]))
    b = a.spawn()
    b.learn(pick(stream.sessions[0], ~shard[0]))
    for s, m in zip(stream.sessions[1:], shard[1:]):
        a.learn(pick(s, m))
        b.learn(pick(s, ~m))
    evidence = a.lambda_evidence_ + b.lambda_evidence_
    merged = a.merge(b)
    np.testing.assert_allclose(merged.lambda_evidence_, evidence)
    assert merged.lambda_ == merged.lambda_grid_[int(np.argmax(evidence))]


def test_gcv_a_tiny_session_carries_no_evidence():
    """A session too small for any grid λ (tr H ≤ n/2 fails even at the largest: few rows against a wide D
    and a tiny first session, as in few-shot streams) adds nothing instead of ruling out every λ; a first
    session without evidence starts at the grid's largest λ."""
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=260, d=6, L=5, seed=4))
    s0, s1 = stream.sessions[:2]
    rows = lambda s, k: Session(s.X[:k], s.Y[:k], s.classes, s.index[:k], s.t)  # noqa: E731
    learner = Analytic(M=1500, scaling="none", include_x=False, strategy="negative", lambda_search="gcv")
    learner.learn(rows(s0, 1))
    assert not learner.lambda_evidence_.any() and learner.lambda_ == learner.lambda_grid_[-1]
    learner.learn(rows(s1, 1))
    assert not learner.lambda_evidence_.any() and learner.lambda_ == learner.lambda_grid_[-1]
    learner.learn(rows(stream.sessions[2], 40))  # enough rows: its curve decides
    assert np.isfinite(learner.lambda_evidence_).any() and learner.lambda_evidence_.any()


#: λ* is a continuous minimum: near a flat minimum, last-bit differences of G (float32 φ of other chunk
#: shapes, other BLAS kernels: MKL's AVX2 path moved W by 6e-6 relative) shift it by about their square
#: root, far below the grid's step (×2.15) that a grid-bound λ would differ by.
LAMBDA_RTOL = 2e-3


def explicit_gcv_minimum(Phi, Y, grid):
    """λ minimising the explicit GCV (hat matrix) over a continuous λ: scipy's bounded scalar search in
    log λ between the grid neighbours of the grid's minimum."""
    from scipy.optimize import minimize_scalar

    curve = explicit_gcv(Phi, Y, grid)
    i = int(np.argmin(curve))
    lo, hi = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, len(grid) - 1)])
    res = minimize_scalar(lambda t: explicit_gcv(Phi, Y, [np.exp(t)])[0], bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-9})
    return float(np.exp(res.x)), curve


def union_problem(stream, t):
    """The rows of sessions 0..t once, with every label they were given (absent ones 0): Joint's data."""
    union = stream.joint_session(t)
    return union.X, union.Y.astype(float)


def test_gcv_with_memory_minimises_the_gcv_of_the_union():
    """With a label memory and one system for every class the learner solves Joint's problem on the rows
    seen, so λ minimises that problem's GCV (explicit hat matrix over the union's rows and labels), and W
    is the ridge solution at that λ."""
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=260, d=6, L=5, seed=4))
    learner = Analytic(M=12, scaling="none", include_x=True, strategy="negative", lambda_search="gcv",
                       memory="labels")
    phi = lambda X: learner._features(X).astype(np.float64)  # noqa: E731
    reappeared = 0
    for t, session in enumerate(stream.sessions):
        learner.learn(session)
        X, Y = union_problem(stream, t)
        reappeared += session.n - (len(X) - (0 if t == 0 else len(union_problem(stream, t - 1)[0])))
        lam, curve = explicit_gcv_minimum(phi(X), Y, learner.lambda_grid_)
        np.testing.assert_allclose(learner.lambda_evidence_, -curve, rtol=1e-6)
        assert learner.lambda_ == pytest.approx(lam, rel=LAMBDA_RTOL)
        assert learner.lambda_ not in learner.lambda_grid_  # a continuous minimum, not a grid point
    assert reappeared > 20  # the field's protocol: examples with classes of several sessions come back
    P = phi(X)
    W = np.linalg.solve(P.T @ P + learner.lambda_ * np.eye(P.shape[1]), P.T @ Y)
    cols = [list(stream.joint_session(len(stream.sessions) - 1).classes).index(c) for c in learner.classes_]
    np.testing.assert_allclose(learner.W_, W[:, cols], rtol=1e-5, atol=1e-7)


def test_gcv_with_memory_merge_and_forgetting_rechoose_lambda_from_what_is_left():
    """Shards by example (a content digest) merge into the union's statistics, and λ is re-chosen from them;
    forgetting examples or classes re-chooses it from what is left: each equals the explicit GCV of the rows
    and labels that remain, on the learner's grid."""
    from mlcil.ridge import row_digests

    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=300, d=6, L=5, seed=2))
    pick = lambda s, m: Session(s.X[m], s.Y[m], s.classes, s.index[m], s.t)  # noqa: E731
    shard = [row_digests(s.X) % np.uint64(2) == 0 for s in stream.sessions]
    spec = dict(M=14, scaling="none", include_x=True, strategy="negative", lambda_search="gcv", memory="labels")
    a = Analytic(**spec).learn(pick(stream.sessions[0], shard[0]))
    b = a.spawn()
    b.learn(pick(stream.sessions[0], ~shard[0]))
    for s, m in zip(stream.sessions[1:], shard[1:]):
        a.learn(pick(s, m))
        b.learn(pick(s, ~m))
    merged = a.merge(b)
    phi = lambda X: merged._features(X).astype(np.float64)  # noqa: E731
    X, Y = union_problem(stream, len(stream.sessions) - 1)
    classes = list(stream.joint_session(len(stream.sessions) - 1).classes)
    lam, curve = explicit_gcv_minimum(phi(X), Y, merged.lambda_grid_)
    np.testing.assert_allclose(merged.lambda_evidence_, -curve, rtol=1e-6)
    assert merged.lambda_ == pytest.approx(lam, rel=LAMBDA_RTOL)
    # forget 60 examples (every session they were learned in), then one class
    gone = np.zeros(len(X), dtype=bool)
    gone[np.random.default_rng(0).permutation(len(X))[:60]] = True
    merged.forget_examples(X[gone])
    lam, curve = explicit_gcv_minimum(phi(X[~gone]), Y[~gone], merged.lambda_grid_)
    np.testing.assert_allclose(merged.lambda_evidence_, -curve, rtol=1e-6)
    assert merged.lambda_ == pytest.approx(lam, rel=LAMBDA_RTOL)
    drop = merged.classes_[1]
    merged.forget([drop])
    keep = [j for j, c in enumerate(classes) if c != drop]
    lam, curve = explicit_gcv_minimum(phi(X[~gone]), Y[~gone][:, keep], merged.lambda_grid_)
    np.testing.assert_allclose(merged.lambda_evidence_, -curve, rtol=1e-6)
    assert merged.lambda_ == pytest.approx(lam, rel=LAMBDA_RTOL)
    P = phi(X[~gone])
    W = np.linalg.solve(P.T @ P + merged.lambda_ * np.eye(P.shape[1]), P.T @ Y[~gone][:, keep])
    cols = [[classes[j] for j in keep].index(c) for c in merged.classes_]
    np.testing.assert_allclose(merged.W_, W[:, cols], rtol=1e-5, atol=1e-7)


def test_gcv_with_memory_equals_joint_with_gcv_on_the_same_rows():
    """Equal statistics give equal λ although the grids differ (the memory's is anchored on its first session,
    Joint's on all rows): the continuous minimum does not depend on where the grid points fall. So scores equal
    Joint(lambda_search='gcv')'s on the union (frame without fitted statistics: scaling='none')."""
    from mlcil.learners import Joint

    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=300, d=6, L=5, seed=7))
    spec = dict(M=16, scaling="none", include_x=True, lambda_search="gcv")
    learner = Analytic(strategy="negative", memory="labels", **spec)
    for session in stream.sessions:
        learner.learn(session)
    joint = Joint(**spec).learn(stream.joint_session(len(stream.sessions) - 1))
    assert not np.allclose(learner.lambda_grid_, joint.lambda_grid_)
    assert learner.lambda_ == pytest.approx(joint.lambda_, rel=LAMBDA_RTOL)
    X = stream.X_test
    cols = [list(joint.classes_).index(c) for c in learner.classes_]
    np.testing.assert_allclose(learner.scores(X), joint.scores(X)[:, cols], rtol=1e-3, atol=1e-4)
    lam, _ = explicit_gcv_minimum(joint._features(stream.joint_session(2).X).astype(np.float64),
                                  stream.joint_session(2).Y.astype(float), joint.lambda_grid_)
    assert joint.lambda_ == pytest.approx(lam, rel=LAMBDA_RTOL)


def test_fit_frame_takes_the_scaling_statistics_from_unlabelled_rows():
    """fit_frame(X): mean and spread of the standardisation come from those rows, not the first session's; with
    them from the union's inputs the memory + GCV equals Joint + GCV on the union, a frame with fitted
    statistics included."""
    from mlcil.errors import MlcilError
    from mlcil.learners import Joint

    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=300, d=6, L=5, seed=7))
    union = stream.joint_session(len(stream.sessions) - 1)
    spec = dict(M=16, scaling="standardize", include_x=True, lambda_search="gcv", clip=None)  # (Joint's default clip)
    learner = Analytic(strategy="negative", memory="labels", **spec).fit_frame(union.X)
    for session in stream.sessions:
        learner.learn(session)
    np.testing.assert_allclose(learner.shift_, union.X.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(learner.scale_, union.X.std(0), rtol=1e-5, atol=1e-6)
    assert learner.frame_rows_ == union.n != stream.sessions[0].n
    assert learner.spawn().frame_rows_ == union.n and learner.spawn().feature_map.same_as(learner.feature_map)
    joint = Joint(**spec).learn(union)
    np.testing.assert_array_equal(learner.shift_, joint.shift_)
    assert learner.lambda_ == pytest.approx(joint.lambda_, rel=LAMBDA_RTOL)
    cols = [list(joint.classes_).index(c) for c in learner.classes_]
    np.testing.assert_allclose(learner.scores(stream.X_test), joint.scores(stream.X_test)[:, cols], rtol=1e-3,
                               atol=1e-4)
    plain = Analytic(strategy="negative", **spec).learn(stream.sessions[0])
    np.testing.assert_allclose(plain.shift_, stream.sessions[0].X.mean(0), rtol=1e-5, atol=1e-6)
    assert plain.frame_rows_ == stream.sessions[0].n
    with pytest.raises(MlcilError, match="before the first session"):
        learner.fit_frame(union.X)
    with pytest.raises(MlcilError, match="fit_frame was given rows of 5"):
        Analytic(**spec).fit_frame(union.X[:, :5]).learn(stream.sessions[0])
    with pytest.raises(MlcilError, match="at least 2 rows"):
        Analytic(**spec).fit_frame(union.X[:1])
    bad = union.X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(MlcilError, match="fit_frame X"):
        Analytic(**spec).fit_frame(bad)


def test_fit_frame_on_sparse_rows_fits_the_scale():
    import scipy.sparse as sp

    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=300, d=6, L=5, seed=7))
    pool = np.abs(stream.X_train[:200]).astype(np.float32)
    first = stream.sessions[0]
    session = Session(sp.csr_matrix(np.abs(first.X)), first.Y, first.classes, first.index, first.t)
    learner = Analytic(M=16, scaling="scale").fit_frame(sp.csr_matrix(pool)).learn(session)
    np.testing.assert_allclose(learner.scale_, np.sqrt((pool.astype(np.float64) ** 2).mean(0)), rtol=1e-5)
    assert learner.frame_rows_ == 200


@pytest.mark.parametrize("strategy", ["negative", "weighted"])
def test_gcv_forgetting_classes_rechooses_lambda_as_if_never_taught(strategy):
    """Each class's GCV curve is kept (``lambda_curves_``, summing to −``lambda_evidence_``), so forgetting a
    class takes its curve out of the evidence: λ, the evidence and W equal a learner never taught it. (On this
    stream the forgotten class moves λ, so keeping λ as it was would fail.)"""
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=300, d=6, L=6, seed=5))
    learner = Analytic(M=16, strategy=strategy)
    for s in stream:
        learner.learn(s)
    np.testing.assert_allclose(learner.lambda_curves_.sum(axis=0), -learner.lambda_evidence_, rtol=1e-12)
    before = learner.lambda_
    drop = int(stream.sessions[1].classes[0])
    reference = learner.spawn()
    for s in stream:
        keep = s.classes != drop
        reference.learn(Session(s.X, s.Y[:, keep], s.classes[keep], s.index, s.t))
    learner.forget([drop])
    assert learner.lambda_ != before
    assert learner.lambda_ == reference.lambda_
    np.testing.assert_allclose(learner.lambda_evidence_, reference.lambda_evidence_, rtol=1e-10)
    np.testing.assert_allclose(learner.W_, reference.W_, rtol=1e-8, atol=1e-10)
