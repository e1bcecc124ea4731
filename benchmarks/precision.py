"""float32 vs float64 multiplication when accumulating the Analytic learner's statistics.

Both keep float64 sums and a float64 solve; 'float32' multiplies each chunk's ΦᵀΦ in float32.
Prints, per dataset, the relative difference of the weights and of the scores, the last mAP of
each and the accumulation time of each, measured in the same run.

    MLCIL_DATA=../shared/data python benchmarks/precision.py
"""

from __future__ import annotations

import time

import numpy as np

from mlcil.data import load_dataset
from mlcil.learners import Analytic
from mlcil.metrics import mean_average_precision
from mlcil.protocols import Protocol

SUITE = [("scene", "B0-C2"), ("tmc2007-500", "B0-C4"), ("medical", "B0-C9")]


def main() -> None:
    print("| dataset | max abs ΔW / max abs W | max abs Δscore | last mAP float64 | last mAP float32 | learn s float64 | learn s float32 |")
    print("|---|---|---|---|---|---|---|")
    for name, spec in SUITE:
        stream = Protocol(spec).build(load_dataset(name))
        rows = stream.test_rows(len(stream) - 1)
        out = {}
        for precision in ("float64", "float32"):
            learner = Analytic(precision=precision, strategy="weighted", alpha=0.1)
            start = time.perf_counter()
            for s in stream:
                learner.learn(s)
            elapsed = time.perf_counter() - start
            S = learner.scores(stream.X_test)
            Y = stream.Y_test[:, learner.classes_]
            out[precision] = (learner.W_.cpu().numpy(), S, mean_average_precision(Y[rows], S[rows])[0], elapsed)
        W64, S64, m64, t64 = out["float64"]
        W32, S32, m32, t32 = out["float32"]
        print(f"| {name} {spec} | {np.abs(W64 - W32).max() / np.abs(W64).max():.1e} | {np.abs(S64 - S32).max():.1e} | "
              f"{100 * m64:.2f} | {100 * m32:.2f} | {t64:.1f} | {t32:.1f} |")


if __name__ == "__main__":
    main()
