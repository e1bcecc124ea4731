"""Should the raw input join the random features (φ = ReLU(zᵀR) ⊕ z)? `analytic` with include_x on and off.

Sets the cut-off of ``include_x='auto'`` (:data:`mlcil.ridge.INCLUDE_X_MAX_FEATURES`): the raw columns make
D = M + d, so the state (D² floats per Gram matrix) and the solve (D³) grow quickly with d, and they should
earn their place in last mAP.

    MLCIL_DATA=../shared/data python benchmarks/include_x.py --seeds 1

Prints last mAP, learn seconds and state size of both settings per dataset (sorted by d).
"""

from __future__ import annotations

import argparse

import numpy as np

from mlcil.bench import BenchConfig, run_benchmark
from mlcil.data import load_dataset

SUITE = [("emotions", "B2-C1"), ("yeast", "B0-C3"), ("scene", "B2-C1"), ("tmc2007-500", "B0-C4"),
         ("enron", "B0-C11"), ("genbase", "B0-C6"), ("medical", "B0-C9"), ("bibtex", "B0-C32")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--datasets", default=",".join(d for d, _ in SUITE))
    args = parser.parse_args()
    specs = ("analytic:include_x=false", "analytic:include_x=true")
    print("| dataset | d | last mAP without x | last mAP with x | Δ | learn s without / with | state MB without / with |")
    print("|---|---|---|---|---|---|---|")
    for name, protocol in SUITE:
        if name not in args.datasets.split(","):
            continue
        ds = load_dataset(name)
        report = run_benchmark(ds, BenchConfig(protocol=protocol, learners=specs, seeds=tuple(range(args.seeds))),
                               progress=False)
        s = [report["summary"][k] for k in specs]
        m = [100 * x["last_mAP"]["mean"] for x in s]
        print(f"| {name} {protocol} | {ds.d} | {m[0]:.1f} | {m[1]:.1f} | {m[1] - m[0]:+.1f} | "
              f"{s[0]['learn_s']['mean']:.0f} / {s[1]['learn_s']['mean']:.0f} | "
              f"{s[0]['state_bytes']['mean'] / 1e6:.0f} / {s[1]['state_bytes']['mean'] / 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
