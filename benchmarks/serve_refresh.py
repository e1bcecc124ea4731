"""What one model version costs, to choose how predictions stay off factorisations (issue 11, item 4).

    python benchmarks/serve_refresh.py            # D = 1536 (d = 512 + M = 1024), 20 labels

Measures, on one thread, side by side: a full refresh (Cholesky of G + λI and the solve for W),
the alternative of keeping (G + λI)⁻¹ and W current with a Woodbury rank-k update per teach
(k = 1 and 16), and the statistics update G += ΦᵀΦ of one teach. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--D", type=int, default=1536)
    ap.add_argument("--C", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    D, C = args.D, args.C
    g = torch.Generator().manual_seed(0)
    Phi = torch.randn(4 * D, D, generator=g, dtype=torch.float64)
    G, B = Phi.T @ Phi, torch.randn(D, C, generator=g, dtype=torch.float64)

    def refresh():
        A = G.clone()
        A.diagonal().add_(1.0)
        L = torch.linalg.cholesky(A)
        return torch.cholesky_solve(B, L)

    A = G.clone()
    A.diagonal().add_(1.0)
    Ainv = torch.cholesky_inverse(torch.linalg.cholesky(A))
    W = Ainv @ B

    def woodbury(k: int):
        def step():
            phi = torch.randn(k, D, generator=g, dtype=torch.float64)
            y = torch.zeros(k, C, dtype=torch.float64)
            U = Ainv @ phi.T
            S = torch.eye(k, dtype=torch.float64) + phi @ U
            K = torch.linalg.solve(S, U.T).T
            return Ainv - K @ U.T, W + K @ (y - phi @ W)
        return step

    def stats_update(k: int):
        def step():
            phi = torch.randn(k, D, generator=g, dtype=torch.float64)
            return G + phi.T @ phi
        return step

    rows = [("refresh: Cholesky + solve W (per published version)", timed(refresh, args.repeats)),
            ("Woodbury update of A⁻¹ and W, one teach of 1 example", timed(woodbury(1), args.repeats)),
            ("Woodbury update of A⁻¹ and W, one teach of 16 examples", timed(woodbury(16), args.repeats)),
            ("statistics G += ΦᵀΦ, one teach of 1 example (new G)", timed(stats_update(1), args.repeats)),
            ("statistics G += ΦᵀΦ, 64 examples at once (a refresh's batch)", timed(stats_update(64), args.repeats))]
    print(f"D = {D}, C = {C}, one thread, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| operation | ms |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.1f} |")


if __name__ == "__main__":
    main()
