"""The core runs without PyTorch: ridge, analytic, joint, prototype, lda, metrics, decide, bench and serve.

Each check runs in a fresh interpreter in which importing torch (or an encoder library built on it)
fails, as on a machine where ``pip install mlcil`` installed the core alone (``.ci/run`` also runs the
README's quick start in a venv that has no torch at all).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = '''
import importlib.abc, sys
BLOCKED = ("torch", "torchvision", "timm", "open_clip", "sentence_transformers", "triton")
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, _NoTorch())
'''


def run_blocked(code: str) -> str:
    """Run ``code`` with torch blocked; returns stdout, fails with stderr on a non-zero exit."""
    proc = subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_blocking_works():
    proc = subprocess.run([sys.executable, "-c", BLOCK + "import torch"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "blocked by the test" in proc.stderr


def test_closed_form_learners_learn_and_predict_without_torch(tmp_path):
    out = run_blocked(f'''
        import numpy as np, sys
        import mlcil
        from mlcil import Analytic, Joint, Prototype, LDA, Learner
        rng = np.random.default_rng(0)
        X = rng.normal(size=(150, 12)).astype(np.float32)
        Y = (X[:, :4] > 0.4).astype(np.uint8)
        for model in (Analytic(M=64), Prototype(), LDA()):
            model.learn(X, Y[:, :2], classes=["a", "b"]).learn(X[::2], Y[::2, 2:], classes=["c", "d"])
            assert model.classes_.tolist() == ["a", "b", "c", "d"]
            assert model.predict(X).shape == (150, 4)
            path = model.save(r"{tmp_path}/" + model.name + ".npz")
            np.testing.assert_array_equal(Learner.load(path).predict(X), model.predict(X))
        joint = Joint(M=64).learn(X, Y, classes=list("abcd"))
        assert joint.predict_proba(X).shape == (150, 4)
        assert "torch" not in sys.modules
        print("ok")
    ''')
    assert out.strip().endswith("ok")


def test_torch_learners_say_what_to_install():
    out = run_blocked('''
        import sys
        from mlcil.errors import MlcilError
        from mlcil.learners import REGISTRY, make_learner, resolve_learner_names
        assert "finetune" in REGISTRY and REGISTRY.needs("finetune") == "torch"
        assert {"analytic", "joint", "prototype", "lda"} <= set(REGISTRY.available())
        assert "finetune" not in resolve_learner_names("all")
        try:
            make_learner("finetune")
        except MlcilError as exc:
            assert "pip install 'mlcil[torch]'" in str(exc), exc
        else:
            raise AssertionError("finetune built without torch")
        try:
            from mlcil import FineTune
        except MlcilError as exc:
            assert "mlcil[torch]" in str(exc)
        else:
            raise AssertionError("FineTune imported without torch")
        assert "torch" not in sys.modules
        print("ok")
    ''')
    assert out.strip().endswith("ok")


def test_metrics_decide_and_the_harness_without_torch(tmp_path):
    out = run_blocked('''
        import sys
        import numpy as np
        from mlcil import Dataset, run_benchmark, BenchConfig
        import mlcil.metrics, mlcil.decide, mlcil.ridge, mlcil.protocols, mlcil.data
        rng = np.random.default_rng(0)
        X = rng.normal(size=(300, 8)).astype(np.float32)
        Y = (X[:, :4] + 0.3 * rng.normal(size=(300, 4)) > 0.5).astype(np.uint8)
        split = np.where(np.arange(300) < 210, "train", "test")
        ds = Dataset(X, Y, [f"c{i}" for i in range(4)], split=split, name="toy")
        report = run_benchmark(ds, BenchConfig(protocol="B0-C2", learners=["analytic:M=32", "prototype", "lda"],
                                               seeds=[0]), progress=False)
        assert len(report["runs"]) == 3 and report["summary"], report.keys()
        assert "torch" not in sys.modules
        print("ok")
    ''')
    assert out.strip().endswith("ok")


def test_the_service_without_torch(tmp_path):
    out = run_blocked(f'''
        import sys
        from fastapi.testclient import TestClient
        from mlcil.serve.app import create_app
        app = create_app("sqlite:///{tmp_path}/t.db")
        with TestClient(app) as client:
            assert client.post("/v1/labels", json={{"name": "cat"}}).status_code in (200, 201)
            r = client.post("/v1/teach", json={{"examples": [
                {{"id": "a", "vector": [0.9, 0.1, 0.0, 0.2], "labels": {{"cat": 1}}}},
                {{"id": "b", "vector": [0.1, 0.8, 0.3, 0.0], "labels": {{"cat": 0}}}}]}})
            assert r.status_code == 200, r.text
            r = client.post("/v1/predict", json={{"vectors": [[0.85, 0.15, 0.05, 0.15]], "min_version": r.json()["version"]}})
            assert r.status_code == 200 and "cat" in r.json()["predictions"][0]["proba"], r.text
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if "torch" in m)
        print("ok")
    ''')
    assert out.strip().endswith("ok")


def test_bench_defaults_need_no_torch():
    """`mlcil bench <dataset>` with no --learners runs on the core install: its default learners are closed form."""
    out = run_blocked('''
        import click
        from mlcil.bench import BenchConfig
        from mlcil.cli import bench
        from mlcil.learners import REGISTRY, resolve_learner_names
        default = next(p.default for p in bench.params if p.name == "learners")
        for specs in (default, ",".join(BenchConfig().learners)):
            for spec in resolve_learner_names(specs):
                assert REGISTRY.needs(spec.split(":")[0]) is None, spec
        print("ok")
    ''')
    assert out.strip().endswith("ok")
