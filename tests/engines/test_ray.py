"""The Ray engine on a local 2-CPU cluster (one per test session): the distributed path equals the
local one within the stated tolerance for every additive learner, over 1-8 blocks, uneven and empty
blocks, dense and CSR input; a worker killed mid-accumulation is retried without double counting;
Ray Data embedding equals local embedding; `mlcil bench/embed --engine ray`.

Tolerance (README, "Scale-out on Ray"): statistics within 1e-12 × max|G| of the local ones (the sum
order differs by block); learned weights, scores and probabilities within 1e-6 (relative and
absolute), which is far below the 0.1-point resolution of a report.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from mlcil import ridge
from mlcil.engines import LOCAL, LocalEngine, RayEngine
from mlcil.errors import MlcilError
from mlcil.learners import make_learner
from mlcil.protocols import Session

from .helpers import make_sessions

STATS_RTOL = 1e-6
MODEL_TOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def _by_value(ray_engine):
    """Workers cannot import this test module: ship its functions by value."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def engine_with(ray_engine: RayEngine, blocks) -> RayEngine:
    """Another engine object on the same cluster, with its own block split."""
    return RayEngine(blocks=blocks, progress=False)


def maxabs(t) -> float:
    t = np.asarray(t)
    return float(np.abs(t).max()) if t.size else 0.0


def assert_stats_close(st, ref):
    scale = max(maxabs(ref.G), maxabs(ref.B), 1e-300)
    assert st.n == ref.n
    assert st.G.shape == ref.G.shape and st.B.shape == ref.B.shape
    assert maxabs(st.G - ref.G) <= STATS_RTOL * scale
    assert maxabs(st.B - ref.B) <= STATS_RTOL * scale


@pytest.mark.parametrize("sparse", [False, True])
def test_statistics_equal_local_over_1_to_8_blocks_uneven_and_empty(ray_engine, sparse):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(203, 11)).astype(np.float32)  # 203 rows: every k in 2..8 splits unevenly
    if sparse:
        X = sp.csr_matrix(np.where(rng.random(X.shape) < 0.7, 0, np.abs(X)).astype(np.float32))
    Y = (rng.random((203, 4)) < 0.3).astype(np.uint8)
    w = rng.random(203)
    fmap = ridge.FeatureMap.fit(X, 40, seed=1, scaling="scale" if sparse else "standardize", include_x=True)
    ref = LOCAL.statistics(fmap, X, Y, w)
    for blocks in [1, 2, 3, 4, 5, 6, 7, 8, [0, 100, 0, 0, 103, 0]]:
        assert_stats_close(engine_with(ray_engine, blocks).statistics(fmap, X, Y, w), ref)
    # more blocks than rows: empty blocks
    assert_stats_close(engine_with(ray_engine, 8).statistics(fmap, X[:5], Y[:5], w[:5]),
                       LOCAL.statistics(fmap, X[:5], Y[:5], w[:5]))
    # B only (pseudo-labels), no weights: equal to the local engine on the same 3 blocks to the sum's rounding
    # (φ is float32, and BLAS may round a row's zᵀR by the shape of its block: the same blocks, the same φ)
    st = engine_with(ray_engine, 3).statistics(fmap, X, Y, gram=False)
    assert isinstance(st.B, np.ndarray) and st.G.shape == (0, 0)
    np.testing.assert_allclose(st.B, LocalEngine(blocks=3).statistics(fmap, X, Y, gram=False).B, rtol=1e-12,
                               atol=1e-12 * maxabs(ref.B))
    assert maxabs(st.B - LOCAL.statistics(fmap, X, Y, gram=False).B) <= STATS_RTOL * maxabs(ref.B)


def assert_learners_close(a, b, X):
    assert a.classes_.tolist() == b.classes_.tolist()
    for key in ("alpha_", "scaling_", "include_x_", "n_rows_"):  # choices from a grid, and counts
        if hasattr(b, key):
            assert getattr(a, key) == getattr(b, key), key
    if hasattr(b, "lambda_"):  # the same point of a grid scaled by trace(G)/D
        assert a.lambda_ == pytest.approx(b.lambda_, rel=STATS_RTOL)
    for key in ("G_", "B_"):  # statistics of the Analytic family
        for x, y in zip(getattr(a, key, []), getattr(b, key, [])):
            scale = maxabs(y) or 1.0
            assert maxabs(np.asarray(x) - np.asarray(y)) <= STATS_RTOL * scale, key
    for key in ("sums_", "counts_", "total_", "Q_", "between_"):  # Prototype / LDA statistics
        if hasattr(b, key):
            y = getattr(b, key)
            np.testing.assert_allclose(getattr(a, key), y, rtol=0, atol=STATS_RTOL * max(np.abs(y).max(), 1))
    np.testing.assert_allclose(a.scores(X), b.scores(X), rtol=MODEL_TOL, atol=MODEL_TOL)
    np.testing.assert_allclose(a.proba(X), b.proba(X), rtol=MODEL_TOL, atol=MODEL_TOL)


