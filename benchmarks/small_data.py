"""Small data: seconds per session and state bytes of `analytic` (defaults) on 100 / 300 / 1,000 rows.

The issue: 300 short texts (d = 384 sentence embeddings, 10 tags) took 69 s to learn with the default
``Analytic()``, 45 s for its first 100-row session, and its state was 229 MB. This script rebuilds that
shape: d = 384 unit-norm embeddings with a low-rank cluster structure (what a MiniLM encoder gives short
texts; no cached embeddings of a real text set are on these machines), 10 labels from the clusters, two
sessions of 5 labels (the field's protocol, B5-C5), and learns every size with the default learner,
beside scikit-learn's ``RidgeClassifierCV`` (efficient leave-one-out over its α grid) fitted on the same
rows with every label, in the same process. One thread (BLAS and, when loaded, torch).

    python benchmarks/small_data.py                       # 100, 300, 1000 rows, markdown table
    python benchmarks/small_data.py --rows 300 --save /tmp/new.npz
    PYTHONPATH=/tmp/mlcil_old_an/src python benchmarks/small_data.py --save /tmp/old.npz   # the code before
    python benchmarks/small_data.py --compare /tmp/old.npz /tmp/new.npz                    # same results?

``--save`` keeps each run's test scores, probabilities, λ and α; ``--compare`` prints the largest
differences between two saved runs (scores relative to the largest score).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

D_IN = 384
LABELS = 10
TEST_ROWS = 500


def embeddings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X n×384 float32 unit rows, Y n×10 uint8): 20 topic directions, each row a noisy mix of 1-2 topics;
    label c is on when the row's topics include one of label c's two topics (every row has a label)."""
    rng = np.random.default_rng(1234)  # the same topics for every n and seed
    topics = rng.normal(size=(20, D_IN))
    label_topics = rng.permutation(20).reshape(LABELS, 2)
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 3, size=n)
    picks = np.stack([rng.choice(20, size=2, replace=False) for _ in range(n)])
    weights = rng.random((n, 2)) * np.stack([np.ones(n), k == 2], axis=1)
    X = (weights[:, :1] * topics[picks[:, 0]] + weights[:, 1:] * topics[picks[:, 1]]
         + 0.6 * rng.normal(size=(n, D_IN)))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    present = np.zeros((n, 20), dtype=bool)
    present[np.arange(n), picks[:, 0]] = True
    present[np.arange(n)[k == 2], picks[k == 2, 1]] = True
    Y = np.stack([present[:, t].any(axis=1) for t in label_topics], axis=1).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1  # a row whose topic carries no label: label 0 (every text has a tag)
    return X.astype(np.float32), Y


def run(n: int, seed: int) -> dict:
    from sklearn.linear_model import RidgeClassifierCV

    from mlcil.data.dataset import Dataset
    from mlcil.learners import Analytic
    from mlcil.metrics import mean_average_precision
    from mlcil.protocols import Protocol

    X, Y = embeddings(n + TEST_ROWS, seed)
    split = np.where(np.arange(len(X)) < n, "train", "test")
    stream = Protocol("B5-C5", order="dataset").build(Dataset(X, Y, [f"tag{i}" for i in range(LABELS)], split=split,
                                                              name="small"))
    learner, seconds = Analytic(), []
    for session in stream:
        start = time.perf_counter()
        learner.learn(session)
        seconds.append(time.perf_counter() - start)
    S = learner.scores(stream.X_test)
    order = np.argsort(learner.classes_)
    mAP, _ = mean_average_precision(stream.Y_test, S[:, order])
    start = time.perf_counter()
    sk = RidgeClassifierCV(alphas=np.logspace(-3, 3, 13)).fit(X[:n], Y[:n].astype(np.int64))
    sk_seconds = time.perf_counter() - start
    sk_mAP, _ = mean_average_precision(Y[n:], sk.decision_function(X[n:]))
    return {"n": n, "sessions": [int(s.n) for s in stream], "seconds": seconds, "state_bytes": int(learner.state_bytes),
            "mAP": 100 * mAP, "sk_seconds": sk_seconds, "sk_mAP": 100 * sk_mAP, "scores": S,
            "proba": learner.proba(stream.X_test), "lambda": float(learner.lambda_), "alpha": float(learner.alpha_)}


def compare(old_path: str, new_path: str) -> None:
    old, new = np.load(old_path), np.load(new_path)
    for key in sorted(set(old.files) & set(new.files)):
        a, b = old[key].astype(np.float64), new[key].astype(np.float64)
        if key.endswith("scores"):
            diff = np.abs(a - b).max() / max(np.abs(a).max(), 1e-300)
            print(f"{key}: max |Δ| / max |score| = {diff:.2e}")
        else:
            print(f"{key}: max |Δ| = {np.abs(a - b).max():.2e} (relative {np.abs(a - b).max() / max(np.abs(a).max(), 1e-300):.2e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="write every run's test scores, probabilities, λ and α to this .npz")
    parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two --save files and exit")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    with threadpool_limits(limits=1):
        import mlcil

        if "torch" in sys.modules:  # the code before the NumPy core imports torch with mlcil
            import torch
            torch.set_num_threads(1)
        print(f"mlcil from {mlcil.__file__}", flush=True)
        print("| rows (train) | rows per session | analytic s / session | analytic total s | state | analytic mAP "
              "| RidgeClassifierCV s | RidgeClassifierCV mAP |\n|---|---|---|---|---|---|---|---|", flush=True)
        saved = {}
        for n in args.rows:
            r = run(n, args.seed)
            print(f"| {n} | {' + '.join(map(str, r['sessions']))} | {' + '.join(f'{s:.2f}' for s in r['seconds'])} "
                  f"| {sum(r['seconds']):.2f} | {r['state_bytes'] / 1e6:.1f} MB | {r['mAP']:.2f} | {r['sk_seconds']:.3f} "
                  f"| {r['sk_mAP']:.2f} |", flush=True)
            saved.update({f"n{n}_scores": r["scores"], f"n{n}_proba": r["proba"],
                          f"n{n}_lambda_alpha": np.array([r["lambda"], r["alpha"]])})
        if args.save:
            np.savez(args.save, **saved)


if __name__ == "__main__":
    main()
