"""CPU vs CUDA: the Analytic learner gives the same results on both devices (to tolerance),
and how fast each learns. Needs a CUDA GPU; prints a table.

    python benchmarks/device_parity.py --dataset scene --protocol B0-C2
    python benchmarks/device_parity.py --synthetic 200000 --d 768 --M 4096   # throughput on a large session
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mlcil.learners import make_learner
from mlcil.protocols import Protocol, Session


def core_parity() -> None:
    """The ridge core's GPU path: φ, statistics and scores of a 'cuda' map come back as NumPy, equal to the
    CPU's (moved here from the test suite, which runs on machines without a GPU)."""
    from mlcil import ridge

    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 12)).astype(np.float32)
    Y = (rng.random((500, 3)) < 0.3).astype(np.uint8)
    cpu = ridge.FeatureMap.fit(X, M=64, scaling="standardize", include_x=True)
    gpu = cpu.to("cuda")
    assert gpu.device == "cuda" and gpu.same_as(cpu)
    phi = gpu(X)
    assert isinstance(phi, np.ndarray) and phi.dtype == np.float32
    np.testing.assert_allclose(phi, cpu(X), rtol=1e-4, atol=1e-4)
    st_gpu, st_cpu = ridge.partial_statistics(gpu, X, Y), ridge.partial_statistics(cpu, X, Y)
    assert isinstance(st_gpu.G, np.ndarray)
    np.testing.assert_allclose(st_gpu.G, st_cpu.G, rtol=1e-4, atol=1e-4 * np.abs(st_cpu.G).max())
    W = ridge.ridge_solve(st_cpu.G, st_cpu.B, 1.0)
    np.testing.assert_allclose(gpu.predict(X, W), cpu.predict(X, W), rtol=1e-4, atol=1e-4)
    print("ridge core: cuda φ, statistics and scores equal the CPU's (1e-4)")


def run(spec: str, stream, device: str):
    learner = make_learner(spec, device=device)
    start = time.perf_counter()
    for s in stream:
        learner.learn(stream.joint_session(s.t) if learner.needs_full_labels and hasattr(stream, "joint_session") else s)
    if device == "cuda":
        torch.cuda.synchronize()
    return learner, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--protocol", default="B0-C2")
    parser.add_argument("--synthetic", type=int, default=0, help="rows of a synthetic one-session stream")
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--M", type=int, default=2048)
    parser.add_argument("--learners", default="analytic;analytic:strategy=known;analytic:strategy=pseudo;joint")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    core_parity()
    if args.synthetic:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(args.synthetic, args.d)).astype(np.float32)
        Y = (rng.random((args.synthetic, 20)) < 0.1).astype(np.uint8)
        stream = [Session(X, Y, np.arange(20), np.arange(len(X)), 0)]
        X_test = X[:5000]
    else:
        from mlcil.data import load_dataset

        stream = Protocol(args.protocol).build(load_dataset(args.dataset))
        X_test = stream.X_test
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| learner | CPU learn s | CUDA learn s | speed-up | max abs diff of scores | max abs diff of proba |")
    print("|---|---|---|---|---|---|")
    for spec in args.learners.split(";"):
        if "M=" not in spec:
            spec += ("," if ":" in spec else ":") + f"M={args.M}"
        cpu, cpu_s = run(spec, stream, "cpu")
        gpu, gpu_s = run(spec, stream, "cuda")
        ds = np.abs(cpu.scores(X_test) - gpu.scores(X_test)).max()
        dp = np.abs(cpu.proba(X_test) - gpu.proba(X_test)).max()
        print(f"| `{spec}` | {cpu_s:.2f} | {gpu_s:.2f} | {cpu_s / gpu_s:.1f}× | {ds:.2e} | {dp:.2e} |")


if __name__ == "__main__":
    main()
