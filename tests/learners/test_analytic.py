"""Analytic: every exact operation against a from-scratch numpy fit on the same data."""

import json
import warnings

import numpy as np
import pytest

from mlcil.errors import MlcilError
from mlcil.learners import Analytic, Joint, Learner
from mlcil.learners.analytic import ALPHA_GRID
from mlcil.protocols import Protocol, Session

from ..conftest import assert_reproduced
from .conftest import make_dataset


@pytest.fixture(scope="module")
def stream3():
    return Protocol("B0-C2", order="dataset").build(make_dataset(n=500, d=10, L=6, seed=3))


def phi(learner, X):
    """The learner's float32 feature map, in float64: the algebra below is what is under test."""
    return learner._features(X).astype(np.float64)


def test_feature_map_is_relu_of_standardised_projection(stream3):
    learner = Analytic(M=40, scaling="standardize", include_x=True).learn(stream3.sessions[0])
    X = stream3.X_test
    Z = (np.asarray(X, np.float64) - learner.shift_) / learner.scale_
    # clip='auto': spreads fitted on fewer than 64 rows winsorise at 3 of them
    assert learner.clip_ == (3.0 if stream3.sessions[0].n < 64 else None)
    if learner.clip_ is not None:
        Z = np.clip(Z, -learner.clip_, learner.clip_)
    F = np.maximum(Z @ learner.R_.astype(np.float64), 0)
    np.testing.assert_allclose(phi(learner, X), np.hstack([F, Z]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(learner.shift_, stream3.sessions[0].X.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(learner.scale_, stream3.sessions[0].X.std(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows, clip, expected", [(40, "auto", 3.0), (63, "auto", 3.0), (64, "auto", None),
                                                  (40, None, None), (400, 2.5, 2.5)])
def test_auto_clip_follows_the_rows_behind_the_scaling(rows, clip, expected):
    data = make_dataset(n=600, d=6, L=3, seed=5)
    X, Y = np.asarray(data.X[:rows]), data.Y[:rows]
    learner = Analytic(M=8, scaling="standardize", clip=clip, strategy="negative").learn(X, Y)
    assert learner.clip_ == expected and learner._clip() == expected and learner.feature_map.clip == expected
    # 'auto' counts the rows the spreads come from: fit_frame's when given
    framed = Analytic(M=8, scaling="standardize", strategy="negative").fit_frame(np.asarray(data.X[:300]))
    assert framed.learn(np.asarray(data.X[:30]), data.Y[:30]).clip_ is None


def test_clip_winsorises_the_standardised_input_of_later_sessions(stream3, tmp_path):
    """clip=c: z = clip((x − μ)/σ, −c, c) with μ, σ of the first session, in φ and so in W; kept by save/load."""
    learner = Analytic(M=40, scaling="standardize", include_x=True, clip=0.8, strategy="negative")
    for s in stream3:
        learner.learn(s)
    X = stream3.X_test
    Z = np.clip((np.asarray(X, np.float64) - learner.shift_) / learner.scale_, -0.8, 0.8)
    assert (np.abs(Z) == 0.8).mean() > 0.2  # the clip binds
    F = np.maximum(Z @ learner.R_.astype(np.float64), 0)
    np.testing.assert_allclose(phi(learner, X), np.hstack([F, Z]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(learner.W_, reference_weights(learner, stream3.sessions), rtol=1e-7, atol=1e-9)
    again = Learner.load(learner.save(tmp_path / "c.npz"))
    assert again.clip == 0.8 and np.array_equal(again.scores(X), learner.scores(X))
    other = Analytic(M=40, scaling="standardize", include_x=True, strategy="negative").learn(stream3.sessions[0])
    with pytest.raises(MlcilError, match="frame"):
        learner.merge(other)


def reference_weights(learner, sessions):
    """Per-class weighted ridge on the union of the sessions' rows, built from scratch:
    a row of session u weighs 1 for the classes of u (its known labels) and α for every
    other class (absent = negative with weight α); rows in several sessions appear several times."""
    Phi = np.vstack([phi(learner, s.X) for s in sessions])
    owner = np.concatenate([np.full(s.n, u) for u, s in enumerate(sessions)])
    cols = []
    for u, s in enumerate(sessions):
        d = np.where(owner == u, 1.0, learner.alpha_)
        A = Phi.T @ (Phi * d[:, None]) + learner.lambda_ * np.eye(Phi.shape[1])
        Y = np.zeros((len(Phi), s.Y.shape[1]))
        Y[owner == u] = s.Y
        cols.append(np.linalg.solve(A, Phi.T @ (Y * d[:, None])))
    return np.hstack(cols)


@pytest.mark.parametrize("strategy", ["negative", "known", "weighted"])
def test_sessions_equal_one_fit_on_union(strategy, stream3):
    learner = Analytic(M=40, strategy=strategy, seed=1)
    for s in stream3:
        learner.learn(s)
    W = learner.W_
    np.testing.assert_allclose(W, reference_weights(learner, stream3.sessions), rtol=1e-7, atol=1e-9)


def test_known_never_changes_old_weights(stream3):
    learner = Analytic(M=40, strategy="known", lambda_search="first").learn(stream3.sessions[0])
    before = learner.W_.copy()
    learner.learn(stream3.sessions[1]).learn(stream3.sessions[2])
    assert np.array_equal(learner.W_[:, :2], before)


def test_weighted_alpha_chosen_on_first_session(stream3):
    learner = Analytic(M=40, strategy="weighted").learn(stream3.sessions[0])
    assert len(learner.alpha_scores_) == len(ALPHA_GRID)
    assert learner.alpha_ == ALPHA_GRID[int(np.argmax(learner.alpha_scores_))]
    fixed = Analytic(M=40, strategy="weighted", alpha=0.25).learn(stream3.sessions[0])
    assert fixed.alpha_ == 0.25


def test_single_full_session_equals_joint(stream3):
    full = stream3.joint_session(len(stream3) - 1)
    joint = Joint(M=40, seed=2).learn(full)
    analytic = Analytic(M=40, strategy="weighted", seed=2).learn(full)
    assert joint.lambda_ == analytic.lambda_
    np.testing.assert_allclose(analytic.W_, joint.W_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(analytic.scores(stream3.X_test), joint.scores(stream3.X_test), rtol=1e-5, atol=1e-6)


def split_session(s, rows):
    return Session(s.X[rows], s.Y[rows], s.classes, s.index[rows], s.t)


@pytest.mark.parametrize("strategy", ["negative", "weighted"])
def test_merge_of_disjoint_shards_equals_one_learner(strategy, stream3):
    rng = np.random.default_rng(0)
    shard = [rng.random(s.n) < 0.5 for s in stream3]
    a = Analytic(M=40, strategy=strategy, lambda_search="first").learn(split_session(stream3.sessions[0], shard[0]))
    b = a.spawn()
    reference = a.spawn()
    b.learn(split_session(stream3.sessions[0], ~shard[0]))
    reference.learn(stream3.sessions[0])
    for s, mask in zip(stream3.sessions[1:], shard[1:]):
        a.learn(split_session(s, mask))
        b.learn(split_session(s, ~mask))
        reference.learn(s)
    a.merge(b)
    # exact up to rounding: φ is float32, and a BLAS may round a row differently in another batch
    assert_reproduced(a.W_, reference.W_)
    assert a.session_rows_ == reference.session_rows_


def test_merge_refuses_another_frame(stream3):
    a = Analytic(M=40).learn(stream3.sessions[0])
    b = Analytic(M=40, seed=9).learn(stream3.sessions[0])
    with pytest.raises(MlcilError, match="same frame"):
        a.merge(b)


@pytest.mark.parametrize("strategy", ["negative", "known", "weighted", "pseudo"])
def test_forget_classes_equals_never_having_their_labels(strategy, stream3):
    learner = Analytic(M=40, strategy=strategy)
    for s in stream3:
        learner.learn(s)
    reference = learner.spawn()
    drop = int(stream3.sessions[1].classes[0])
    for s in stream3:
        keep = s.classes != drop
        reference.learn(Session(s.X, s.Y[:, keep], s.classes[keep], s.index, s.t))
    learner.forget([drop])
    assert learner.classes_.tolist() == reference.classes_.tolist()
    if strategy == "pseudo":  # pseudo-labels came from a model that still knew the class
        return
    np.testing.assert_allclose(learner.W_, reference.W_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("strategy", ["negative", "weighted"])
def test_forget_examples_equals_never_seeing_them(strategy, stream3):
    learner = Analytic(M=40, strategy=strategy, lambda_search="first")
    for s in stream3:
        learner.learn(s)
    s1 = stream3.sessions[1]
    gone = np.zeros(s1.n, dtype=bool)
    gone[::3] = True
    reference = learner.spawn()
    for s in stream3:
        reference.learn(split_session(s, ~gone) if s is s1 else s)
    learner.forget_examples(s1.X[gone], s1.Y[gone], s1.classes)
    # exact up to rounding: φ is float32, and the BLAS rounds a row's φ by the shape of its block (the rows
    # subtracted here were a block of their own, inside a larger one when learned): 7e-8 × max |W| measured
    assert_reproduced(learner.W_, reference.W_, rtol=1e-6)
    with pytest.raises(MlcilError, match="no session"):
        learner.forget_examples(s1.X[:2], s1.Y[:2], [0, 5])


def test_pseudo_labels_reach_old_classes(stream3):
    learner = Analytic(M=40, strategy="pseudo", alpha=0.1).learn(stream3.sessions[0])
    s1 = stream3.sessions[1]
    # L3A's rule: σ(s) > 0.7 on the ridge output s
    S = learner.scores(s1.X)
    expected = (1 / (1 + np.exp(-S)) > 0.7).astype(float)
    assert 0 < expected.sum() < expected.size
    B_before = learner.B_[0].copy()
    learner.learn(s1)
    np.testing.assert_allclose(learner.B_[0], B_before + phi(learner, s1.X).T @ expected, rtol=1e-9, atol=1e-9)
    # old classes now solve over both sessions' rows as known
    G = learner.G_[0] + learner.G_[1]
    W0 = np.linalg.solve(G + learner.lambda_ * np.eye(len(G)), learner.B_[0])
    np.testing.assert_allclose(learner.W_[:, :2], W0, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("option, value", [("pseudo_calibration", "platt"), ("n_lambdas", 7)])
def test_removed_options_warn_and_saved_learners_naming_them_load(option, value, stream3, tmp_path):
    # issue 27 removed pseudo_calibration and n_lambdas: a non-default value warns and is ignored, the old default
    # is dropped silently, and a file written with them among its parameters still loads and scores the same
    with pytest.warns(FutureWarning, match=option):
        learner = Analytic(M=40, strategy="pseudo", **{option: value})
    assert option not in learner.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Analytic(M=40, **{option: {"pseudo_calibration": "ridge", "n_lambdas": 13}[option]})
    learner.learn(stream3.sessions[0])
    path = learner.save(tmp_path / "a.npz")
    with np.load(path) as f:  # rewrite the header as a learner saved before the removal would have it
        arrays = dict(f)
    header = json.loads(str(arrays["__header__"]))
    header["params"][option] = value
    arrays["__header__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.warns(FutureWarning, match=option):
        again = Learner.load(path)
    np.testing.assert_array_equal(again.scores(stream3.sessions[0].X), learner.scores(stream3.sessions[0].X))
    assert len(Analytic._param_names()) == 19


def test_calibrated_pseudo_threshold_is_per_class(stream3):
    learner = Analytic(M=40, strategy="pseudo", pseudo_threshold="calibrated").learn(stream3.sessions[0])
    assert learner.thresholds_.shape == (2,) and ((learner.thresholds_ > 0) & (learner.thresholds_ < 1)).all()


def test_float32_accumulation_close_to_float64(stream3):
    a = Analytic(M=40, precision="float64").learn(stream3.sessions[0])
    b = Analytic(M=40, precision="float32").learn(stream3.sessions[0])
    np.testing.assert_allclose(b.G_[0], a.G_[0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("params, match", [
    ({"strategy": "bogus"}, "strategy"), ({"alpha": 2.0}, "alpha"), ({"strategy": "known", "alpha": 0.5}, "alpha"),
    ({"precision": "float16"}, "precision"), ({"pseudo_threshold": 1.5}, "pseudo_threshold"),
    ({"lambda_search": "never"}, "lambda_search"), ({"clip": "always"}, "clip"),
    ({"clip": 0}, "clip"), ({"clip": "3"}, "clip"), ({"clip": float("nan")}, "clip"),
])
def test_bad_parameters(params, match, stream3):
    with pytest.raises(MlcilError, match=match):
        Analytic(M=8, **params).learn(stream3.sessions[0])


def test_save_load_keeps_exact_state(stream3, tmp_path):
    learner = Analytic(M=40, strategy="weighted")
    for s in stream3:
        learner.learn(s)
    again = Learner.load(learner.save(tmp_path / "a.npz"))
    for g, h in zip(learner.G_, again.G_):
        assert np.array_equal(g, h)
    assert again.alpha_ == learner.alpha_ and again.lambda_ == learner.lambda_
    assert again.state_bytes == learner.state_bytes


@pytest.mark.parametrize("params", [{"strategy": "weighted"}, {"strategy": "weighted", "memory": "labels"},
                                    {"strategy": "negative", "lambda_search": "gcv", "memory": "labels"},
                                    {"strategy": "known", "lambda_search": "sessions", "balance": True},
                                    {"strategy": "weighted", "lambda_search": "gcv"},
                                    {"strategy": "pseudo", "calibrate_later": True, "memory": "labels"}])
def test_small_sessions_in_the_dual_equal_the_primal(stream3, params, monkeypatch):
    """Sessions with fewer rows than features (here D = 410) take their eigendecompositions and the α search in
    the n×n dual: the same scaling, λ, α, weights and scores as the D×D computations."""
    import mlcil.ridge.absence as absence

    sessions = [split_session(s, np.arange(s.n) < 150) for s in stream3.sessions]
    dual = Analytic(M=400, **params)
    for s in sessions:
        dual.learn(s)
    monkeypatch.setattr(absence, "use_dual", lambda n, D: False)
    primal = Analytic(M=400, **params)
    for s in sessions:
        primal.learn(s)
    assert dual.scaling_ == primal.scaling_ and dual.alpha_ == primal.alpha_
    np.testing.assert_allclose(dual.lambda_, primal.lambda_, rtol=1e-6)
    for key in ("scaling_scores_", "lambda_map_", "alpha_scores_"):
        if hasattr(primal, key):
            want = primal.__dict__[key]
            got = dual.__dict__[key]
            np.testing.assert_allclose(list(got.values()) if isinstance(got, dict) else got,
                                       list(want.values()) if isinstance(want, dict) else want, rtol=1e-7)
    assert_reproduced(dual.W_, primal.W_, rtol=1e-6)
    assert_reproduced(dual.scores(stream3.X_test), primal.scores(stream3.X_test), rtol=1e-6)
    assert_reproduced(dual.proba(stream3.X_test), primal.proba(stream3.X_test), rtol=1e-5)  # leave-one-out calibration


def test_one_gram_matrix_unless_absence_needs_more(stream3):
    """'negative' and 'weighted' with α = 1 keep one G; α < 1, 'known' and 'pseudo' keep one per session."""
    expected = {("negative", None): 1, ("weighted", 1.0): 1, ("weighted", 0.3): 3, ("known", None): 3,
                ("pseudo", 0.3): 3}
    for (strategy, alpha), count in expected.items():
        learner = Analytic(M=16, strategy=strategy, alpha=alpha)
        for s in stream3:
            learner.learn(s)
        assert len(learner.G_) == count, (strategy, alpha)


def test_failure_while_learning_restores_the_previous_state(stream3, monkeypatch):
    from mlcil import ridge

    def broken(*args, **kwargs):
        raise RuntimeError("numerical failure")

    fresh = Analytic(M=16)
    monkeypatch.setattr(ridge, "loo_scores", broken)  # a first session's leave-one-out comes from its λ path
    monkeypatch.setattr(ridge, "loo_path_scores", broken)
    with pytest.raises(RuntimeError):
        fresh.learn(stream3.sessions[0])
    assert not fresh.has_frame and not fresh.is_fitted and not hasattr(fresh, "lambda_")
    monkeypatch.undo()
    learner = Analytic(M=16).learn(stream3.sessions[0])
    before = learner.scores(stream3.X_test)
    monkeypatch.setattr(ridge, "loo_scores", broken)
    with pytest.raises(RuntimeError):
        learner.learn(stream3.sessions[1])
    monkeypatch.undo()
    assert learner.classes_.tolist() == stream3.sessions[0].classes.tolist() and len(learner.B_) == 1
    np.testing.assert_array_equal(learner.scores(stream3.X_test), before)
    learner.learn(stream3.sessions[1])  # and it still learns
    assert len(learner.classes_) == 4


@pytest.mark.parametrize("params", [{"strategy": "negative"}, {"strategy": "known"},
                                    {"strategy": "weighted", "alpha": 0.3}, {"strategy": "negative", "balance": True}])
def test_leave_one_out_equals_refitting_without_the_row(stream3, params):
    """The audit's out-of-sample scores: closed form == a learner that never saw the row."""
    # λ held fixed ('first' chooses it on the first session only, which the twins share): the closed form scores at
    # the learned λ, while 'gcv' re-chooses λ on each twin's rows, one row fewer
    full = Analytic(M=30, lambda_search="first", **params)
    for s in stream3.sessions[:2]:
        full.learn(s)
    for which in (0, 1):  # 1: the last session (cached factor); 0: an earlier one (factor rebuilt)
        s = stream3.sessions[which]
        loo = full.leave_one_out(s.X, s.Y, s.classes, calibrated=False)
        cols = np.isin(full.classes_, s.classes)
        for i in (0, 7, s.n - 1):
            if params.get("balance"):  # balance weights depend on the session's labels: LOO keeps row i's weights
                continue
            keep = np.arange(s.n) != i
            twin = full.spawn()
            for u, other in enumerate(stream3.sessions[:2]):
                twin.learn(other if u != which else Session(s.X[keep], s.Y[keep], s.classes, s.index[keep]))
            np.testing.assert_allclose(loo[i], twin.scores(s.X[i:i + 1])[0, cols], rtol=1e-4, atol=1e-5)
    s1 = stream3.sessions[1]
    calibrated = full.leave_one_out(s1.X, s1.Y, s1.classes)
    assert calibrated.shape == s1.Y.shape and ((calibrated >= 0) & (calibrated <= 1)).all()


def test_leave_one_out_rejects_unknown_session(stream3):
    learner = Analytic(M=30).learn(stream3.sessions[0])
    s1 = stream3.sessions[1]
    with pytest.raises(MlcilError, match="no session learned"):
        learner.leave_one_out(s1.X, s1.Y, s1.classes)


def test_isotonic_calibration_round_trips(stream3, tmp_path):
    learner = Analytic(M=30, calibration="isotonic", lambda_search="first")  # (λ stays when classes are forgotten)
    for s in stream3.sessions[:2]:
        learner.learn(s)
    P = learner.proba(stream3.X_test)
    assert ((P >= 0) & (P <= 1)).all()
    again = Learner.load(learner.save(tmp_path / "iso.npz"))
    np.testing.assert_array_equal(again.proba(stream3.X_test), P)
    learner.forget(stream3.sessions[0].classes)
    np.testing.assert_allclose(learner.proba(stream3.X_test), P[:, 2:], atol=1e-6)


def test_calibrate_later_recalibrates_old_classes_only_with_scores(stream3, tmp_path):
    plain = Analytic(M=30)
    later = Analytic(M=30, calibrate_later=True)
    for s in stream3.sessions[:3]:
        plain.learn(s)
        later.learn(s)
    np.testing.assert_array_equal(plain.scores(stream3.X_test), later.scores(stream3.X_test))  # same model
    assert not hasattr(plain, "calib_data_")  # without the option no calibration rows are kept
    Pp, Pl = plain.proba(stream3.X_test), later.proba(stream3.X_test)
    np.testing.assert_allclose(Pp[:, 4:], Pl[:, 4:], atol=1e-6)  # the last session: nothing later yet
    assert not np.allclose(Pp[:, :2], Pl[:, :2])  # the first session's classes saw two later sessions
    # later sessions add negatives: the old classes' mean probability goes down
    assert Pl[:, :2].mean() < Pp[:, :2].mean()
    # the stored calibration data are scores and labels only, sized by rows, not inputs
    assert [d["scores"].shape[1] for d in later.calib_data_] == [2, 2, 2]
    again = Learner.load(later.save(tmp_path / "later.npz"))
    np.testing.assert_array_equal(again.proba(stream3.X_test), Pl)
    later.forget([stream3.sessions[0].classes[0]])
    assert [d["scores"].shape[1] for d in later.calib_data_] == [1, 2, 2]
    late = Analytic(M=30).learn(stream3.sessions[0])
    with pytest.raises(MlcilError, match="calibrate_later"):  # frozen after the first session
        late.set_params(calibrate_later=True)


def test_from_statistics_scores_as_the_ridge_model_and_survives_save_load(tmp_path):
    """A learner built from a feature map and statistics scores as RidgeModel.solve does (and as numpy's solve),
    keeps label names through save/load, and learns and forgets on."""
    from mlcil import ridge

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 12)).astype(np.float32)
    Y = (X[:, :3] + 0.3 * rng.normal(size=(200, 3)) > 0.4).astype(np.uint8)
    fmap = ridge.FeatureMap.fit(X, M=48, seed=3, scaling="standardize", include_x=True)
    stats = ridge.partial_statistics(fmap, X, Y)
    calibration = {"a": np.array([1.5, 2.0, 0.7]), "b": np.array([-0.5, 0.1, 0.2])}
    thresholds = np.array([0.4, 0.5, 0.6])
    names = ["cat", "dog", "eel"]
    model = ridge.RidgeModel.solve(fmap, stats, 2.5, calibration, thresholds)
    learner = Analytic.from_statistics(fmap, stats, 2.5, names, calibration, thresholds, seed=1)
    assert learner.is_fitted and learner.classes_.tolist() == names and learner.strategy == "negative"
    W = np.linalg.solve(stats.G + 2.5 * np.eye(fmap.D), stats.B)
    np.testing.assert_allclose(learner.scores(X), fmap(X).astype(np.float64) @ W, rtol=1e-5, atol=1e-5)
    back = Learner.load(learner.save(tmp_path / "stats.npz"))
    assert back.classes_.tolist() == names
    for got in (learner, back):
        np.testing.assert_allclose(got.scores(X), model.scores(X), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got.proba(X), model.proba(X), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got.decision_thresholds_, thresholds)
    # a learner like any other: a new session of named classes, forgetting by name
    back.learn(X, Y[:, :1], classes=["fox"])
    assert back.classes_.tolist() == names + ["fox"]
    back.forget(["dog"])
    assert back.classes_.tolist() == ["cat", "eel", "fox"] and back.scores(X).shape == (200, 3)
    # without calibration and thresholds: the ridge core's defaults; Joint builds the same way
    plain = ridge.RidgeModel.solve(fmap, stats, 2.5)
    for cls in (Analytic, Joint):
        default = cls.from_statistics(fmap, stats, 2.5, [4, 7, 9])
        assert type(default) is cls and default.classes_.tolist() == [4, 7, 9]
        np.testing.assert_allclose(default.proba(X), plain.proba(X), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(default.decision_thresholds_, ridge.DEFAULT_THRESHOLD)
    isotonic = {"x": np.tile(np.linspace(-1, 2, 5), (3, 1)), "y": np.tile(np.linspace(0, 1, 5), (3, 1))}
    iso = Analytic.from_statistics(fmap, stats, 2.5, names, isotonic)
    assert iso.calibration == "isotonic"
    np.testing.assert_allclose(iso.proba(X), ridge.RidgeModel.solve(fmap, stats, 2.5, isotonic).proba(X), atol=1e-6)


@pytest.mark.parametrize("change, match", [
    ({"classes": ["a", "b"]}, "classes: expected 3"), ({"classes": ["a", "a", "b"]}, "duplicates"),
    ({"lam": -1.0}, "lam"), ({"lam": float("nan")}, "lam"), ({"calibration": {"a": np.ones(2), "b": np.ones(2)}},
                                                             "calibration"),
    ({"thresholds": np.ones(4)}, "thresholds"), ({"fmap": "phi"}, "fmap"), ({"stats": (1, 2)}, "stats"),
])
def test_from_statistics_refuses_bad_input(change, match):
    from mlcil import ridge

    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    fmap = ridge.FeatureMap.fit(X, M=8)
    args = {"fmap": fmap, "stats": ridge.partial_statistics(fmap, X, (X[:, :3] > 0).astype(np.uint8)), "lam": 1.0,
            "classes": ["a", "b", "c"], **change}
    with pytest.raises(MlcilError, match=match):
        Analytic.from_statistics(**args)


def test_set_lambda_resolves_the_statistics_with_lambda_fixed(stream3):
    learner = Analytic(M=40, strategy="weighted", alpha=0.3)
    for s in stream3:
        learner.learn(s)
    calibration, thresholds, lam = learner.calibration_, learner.thresholds_, learner.lambda_
    assert learner.set_lambda(lam * 7) is learner and learner.lambda_ == lam * 7
    np.testing.assert_allclose(learner.W_, reference_weights(learner, stream3.sessions), rtol=1e-7, atol=1e-9)
    assert learner.calibration_ is calibration and learner.thresholds_ is thresholds
    X = stream3.X_test
    np.testing.assert_allclose(learner.scores(X), phi(learner, X) @ learner.W_, rtol=1e-5, atol=1e-5)
    W = learner.W_.copy()
    for bad in (-1.0, 0, float("inf"), True, "1"):
        with pytest.raises(MlcilError, match="set_lambda: lam"):
            learner.set_lambda(bad)
    assert learner.lambda_ == lam * 7 and np.array_equal(learner.W_, W)
    with pytest.raises(MlcilError, match="not fitted"):
        Analytic(M=8).set_lambda(1.0)


def test_files_written_with_torch_state_load_as_numpy(stream3, tmp_path):
    """Learners saved while the state was torch tensors (meta kind 'tensor') load as NumPy, score the same
    and learn on."""
    import json

    learner = Analytic(M=32, strategy="weighted", alpha=0.3)
    for s in stream3.sessions[:2]:
        learner.learn(s)
    path = learner.save(tmp_path / "new.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["__header__"]))
    for key, info in header["meta"].items():  # what _flatten wrote for torch tensors
        if info["kind"] == "array" and key.split(".")[0] in ("R_", "W_", "G_", "B_", "prior_phi_"):
            header["meta"][key] = {"kind": "tensor", "dtype": str(arrays[key].dtype)}
    arrays["__header__"] = np.array(json.dumps(header))
    np.savez(tmp_path / "old.npz", **arrays)
    old = Learner.load(tmp_path / "old.npz")
    assert all(isinstance(g, np.ndarray) and g.dtype == np.float64 for g in old.G_)
    assert isinstance(old.R_, np.ndarray) and old.R_.dtype == np.float32
    np.testing.assert_array_equal(old.scores(stream3.X_test), learner.scores(stream3.X_test))
    old.learn(stream3.sessions[2])
    assert len(old.classes_) == 6
