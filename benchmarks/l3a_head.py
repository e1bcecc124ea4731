"""`analytic` side by side with an L3A-style analytic head on the same streams (issue: holds on every dataset).

L3A (Zhang et al., "L3A: Label-Augmented Analytic Adaptation for Multi-Label Class Incremental Learning",
ICML 2025) puts a ridge ("analytic") classifier on a frozen backbone: a buffer layer φ = ReLU(Wx + b) with
H hidden units (``nn.Linear`` initialisation, U(−1/√d, 1/√d)), statistics A = Σ ω φφᵀ and C = Σ ω φyᵀ over
every session, W = (A + γI)⁻¹C, with
- pseudo-labels: before learning a session, an old class becomes positive on its rows where
  sigmoid(φᵀW) > 0.7 (the paper's threshold);
- sample weights ω_i = mean over i's positive classes of n_c^(−½), rescaled so the per-class factors
  average 1 (their "weighted analytic classifier"; n_c counts positives seen so far).
Its public configuration uses H = 8192 and γ = 1000 (VOC); γ = 1 is ACIL's usual value. The head is now
mlcil's `l3a` learner (``mlcil.learners.l3a.L3A``, written from the paper's description and its public
configuration, not its code); this script runs it on mlcil's streams and metrics, so both learners see
identical sessions and test sets. ``reference_head`` keeps the script's former head (its buffer weights
given), against which tests/learners/test_l3a.py checks the learner. Before the learner, the buffer weights
were drawn by torch's generator; the learner draws them with NumPy's, so a seed gives another random buffer
than the tables made before (benchmarks/results/l3a_head.md says which rows are which).

    MLCIL_DATA=/path/to/data python benchmarks/l3a_head.py --seeds 3 > benchmarks/results/l3a_head.md

Prints, per dataset, last mAP (mean ± std over seeds) of every head setting and of `analytic`.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from mlcil.bench import BenchConfig, run_benchmark
from mlcil.data import load_dataset
from mlcil.learners.l3a import L3A
from mlcil.metrics import mean_average_precision
from mlcil.protocols import Protocol

SUITE = [("scene", "B2-C1"), ("emotions", "B2-C1"), ("yeast", "B0-C3"), ("medical", "B0-C9"), ("tmc2007-500", "B0-C4")]


def reference_head(stream, hidden: int, gamma: float, standardize: bool, pseudo: bool, weighted: bool,
                   Wb: np.ndarray, bb: np.ndarray) -> np.ndarray:
    """The script's former head (float64), given its buffer weights ``Wb`` (d×H) and ``bb`` (H,): the
    classifier weights after the last session (H×C). Kept as the reference the `l3a` learner is tested
    against (tests/learners/test_l3a.py); the script itself now runs the learner."""
    first = np.asarray(stream.sessions[0].X.toarray() if hasattr(stream.sessions[0].X, "toarray")
                       else stream.sessions[0].X, dtype=np.float64)
    mu, sd = (first.mean(0), np.where(first.std(0) > 1e-12, first.std(0), 1.0)) if standardize else (0.0, 1.0)

    def phi(X):
        X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
        return np.maximum((X - mu) / sd @ Wb + bb, 0.0)

    A = np.zeros((hidden, hidden))
    C = np.zeros((hidden, 0))
    W = np.zeros((hidden, 0))
    counts = np.zeros(0)
    for session in stream:
        P = phi(session.X)
        k_old = C.shape[1]
        Y = np.zeros((session.n, k_old + session.Y.shape[1]))
        Y[:, k_old:] = session.Y
        if pseudo and k_old:
            Y[:, :k_old] = 1 / (1 + np.exp(-(P @ W))) > 0.7
        counts = np.concatenate([counts, np.zeros(session.Y.shape[1])]) + Y.sum(axis=0)
        inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0) ** 0.5
        norm = len(inv) * inv / max(inv.sum(), 1e-12)
        k = Y.sum(axis=1)
        w = np.where(k > 0, (Y @ norm) / np.maximum(k, 1), 1.0) if weighted else np.ones(session.n)
        A += P.T @ (P * w[:, None])
        C = np.concatenate([C, np.zeros((hidden, session.Y.shape[1]))], axis=1)
        C += P.T @ (Y * w[:, None])
        W = np.linalg.solve(A + gamma * np.eye(hidden), C)
    return W


def run_head(stream, hidden: int, gamma: float, standardize: bool, pseudo: bool, weighted: bool, seed: int) -> float:
    """Last mAP of mlcil's `l3a` learner (this setting) on one stream."""
    learner = L3A(hidden=hidden, gamma=gamma, pseudo_threshold=0.7 if pseudo else None, weighted=weighted,
                  standardize=standardize, seed=seed)
    for session in stream:
        learner.learn(session)
    rows = stream.test_rows(len(stream) - 1)
    seen = np.concatenate([s.classes for s in stream.sessions])
    return float(mean_average_precision(stream.Y_test[rows][:, seen], learner.scores(stream.X_test[rows]))[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(d for d, _ in SUITE))
    parser.add_argument("--hidden", default="2048,8192")
    parser.add_argument("--gamma", default="1,1000")
    parser.add_argument("--analytic", default="analytic", help="';'-separated mlcil learner specs to compare")
    args = parser.parse_args()
    settings = list(itertools.product([int(h) for h in args.hidden.split(",")],
                                      [float(g) for g in args.gamma.split(",")], (False, True)))
    print("last mAP (%), mean ± std over seeds; L3A-style head: H hidden units, γ ridge, raw or standardised "
          "input, pseudo-labels at 0.7 and L3A's sample weights\n")
    head_names = [f"L3A H={h} γ={g:g} {'std' if s else 'raw'}" for h, g, s in settings]
    specs = args.analytic.split(";")
    print("| dataset | " + " | ".join(head_names + [f"`{s}`" for s in specs]) + " |")
    print("|" + "---|" * (len(head_names) + len(specs) + 1))
    for name, protocol in SUITE:
        if name not in args.datasets.split(","):
            continue
        start = time.time()
        ds = load_dataset(name)
        cells = []
        for h, g, s in settings:
            vals = [run_head(Protocol(protocol, seed=seed).build(ds), h, g, s, True, True, seed)
                    for seed in range(args.seeds)]
            cells.append(100 * np.array(vals))
        report = run_benchmark(ds, BenchConfig(protocol=protocol, learners=tuple(specs),
                                               seeds=tuple(range(args.seeds))), progress=False)
        for spec in specs:
            cells.append(100 * np.array([r["summary"]["last_mAP"] for r in report["runs"] if r["learner"] == spec]))
        best_head = max(range(len(settings)), key=lambda i: cells[i].mean())
        text = [f"{c.mean():.1f} ± {c.std():.1f}" for c in cells]
        text[best_head] = f"**{text[best_head]}**"
        print(f"| {name} {protocol} | " + " | ".join(text) + f" |  <!-- {time.time() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
