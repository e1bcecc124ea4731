"""What separates `analytic` with the label memory from `joint` (issue: close the label-absence gap).

With ``memory='labels'`` and ``strategy='negative'`` the learner's statistics G and B equal `joint`'s on
the union of the sessions' rows (tested to float tolerance with the frame fixed). What is left is the
frame: the input scaling (its statistics fitted on the first session's rows) and λ (chosen by
leave-one-out on the first session). This script measures it per seed: `joint`; `analytic` with the
memory; the same learner with λ set to `joint`'s and W re-solved (``set_lambda``; the scaling cannot be swapped
afterwards: it is inside G); the memory with ``lambda_search='gcv'`` (with the memory: the continuous
GCV minimum of the union's statistics) against `joint` with the same rule on its rows, and the same
memory with its scaling statistics from every session's inputs (``fit_frame``, no labels); and all of
it again under ``clip=3``
(standardised inputs winsorised at 3 spreads, so that later rows far from the first session's
statistics cannot dominate).

    MLCIL_DATA=../shared/data python benchmarks/absence_frame.py medical B0-C9
    MLCIL_DATA=../shared/data python benchmarks/absence_frame.py emotions B2-C1
    MLCIL_DATA=../shared/data python benchmarks/absence_frame.py corel5k B0-C10 --classes 50
"""

from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

from mlcil.bench.runner import evaluate_session
from mlcil.data import load_dataset
from mlcil.learners import make_learner
from mlcil.protocols import Protocol

MEMORY = "analytic:memory=labels,strategy=negative"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("protocol")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classes", type=int, default=None, help="use the first N classes (as the accuracy suite "
                        "does for corel5k: 50)")
    args = parser.parse_args()
    threadpool_limits(limits=1)  # one BLAS thread
    ds = load_dataset(args.dataset)
    G = MEMORY + ",lambda_search=gcv"
    runs = (("joint", "joint", False), (MEMORY, "memory", False), ("joint:lambda_search=gcv", "joint, λ by GCV", False),
            (G, "memory, λ by GCV", False), (G, "memory, λ by GCV, frame from inputs", True),
            ("joint:clip=3", "joint, clip 3", False), ("joint:clip=3,lambda_search=gcv", "joint, λ by GCV, clip 3", False),
            (G + ",clip=3", "memory, λ by GCV, clip 3", False),
            (G + ",clip=3", "memory, λ by GCV, clip 3, frame from inputs", True))
    cols = [key for _, key, _ in runs]
    cols.insert(2, "memory + joint's λ")
    results = {c: [] for c in cols}
    for seed in range(args.seeds):
        stream = Protocol(args.protocol, seed=seed, n_classes=args.classes).build(ds)
        t = len(stream) - 1

        def score(learner) -> float:  # last mAP as `mlcil bench` reports it
            return 100 * evaluate_session(learner, stream, t, threshold=0.8)[0]["mAP"]

        line, joint = [f"seed {seed}:"], None
        for spec, key, pooled in runs:
            learner = make_learner(spec, seed=seed)
            if spec.startswith("joint"):
                learner.learn(stream.joint_session(t))
                joint = learner if spec == "joint" else joint
            else:
                if pooled:  # the scaling's statistics from every session's inputs (no label)
                    learner.fit_frame(stream.joint_session(t).X)
                for session in stream:
                    learner.learn(session)
            results[key].append(score(learner))
            line.append(f"{key} {results[key][-1]:.2f} ({learner.scaling_}, λ {learner.lambda_:.3g})")
            if key == "memory":
                learner.set_lambda(joint.lambda_)
                results["memory + joint's λ"].append(score(learner))
                line.append(f"memory + joint's λ {results[cols[2]][-1]:.2f}")
        print(" | ".join(line), flush=True)
    print("\n| dataset | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1))
    print(f"| {args.dataset} {args.protocol} | " + " | ".join(f"{np.mean(results[c]):.2f} ± {np.std(results[c]):.2f}"
                                                          for c in cols) + " |")


if __name__ == "__main__":
    main()
