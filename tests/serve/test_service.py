"""The engine against direct numpy fits: statistics, relabel, forgetting, restart, λ, calibration, export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcil.decide.calibration import apply_platt, fit_platt
from mlcil.learners import Learner
from mlcil.ridge import gaussian_projection
from mlcil.serve.errors import Conflict, Invalid, NotFound
from mlcil.serve.service import Options, Policy, TaggingService
from mlcil.serve.store import Store

from ..conftest import assert_reproduced
from .conftest import features, make_batch

D_IN, M = 12, 48
NAMES = ["a", "b", "c"]
SYNC = Policy(background=False)


def fresh(url: str, policy: Policy = SYNC, **kw) -> TaggingService:
    return TaggingService(Store(url), Options(M=M, seed=3, lam=0.5, **kw), policy=policy)


def reopen(url: str) -> TaggingService:
    return TaggingService(Store(url), policy=SYNC)


def R() -> np.ndarray:
    return gaussian_projection(D_IN, M, 3, "cpu")


def reference(X: np.ndarray, labels: list[dict[str, int]], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """G = ΦᵀΦ and B = ΦᵀY (Y = known positives) in numpy float64, φ written independently."""
    phi = features(X, R())
    Y = np.array([[float(row.get(n) == 1) for n in names] for row in labels])
    return phi.T @ phi, phi.T @ Y


def taught(svc: TaggingService, rng, batches: int, n: int = 20, prefix: str = "e"):
    for name in NAMES:
        svc.create_label(name)
    Xs, Ls, ids = [], [], []
    for b in range(batches):
        X, L = make_batch(rng, n, D_IN, NAMES)
        got, _ = svc.teach(list(X), L, [f"{prefix}{b}-{i}" for i in range(n)])
        Xs.append(X), Ls.extend(L), ids.extend(got)
    svc.refresh()
    return np.vstack(Xs), Ls, ids


def state(svc: TaggingService):
    return svc.state


def test_statistics_and_scores_equal_a_direct_numpy_fit(db_url):
    svc = fresh(db_url)
    X, L, _ = taught(svc, np.random.default_rng(0), batches=4)
    st = state(svc)
    G, B = reference(X, L, NAMES)
    assert st.version == 3 + 4 and st.n_examples == 80
    # φ is computed in float32 by the service (statistics in float64), in float64 here: ~1e-7 relative
    np.testing.assert_allclose(st.stats.G, G, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(st.stats.B, B, rtol=2e-5, atol=2e-5)
    W = np.linalg.solve(G + 0.5 * np.eye(G.shape[0]), B)
    model, S = svc.predict(X[:5])
    assert model.version == 7
    np.testing.assert_allclose(S, features(X[:5], R()) @ W, rtol=1e-5, atol=1e-5)
    counts = {r["name"]: (r["positives"], r["negatives"]) for r in svc.labels()[1]}
    for name in NAMES:
        assert counts[name] == (sum(r.get(name) == 1 for r in L), sum(r.get(name) == 0 for r in L))


def test_relabel_equals_a_fit_on_the_final_labels(db_url):
    """Teaching stored ids again with new/changed/removed labels updates B exactly; G never moves."""
    svc = fresh(db_url)
    rng = np.random.default_rng(1)
    X, L, ids = taught(svc, rng, batches=3)
    G_before = state(svc).stats.G.copy()
    final = [dict(row) for row in L]
    changes, vectors = [], []
    for i in rng.choice(len(ids), 25, replace=False):
        row = {}
        for name in NAMES:
            r = rng.random()
            if r < 0.3:
                row[name] = 1 - final[i].get(name, 0)  # a new or flipped label
            elif r < 0.4 and name in final[i]:
                row[name] = None  # no longer known
        for name, value in row.items():
            if value is None:
                final[i].pop(name, None)
            else:
                final[i][name] = value
        changes.append((ids[i], row))
        vectors.append(X[i] if rng.random() < 0.5 else None)  # the vector may be repeated or omitted
    _, v = svc.teach(vectors, [c[1] for c in changes], [c[0] for c in changes])
    svc.refresh()
    st = state(svc)
    assert st.version == v and st.n_examples == len(ids)
    assert np.array_equal(st.stats.G, G_before)  # no second φφᵀ
    G, B = reference(X, final, NAMES)
    np.testing.assert_allclose(st.stats.B, B, rtol=2e-5, atol=2e-5)
    # and equal to a from-scratch service fed the final labels (same float32 φ): to rounding
    other = fresh(db_url.replace("tagger.db", "other.db")) if db_url.startswith("sqlite") else None
    if other is not None:
        for name in NAMES:
            other.create_label(name)
        other.teach(list(X), final, ids)
        other.refresh()
        assert_reproduced(st.stats.B, state(other).stats.B, rtol=1e-6)
    counts = {r["name"]: (r["positives"], r["negatives"]) for r in svc.labels()[1]}
    for name in NAMES:
        assert counts[name] == (sum(r.get(name) == 1 for r in final), sum(r.get(name) == 0 for r in final))
    # a restart (rebuild from the log) agrees, and so does another process that caught up
    again = reopen(db_url)
    assert_reproduced(state(again).stats.B, st.stats.B, rtol=1e-6)
    # re-sending the same batch changes nothing and writes no event
    _, v2 = svc.teach(vectors, [c[1] for c in changes], [c[0] for c in changes])
    assert v2 == v
    with pytest.raises(Conflict) as err:  # a stored id with another vector
        svc.teach([X[0] + 1], [{"a": 1}], [ids[0]])
    assert err.value.field == "examples[0].vector"
    with pytest.raises(Invalid) as err:  # a new id needs a vector
        svc.teach([None], [{"a": 1}], ["never-seen"])
    assert err.value.field == "examples[0].vector"


def test_forget_examples_matches_a_fit_without_them(db_url):
    svc = fresh(db_url)
    X, L, ids = taught(svc, np.random.default_rng(1), batches=3)
    drop = set(ids[5:25])
    svc.forget_examples(sorted(drop))
    keep = [i for i, e in enumerate(ids) if e not in drop]
    G, B = reference(X[keep], [L[i] for i in keep], NAMES)
    svc.refresh()
    st = state(svc)
    np.testing.assert_allclose(st.stats.G, G, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(st.stats.B, B, rtol=2e-5, atol=2e-5)
    assert st.n_examples == len(keep)
    with svc.store.read() as tx:  # nothing of the forgotten examples is left in the database
        assert tx.one("SELECT COUNT(*) FROM examples")[0] == len(keep)
        assert tx.one("SELECT COUNT(*) FROM events")[0] == 0  # the log was pruned at the forget
        assert (tx.one("SELECT MIN(version) FROM snapshots")[0] or st.version) == st.version
    again = reopen(db_url)  # rebuilt from the rows (or the forget's snapshot)
    assert_reproduced(state(again).stats.G, st.stats.G, rtol=1e-6)  # other batching
    # forgetting it again (a retry after a lost reply) is harmless: nothing written, the same version
    version = svc.latest_version()
    assert svc.forget_report([ids[5], ids[0]]) == (version + 1, [ids[0]], [ids[5]])
    assert svc.forget_examples([ids[5], ids[0]]) == version + 1 == svc.latest_version()
    with pytest.raises(Invalid) as err:  # an id that can never be stored is still an error
        svc.forget_examples([ids[1], "a\x00b"])
    assert err.value.field == "ids[1]"


def test_forget_label_is_exact_and_leaves_nothing(db_url):
    svc = fresh(db_url)
    taught(svc, np.random.default_rng(2), batches=2)
    before = state(svc)
    svc.forget_label("b")
    svc.refresh()
    after = state(svc)
    assert [lab.name for lab in after.labels] == ["a", "c"]
    assert np.array_equal(after.stats.G, before.stats.G)
    assert np.array_equal(after.stats.B, before.stats.B[:, [0, 2]])
    with svc.store.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM known WHERE label_id = 2")[0] == 0
        details = " ".join(r[0] for r in tx.all("SELECT detail FROM events"))
        assert '"name": "b"' not in details
    svc.create_label("b")  # a label created later under the same name starts from nothing
    svc.refresh()
    assert np.abs(state(svc).stats.B[:, 2]).sum() == 0


@pytest.mark.parametrize("snapshot", [False, True])
def test_restart_rebuilds_the_same_model(db_url, snapshot):
    svc = fresh(db_url)
    _, _, ids = taught(svc, np.random.default_rng(4), batches=5)
    svc.teach([None, None], [{"a": 1}, {"b": None}], ids[3:5])
    svc.update_label("a", 0.7, None, {"threshold"})
    if snapshot:
        assert svc.checkpoint()  # a snapshot whatever the size policy says
    X, L = make_batch(np.random.default_rng(5), 7, D_IN, NAMES)
    svc.teach(list(X), L, [None] * 7)
    live = svc.refresh()
    again = reopen(db_url)  # a new process on the same database
    rebuilt = again.model
    assert rebuilt.version == live.version and rebuilt.labels == live.labels
    assert rebuilt.labels[0].threshold == 0.7
    assert_reproduced(state(again).stats.G, state(svc).stats.G, rtol=1e-6)
    assert_reproduced(again.predict(X[:4])[1], svc.predict(X[:4])[1], rtol=1e-6)


def test_bad_teach_writes_nothing(db_url):
    svc = fresh(db_url)
    taught(svc, np.random.default_rng(6), batches=1)
    version = svc.head()["version"]
    X, L = make_batch(np.random.default_rng(7), 3, D_IN, NAMES)
    with pytest.raises(Invalid) as err:
        svc.teach(list(X), [{"a": 1}, {"zzz": 1}, {}], [None] * 3)
    assert err.value.field == "examples[1].labels.zzz"
    with pytest.raises(Invalid):
        svc.teach(list(X[:, :5]), L, [None] * 3)
    svc.teach([X[0]], L[:1], ["taken"])
    with pytest.raises(Conflict) as err:
        svc.teach(list(X), L, ["new", "taken", "new"])
    assert err.value.field == "examples[2].id"
    assert svc.head() == {**svc.head(), "version": version + 1, "examples": 21}


def test_first_teach_with_a_huge_dimension_is_refused_and_writes_nothing(tmp_path):
    from mlcil.serve.errors import TooLarge
    from mlcil.serve.service import Limits

    url = f"sqlite:///{tmp_path / 't.db'}"
    svc = TaggingService(Store(url), Options(M=16), Limits(max_dim=1000), SYNC)
    with pytest.raises(TooLarge) as err:
        svc.teach([np.ones(100_000, np.float32)], [{}], ["x"])
    assert err.value.field == "examples[0].vector"
    svc2 = TaggingService(Store(url), Options(M=16), Limits(memory_budget=10_000), SYNC)
    with pytest.raises(TooLarge, match="memory budget"):
        svc2.teach([np.ones(800, np.float32)], [{}], ["x"])
    assert svc.head()["examples"] == 0 and svc.dim is None and reopen(url).dim is None
    svc.teach([np.ones(5, np.float32)], [{}], ["x"])  # a sane first teach still sets d
    assert reopen(url).dim == 5


def test_choose_lambda_and_calibration_follow_leave_one_out(db_url):
    svc = fresh(db_url)
    X, L, _ = taught(svc, np.random.default_rng(8), batches=4)
    out = svc.calibrate(choose=True)
    best = int(np.argmax(out["loo_map"]))
    assert out["rows"] == 80 and out["lam"] == out["lambdas"][best] and len(out["lambdas"]) == 13
    assert len(set(np.round(out["loo_map"], 6))) > 1  # the grid makes a difference
    # brute force: refit without each row at the chosen λ, score it
    from mlcil.metrics import average_precision

    phi = features(X, R())
    Y = np.array([[float(row.get(n) == 1) for n in NAMES] for row in L])
    S = np.empty_like(Y)
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        A = phi[keep].T @ phi[keep] + out["lam"] * np.eye(phi.shape[1])
        S[i] = phi[i] @ np.linalg.solve(A, phi[keep].T @ Y[keep])
    assert np.mean(average_precision(Y, S)) == pytest.approx(out["loo_map"][best], abs=1e-5)
    # every label's Platt map is the one fitted on those leave-one-out scores (all rows sampled: weight 1)
    model = svc.refresh()
    a, b = fit_platt(S, Y)
    assert model.version == out["version"] and model.lam == out["lam"]
    np.testing.assert_allclose(np.array([lab.platt for lab in model.labels]), np.c_[a, b], rtol=1e-4, atol=1e-4)
    _, scores = svc.predict(X[:4])
    W = np.linalg.solve(phi.T @ phi + out["lam"] * np.eye(phi.shape[1]), phi.T @ Y)
    np.testing.assert_allclose(model.proba(scores), apply_platt(phi[:4] @ W, a, b), atol=1e-4)
    assert reopen(db_url).model.labels == model.labels  # replayed on restart
    svc.set_lambda(2.5)
    assert svc.refresh().lam == 2.5 and reopen(db_url).model.lam == 2.5 and svc.head()["lam_fixed"]


def extreme_rows(X: np.ndarray) -> np.ndarray:
    """Rows of X rescaled to max |x| = 1e30 and 1e-30 (float32), the others as they are."""
    x = X.astype(np.float64)
    top = np.abs(x).max(axis=1, keepdims=True)
    return np.vstack([x[:4], x[4:8] / top[4:8] * 1e30, x[8:12] / top[8:12] * 1e-30]).astype(np.float32)


def test_export_is_the_learner_file_with_label_names_and_equal_probabilities(db_url, tmp_path):
    """The export, read by Learner.load, names its classes by the labels and scores as the service predicts,
    rows of extreme scale included (the l2 scaling's power-of-two rescaling is the ridge core's, in both)."""
    svc = fresh(db_url)
    X, L, _ = taught(svc, np.random.default_rng(9), batches=3)
    svc.calibrate()
    model = svc.refresh()
    path = svc.export_learner().save(tmp_path / "exported.npz")
    learner = Learner.load(path)
    assert learner.name == "analytic" and learner.strategy == "negative"
    assert list(learner.classes_) == NAMES == model.names
    probe = extreme_rows(np.random.default_rng(10).normal(size=(12, D_IN)))
    assert np.abs(probe[4:8]).max() == pytest.approx(1e30, rel=1e-6)
    assert np.abs(probe[8:12]).max() == pytest.approx(1e-30, rel=1e-6)
    _, S = svc.predict(probe)
    P = model.proba(S)
    assert np.abs(S).max() > 0.05  # the extreme rows are scored, not mapped to 0
    np.testing.assert_allclose(learner.scores(probe), S, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(learner.proba(probe), P, rtol=0, atol=1e-6)
    # and the extreme rows score as their direction at a normal scale
    unit = (probe.astype(np.float64) / np.abs(probe.astype(np.float64)).max(axis=1, keepdims=True)).astype(np.float32)
    np.testing.assert_allclose(S[4:], svc.predict(unit[4:])[1], rtol=1e-4, atol=1e-5)


def test_export_with_examples_but_no_label_is_a_conflict(db_url):
    svc = fresh(db_url)
    svc.create_label("cat")
    svc.teach([np.ones(D_IN, np.float32)], [{"cat": 1}], ["x"])
    svc.forget_label("cat")
    with pytest.raises(Conflict, match="no label") as err:
        svc.export_learner()
    assert err.value.field == "labels"


def test_extreme_components_score_like_their_direction(db_url):
    """Rows with components near the float32 limits score as the same direction at a normal scale."""
    svc = fresh(db_url)
    X, _, _ = taught(svc, np.random.default_rng(11), batches=2)
    x = X[:3].astype(np.float64)
    scaled = np.vstack([x[0] * 1e30, x[1] * 1e-30, x[2] * 1e19]).astype(np.float32)
    _, S = svc.predict(scaled)
    _, S_ref = svc.predict(X[:3])
    np.testing.assert_allclose(S, S_ref, rtol=1e-4, atol=1e-5)
    assert np.abs(S).max() > 0.05


def test_restart_with_contradicting_options_is_refused(tmp_path):
    """Each contradicting option is refused naming its field, the value given and the database's (the
    command line's flag names are the CLI's: tests/serve/test_cli_serve.py)."""
    from mlcil.serve.options import OptionError

    url = f"sqlite:///{tmp_path / 't.db'}"
    TaggingService(Store(url), Options(d=4, M=16, seed=1, lam=0.5), policy=SYNC).close()
    for kw, stored in (({"M": 32}, 16), ({"d": 5}, 4), ({"seed": 2}, 1), ({"lam": 2.0}, 0.5), ({"lam": "auto"}, 0.5),
                       ({"scaling": "none"}, "l2")):
        (key, value), = kw.items()
        with pytest.raises(OptionError, match=f"{key} = {value}") as err:
            TaggingService(Store(url), Options(**kw), policy=SYNC)
        assert (err.value.option, err.value.value, err.value.stored) == (key, value, stored)
        assert f"created with {key} = {stored}" in str(err.value)
        assert "--" not in str(err.value)  # no command-line text in the domain
    with pytest.raises(OptionError) as err:
        TaggingService(Store(url), Options(lam=-1.0), policy=SYNC)
    assert err.value.option == "lam"
    ok = TaggingService(Store(url), Options(d=4, M=16, seed=1, lam=0.5), policy=SYNC)
    assert (ok.options.d, ok.options.M) == (4, 16)
    with Store(url).read() as tx:
        assert json.loads(tx.one("SELECT value FROM config WHERE key = 'M'")[0]) == 16
