"""The reproducibility contract (README, "Reproducibility").

Within one process the same inputs give bit-for-bit the same results; in another process,
with other thread counts and other BLAS/SIMD kernels, they agree within the tolerances stated
in the README and kept in tests/conftest.py (measured by benchmarks/reproducibility.py).
"""

import json
import os

import numpy as np

from mlcil.data.dataset import Dataset
from mlcil.learners import make_learner
from mlcil.metrics import mean_average_precision
from mlcil.protocols import Protocol

from .conftest import MAP_ATOL_POINTS, assert_reproduced
from .learners.conftest import make_dataset

#: The learners of the contract, at test sizes.
SPECS = ["analytic:M=64", "joint:M=64", "prototype", "lda", "finetune:epochs=3"]

CHILD = """
import json, sys
import numpy as np
from mlcil.data.dataset import Dataset
from mlcil.learners import make_learner
from mlcil.metrics import mean_average_precision
from mlcil.protocols import Protocol

src, out, specs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with np.load(src) as z:
    ds = Dataset(z["X"], z["Y"], list(z["names"]), split=z["split"], name="synthetic")
stream = Protocol("B0-C2", order="dataset").build(ds)
arrays = {}
for spec in specs:
    learner = make_learner(spec, seed=0)
    for t, session in enumerate(stream):
        learner.learn(stream.joint_session(t) if learner.needs_full_labels else session)
        rows = stream.test_rows(t)
        arrays[f"{spec}|{t}"] = learner.scores(stream.X_test[rows])
        arrays[f"{spec}|{t}|classes"] = learner.classes_
np.savez(out, **arrays)
"""


def run_stream(stream) -> dict[str, np.ndarray]:
    """Scores on the test rows after every session, per learner spec: {'spec|t': n_t × C_t}."""
    out = {}
    for spec in SPECS:
        learner = make_learner(spec, seed=0)
        for t, session in enumerate(stream):
            learner.learn(stream.joint_session(t) if learner.needs_full_labels else session)
            out[f"{spec}|{t}"] = learner.scores(stream.X_test[stream.test_rows(t)])
            out[f"{spec}|{t}|classes"] = learner.classes_
    return out


def test_same_inputs_in_one_process_give_identical_results():
    stream = Protocol("B0-C2", order="dataset").build(make_dataset(n=400))
    first = run_stream(stream)
    second = run_stream(stream)  # after the first run: no global state may leak between runs
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(second[key], first[key], err_msg=key)


def test_other_process_threads_and_kernels_agree_within_the_stated_tolerance(tmp_path, python_process):
    ds = make_dataset(n=400)
    np.savez(tmp_path / "data.npz", X=ds.X, Y=ds.Y, names=np.array(ds.label_names), split=ds.split)
    stream = Protocol("B0-C2", order="dataset").build(
        Dataset(ds.X, ds.Y, list(ds.label_names), split=ds.split, name="synthetic"))
    here = run_stream(stream)
    # what another CPU would pick: MKL's AVX2 code path, torch's AVX2 kernels, OpenBLAS's Zen
    # kernels, two threads everywhere
    env = {**os.environ, "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
           "OPENBLAS_CORETYPE": "Zen", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    proc = python_process(["-c", CHILD, str(tmp_path / "data.npz"), str(tmp_path / "out.npz"), json.dumps(SPECS)],
                          env=env)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as z:
        there = {k: z[k] for k in z.files}
    assert there.keys() == here.keys()
    for key in (k for k in here if not k.endswith("|classes")):
        np.testing.assert_array_equal(there[key + "|classes"], here[key + "|classes"])
        assert_reproduced(there[key], here[key], err_msg=key)
        t = int(key.split("|")[1])
        Y = stream.Y_test[stream.test_rows(t)][:, here[key + "|classes"]]
        gap = 100 * abs(mean_average_precision(Y, there[key])[0] - mean_average_precision(Y, here[key])[0])
        assert gap <= MAP_ATOL_POINTS, (key, gap)