LEARNERS = ["analytic:M=48", "analytic:M=48,strategy=known", "joint:M=48", "prototype", "lda"]


@pytest.mark.parametrize("name", LEARNERS)
def test_additive_learners_equal_local_over_1_to_8_blocks(ray_engine, name):
    sessions = make_sessions(n=300)
    # a third session of 5 rows: with 8 blocks, three of them are empty
    small = make_sessions(n=5, seed=3)[1]
    tiny = Session(small.X, small.Y, np.array([7, 8]), small.index, t=2)
    local = make_learner(name)
    stream = sessions if local.needs_full_labels else (*sessions, tiny)  # joint refits on what it is given
    for s in stream:
        local.learn(s)
    X = sessions[1].X
    for blocks in (1, 3, 8) if name.startswith("analytic") else (1, 2, 3, 5, 8):  # all of 1..8: statistics test
        remote = make_learner(name)
        for s in stream:
            remote.learn(s, engine=engine_with(ray_engine, blocks))
        assert_learners_close(remote, local, X)


@pytest.mark.parametrize("name", ["analytic:M=48", "prototype", "lda"])
def test_csr_input_through_ray_equals_local(ray_engine, name):
    sessions = make_sessions(n=250, d=40, sparse=True)
    local, remote = make_learner(name), make_learner(name)
    for s in sessions:
        local.learn(s)
        remote.learn(s, engine=engine_with(ray_engine, 3))
    assert sp.issparse(sessions[0].X)
    if name.startswith("analytic"):
        assert remote.scaling_ in ("none", "scale", "l2")  # never 'standardize' on CSR
    assert_learners_close(remote, local, sessions[1].X)


def test_large_session_goes_through_the_engine_and_a_gradient_learner_is_refused(ray_engine):
    """Above the scaling-search sample (8000 rows) the session's statistics are a separate pass."""
    rng = np.random.default_rng(5)
    n = 8200
    X = rng.normal(size=(n, 6)).astype(np.float32)
    Y = (X[:, :2] > 0.4).astype(np.uint8)
    s = Session(X, Y, np.array([0, 1]), np.arange(n))
    local = make_learner("analytic:M=32").learn(s)
    remote = make_learner("analytic:M=32").learn(s, engine=engine_with(ray_engine, 4))
    assert_learners_close(remote, local, X[:500])
    with pytest.raises(MlcilError, match="finetune cannot be distributed"):
        make_learner("finetune").learn(s, engine=ray_engine)


def test_the_private_cluster_talks_over_loopback(ray_engine):
    import ray

    assert [node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]] == ["127.0.0.1"]
    assert ray_engine.describe()["cpus"] == 2


# ---- faults ------------------------------------------------------------------------------------
def slow_statistics(X, Y, weights, fmap, marks: str):
    """Ridge statistics of the block; the first task to get here records its pid in ``victim`` and
    stalls after computing its result, so that the test can kill its worker before it returns."""
    st = ridge.partial_statistics(fmap, X, Y, weights)
    Path(marks, f"attempt-{os.getpid()}-{time.monotonic_ns()}").touch()
    try:
        fd = os.open(os.path.join(marks, "victim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return st
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    time.sleep(120)  # killed long before this ends
    return st


def test_worker_killed_mid_accumulation_is_retried_without_double_counting(ray_engine, tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    Y = (rng.random((400, 3)) < 0.4).astype(np.uint8)
    fmap = ridge.FeatureMap.fit(X, 32, seed=0, scaling="standardize")
    victim = tmp_path / "victim"
    killed = {}

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if victim.exists() and victim.read_text():
                pid = int(victim.read_text())
                os.kill(pid, signal.SIGKILL)
                killed["pid"] = pid
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    engine = engine_with(ray_engine, 4)
    st = engine.accumulate(slow_statistics, X, Y, None, args=(fmap, str(tmp_path)))
    thread.join(5)
    assert "pid" in killed, "no worker was killed"
    attempts = list(tmp_path.glob("attempt-*"))
    assert len(attempts) == 5  # 4 blocks, one of them run twice (the killed attempt had computed its part)
    assert killed["pid"] in {int(p.name.split("-")[1]) for p in attempts}
    assert st.n == 400  # each row counted once
    assert_stats_close(st, LOCAL.statistics(fmap, X, Y))


def test_reduction_refuses_a_block_counted_twice():
    from mlcil.engines.ray_engine import add_parts

    with pytest.raises(MlcilError, match=r"blocks \[1\] would be counted twice"):
        add_parts(((0, 1), 1.0), ((1, 2), 2.0))
    assert add_parts(((0,), 1.0), ((1,), 2.0)) == ((0, 1), 3.0)


def failing_block(X, Y):
    raise MlcilError("statistics: this block is bad")


def test_an_error_in_a_block_reaches_the_driver_as_mlcil_error(ray_engine):
    with pytest.raises(MlcilError, match="^statistics: this block is bad$"):
        engine_with(ray_engine, 2).accumulate(failing_block, np.zeros((4, 2), np.float32), np.zeros((4, 1)))


# ---- embedding -----------------------------------------------------------------------------------
TEXTS = [f"{a} {b} {a} note {i % 7}" for i, (a, b) in
         enumerate(zip(["red", "green", "blue", "cyan"] * 25, ["sky", "sea", "leaf", "stone", "sand"] * 20))]


def test_encode_actor_finds_bad_inputs_and_encodes_the_others():
    from mlcil.encoders import make_encoder
    from mlcil.engines.ray_engine import EncodeActor

    encoder = make_encoder("tfidf-svd:dim=5,min_df=1").fit(TEXTS[:70])
    actor = EncodeActor("tfidf-svd", encoder=encoder)
    inputs = np.array(TEXTS[:3] + [None] + TEXTS[3:6], dtype=object)  # one input that is not a text
    out = actor({"row": np.arange(10, 17), "input": inputs})
    assert out["row"].tolist() == list(range(10, 17)) and set(out["encoder_id"]) == {encoder.id}
    assert [bool(e) for e in out["error"]] == [False] * 3 + [True] + [False] * 3
    assert "expected a text" in out["error"][3] and not out["embedding"][3].any()
    np.testing.assert_allclose(np.delete(out["embedding"], 3, axis=0), encoder.encode(TEXTS[:6]), rtol=1e-6)


def test_bad_inputs_raise_by_default():
    from mlcil.engines.ray_engine import bad_rows

    assert bad_rows({}, "raise").tolist() == [] and bad_rows({7: "x", 3: "y"}, "skip").tolist() == [3, 7]
    with pytest.raises(MlcilError, match=r"^input 3: y \(2 bad input\(s\); use --skip-bad"):
        bad_rows({7: "x", 3: "y"}, "raise")


# ---- command line ----------------------------------------------------------------------------------
def run_cli(*args):
    from click.testing import CliRunner

    from mlcil.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_bench_with_ray_gives_the_local_report(ray_engine, tmp_path):
    from mlcil.data import write_npz
    from tests.learners.conftest import make_dataset

    path = tmp_path / "synthetic.npz"
    write_npz(make_dataset(n=500, d=10, L=6, seed=4), path)
    spec = "analytic:M=32,prototype,lda"
    reports = {}
    for engine in ("local", "ray"):
        result = run_cli("bench", path, "-p", "B0-C2", "-l", spec, "-s", "1", "--engine", engine, "-q",
                         "-o", tmp_path / engine)
        assert result.exit_code == 0, result.output
        reports[engine] = json.loads((tmp_path / engine / "report.json").read_text())
    assert reports["ray"]["config"]["engine"]["name"] == "ray"
    for a, b in zip(reports["ray"]["runs"], reports["local"]["runs"]):
        for sa, sb in zip(a["sessions"], b["sessions"]):
            for key in ("mAP", "CF1", "OF1", "ECE", "CF1_tuned", "OF1_topk"):
                assert sa[key] == pytest.approx(sb[key], abs=MODEL_TOL, nan_ok=True), (a["learner"], key)
    refused = run_cli("bench", path, "-l", "analytic,finetune", "--engine", "ray", "-q", "-o", tmp_path / "x")
    assert refused.exit_code == 2
    assert "finetune cannot be distributed: its training is sequential gradient descent" in refused.output


def test_cli_embed_with_ray_writes_the_local_embedding(ray_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("MLCIL_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "colours.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "text": t, "labels": [t.split()[0]],
                                          "split": "train" if i < 70 else "test"}) for i, t in enumerate(TEXTS)))
    from mlcil.data import read_npz

    for engine in ("local", "ray"):
        result = run_cli("embed", path, "-e", "tfidf-svd:dim=5,min_df=1", "--engine", engine, "-q",
                         "-o", tmp_path / f"{engine}.npz")
        assert result.exit_code == 0, result.output
    local, remote = read_npz(tmp_path / "local.npz"), read_npz(tmp_path / "ray.npz")
    np.testing.assert_allclose(remote.X, local.X, rtol=1e-5, atol=1e-6)
    assert np.array_equal(remote.Y, local.Y) and remote.label_names == local.label_names
    info = json.loads((tmp_path / "ray.json").read_text())
    assert info["engine"] == "ray" and info["encoder_id"] == json.loads((tmp_path / "local.json").read_text())[
        "encoder_id"]
