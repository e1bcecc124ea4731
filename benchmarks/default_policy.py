"""Candidate default policies of ``analytic`` side by side, as functions of the statistics it keeps (issue 27).

For one dataset (seed 0, the sweep's protocol B0-C⌈L/5⌉) and one frame (input scaling, clip, M) the script
builds every session's statistics once — G_s = ΦᵀΦ, B_s = ΦᵀY, label counts, n_s — plus φ of the test set,
and scores each λ rule by the last mAP of the final model W = (G_all + λ_c I)⁻¹ B (one system for every
class, absent labels read as 0: the α = 1 solve that the α search picks on most datasets), from one
eigendecomposition of G_all. mAP is a ranking measure, so calibration plays no part. λ rules:

- ``loo_first``: one λ, the 13-point grid's best closed-form leave-one-out mAP on the first session (today);
- ``gcv_sessions``: one λ, Σ_s GCV of each session's own rows (``lambda_search='gcv'``);
- ``gcv_union``: one λ, GCV of the union (G_all, B, Σ counts, Σ n);
- ``gcv_label``: λ per label, each label's own union GCV (the columns' RSS, one shared dof), dof ≤ n/2;
- ``gcv_label_own``: λ per label, each label's GCV on its own session's rows (G_s, B_s);

and the frames compare by the summed per-label GCV, which a learner can compute from statistics too.

    MLCIL_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/default_policy.py --datasets birds,image600 \
        --out benchmarks/results/default_policy/screen.json

    # the tables of benchmarks/results/default_policy/README.md: the screen's candidates side by side, and the
    # sweep of the new default against today's (sweep_today.json, the sweep before issue 27) and `joint`
    python benchmarks/default_policy.py --report
    # analytic with the label memory on the label-absence suite (one seed), against the README's joint
    MLCIL_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/default_policy.py --absence scene,yeast
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from mlcil import ridge
from mlcil.data import load_dataset
from mlcil.learners.analytic.absence import choose_alpha
from mlcil.learners.analytic.lambdas import GCV_GRID, LOO_FLOOR_ROWS
from mlcil.metrics import get_convention
from mlcil.protocols import Protocol
from mlcil.ridge.absence import weighted_solve

GRID = GCV_GRID  # the learner's own GCV grid (points, log10 low, log10 high)
RULES = ("loo_first", "gcv_sessions", "gcv_s80", "gcv_s95", "gcv_union", "gcv_label", "gcv_label_own")
#: the second screen (issue 27, λ rules that keep rcv1's choice): rules computable from what an exemplar-free
#: learner keeps, plus ``loo_union`` (``joint``'s leave-one-out mAP on all rows: an oracle, not exemplar-free)
RULES2 = ("loo_first", "gcv_sessions", "gcv_ge_loo", "geo_loo_gcv", "loo_sessions", "loo_gcv_sessions",
          "gcv_mean", "gcv_rows", "gcv_norm", "gcv_cap_small", "gcv_s80", "loo_cumulative", "loo_union",
          "gcv_ge_loo_1000")
#: ``gcv_ge_loo_1000`` is derived in the report: ``gcv_ge_loo`` where the first session has at least
#: :data:`~mlcil.learners.analytic.lambdas.LOO_FLOOR_ROWS` rows (the learner's λ floor), ``gcv_sessions`` elsewhere

#: sessions with at least this many rows give their own leave-one-out λ in ``loo_gcv_sessions``; smaller ones
#: their GCV minimum
LOO_MIN_ROWS = 200


def protocol_for(L: int, sessions: int = 5) -> str:
    return f"B0-C{max(1, math.ceil(L / sessions))}"


def label_gcv(s: np.ndarray, Q: np.ndarray, yy: np.ndarray, n: float, lambdas: np.ndarray,
              max_dof: float = ridge.GCV_MAX_DOF) -> np.ndarray:
    """Per-label GCV (len(lambdas) × C): RSS_c(λ)/n / (1 − dof(λ)/n)², +inf beyond the dof cap.
    s: eigenvalues of G (D,), Q = VᵀB (D×C), yy: Σ y_c² per label (C,), n rows."""
    s = np.maximum(s, 0.0)
    out = np.empty((len(lambdas), Q.shape[1]))
    Q2 = Q * Q
    for i, lam in enumerate(lambdas):
        dof = float(np.sum(s / (s + lam)))
        if n <= 0 or dof > max_dof * n:
            out[i] = np.inf
            continue
        rss = np.maximum(yy - ((s + 2 * lam) / (s + lam) ** 2) @ Q2, 0.0)
        out[i] = rss / n / (1.0 - dof / n) ** 2
    return out


def argmin_large(curve: np.ndarray, lambdas: np.ndarray) -> float:
    """λ of the curve's minimum (ties and an all-inf curve go to the larger λ)."""
    i = len(curve) - 1 - int(np.argmin(curve[::-1]))
    return float(lambdas[i])


def frame_for(X0, d: int, scaling: str, clip: float | None, M: int, seed: int = 0) -> ridge.FeatureMap:
    include_x = d <= ridge.INCLUDE_X_MAX_FEATURES
    shift, scale = ridge.fit_scaling(X0, scaling)
    return ridge.FeatureMap(ridge.gaussian_projection(d, M, seed), scaling, shift, scale, include_x, clip)


def screen(stream, fmap: ridge.FeatureMap, loo_rows: int = 2000) -> dict:
    """Every λ rule's last mAP on one stream and frame, and the frame's summed per-label GCV."""
    conv = get_convention("mlcil")
    G_all, Bs, yys, ns, own = None, [], [], [], []
    first_loo = None
    for t, session in enumerate(stream):
        st = ridge.partial_statistics(fmap, session.X, session.Y)
        G_all = st.G.copy() if G_all is None else G_all + st.G
        Bs.append(st.B)
        Yf = np.asarray(session.Y, dtype=np.float64)
        yys.append(Yf.sum(axis=0))
        ns.append(float(session.n))
        own.append((st.G, st.B, Yf.sum(axis=0), float(session.n)))
        if t == 0:
            rng = np.random.default_rng(7919 * 0 + 0)
            sub = np.sort(rng.permutation(session.n)[:loo_rows])
            first_loo = (st.G, st.B, fmap(session.X[sub]), Yf[sub])
    grid = ridge.lambda_grid(own[0][0], *GRID)
    B = np.concatenate(Bs, axis=1)
    yy_all = np.concatenate([np.r_[y, np.zeros(0)] for y in yys])  # positives per label (absent rows are 0s)
    n_all = float(sum(ns))
    s, V = ridge.eigh(G_all)
    Q = V.T @ B
    lam = {}
    # today: LOO mAP on the first session
    G0, B0, phi0, Y0 = first_loo
    lam["loo_first"], _ = ridge.choose_lambda(G0, B0, phi0, Y0, ridge.lambda_grid(G0, 13))
    # Σ_s GCV of each session's own rows
    total = np.zeros(len(grid))
    caps = {0.8: np.zeros(len(grid)), 0.95: np.zeros(len(grid))}
    label_own = []
    for G_s, B_s, yy_s, n_s in own:
        s_s, V_s = ridge.eigh(G_s)
        Q_s = V_s.T @ B_s
        curves = label_gcv(s_s, Q_s, yy_s, n_s, grid)  # grid × C_s
        summed = curves.sum(axis=1)
        total += summed if np.isfinite(summed).any() else 0.0
        for cap in caps:
            summed = label_gcv(s_s, Q_s, yy_s, n_s, grid, cap).sum(axis=1)
            caps[cap] += summed if np.isfinite(summed).any() else 0.0
        label_own += [argmin_large(curves[:, c], grid) for c in range(curves.shape[1])]
    lam["gcv_sessions"] = argmin_large(total, grid)
    lam["gcv_s80"], lam["gcv_s95"] = argmin_large(caps[0.8], grid), argmin_large(caps[0.95], grid)
    curves = label_gcv(s, Q, yy_all, n_all, grid)
    lam["gcv_union"] = argmin_large(curves.sum(axis=1), grid)
    lam["gcv_label"] = np.array([argmin_large(curves[:, c], grid) for c in range(curves.shape[1])])
    lam["gcv_label_own"] = np.array(label_own)
    finite = curves[np.isfinite(curves).all(axis=1)]
    frame_gcv = float(finite.min(axis=0).sum()) if len(finite) else float("inf")
    phi_test = fmap(stream.X_test)
    seen = stream.seen_classes(len(stream) - 1)
    rows = stream.test_rows(len(stream) - 1)
    Y_test = stream.Y_test[np.ix_(rows, seen)]
    P = (phi_test[rows].astype(np.float64) @ V)
    out = {"frame_gcv": frame_gcv, "D": int(fmap.D)}
    for rule, l in lam.items():
        l = np.broadcast_to(np.asarray(l, dtype=np.float64), (B.shape[1],))
        S = P @ (Q / (np.maximum(s, 0)[:, None] + l[None, :]))
        out[rule] = float(conv.mean_average_precision(Y_test, S)[0])
        out[rule + "_lambda"] = float(np.exp(np.mean(np.log(l / grid[12]))))  # geometric mean / mid-grid
    return out


def _finite_or_zero(curve: np.ndarray) -> np.ndarray:
    """A session whose curve has no finite point is no evidence (zeros), as in the learner."""
    return curve if np.isfinite(curve).any() else np.zeros(len(curve))


def screen2(stream, fmap: ridge.FeatureMap, loo_rows: int = 2000) -> dict:
    """The second screen's λ rules (``RULES2``) on one stream and frame: last mAP of the α = 1 solve, and λ."""
    conv = get_convention("mlcil")
    G_all, Bs, sessions, loo_all = None, [], [], []
    for t, session in enumerate(stream):
        st = ridge.partial_statistics(fmap, session.X, session.Y)
        G_all = st.G.copy() if G_all is None else G_all + st.G
        Bs.append(st.B)
        Yf = np.asarray(session.Y, dtype=np.float64)
        sub = np.sort(np.random.default_rng(7919 * 0 + t).permutation(session.n)[:loo_rows])
        phi_sub = fmap(session.X[sub]).astype(np.float64)
        sessions.append((st.G, st.B, Yf, float(session.n), phi_sub, Yf[sub]))
        loo_all.append((t, phi_sub, Yf[sub]))
    G0, B0, _, _, phi0, Y0 = sessions[0]
    grid = ridge.lambda_grid(G0, *GRID)
    lam = {}
    lam["loo_first"], _ = ridge.choose_lambda(G0, B0, phi0, Y0, ridge.lambda_grid(G0, 13))
    total = np.zeros(len(grid))
    curves = {k: np.zeros(len(grid)) for k in ("mean", "rows", "norm", "cap_small", "s80")}
    loo_ev = np.zeros(len(grid))
    per_session, weights = [], []
    # ``loo_cumulative``: each session's leave-one-out mAP of its own classes on its own rows under the system of
    # every session so far (G_1 + … + G_s: what ``lambda_search='sessions'`` scores), weighted by its classes
    cum_ev, G_cum = np.zeros(len(grid)), None
    for G_s, B_s, Y_s, n_s, phi_s, Ysub_s in sessions:
        G_cum = G_s.copy() if G_cum is None else G_cum + G_s
        if len(weights) > 0:  # (the first session's system is its own: scored below, from its eigendecomposition)
            _, maps = ridge.choose_lambda(G_cum, B_s, phi_s, Ysub_s, grid)
            if np.isfinite(maps).any():
                cum_ev += np.nan_to_num(maps, nan=np.nanmin(maps)) * Y_s.shape[1]
        s_s, V_s = ridge.eigh(G_s)
        Q_s = V_s.T @ B_s
        yy_s = (Y_s ** 2).sum(axis=0)
        C_s = Y_s.shape[1]
        lab = label_gcv(s_s, Q_s, yy_s, n_s, grid)  # grid × C_s, +inf beyond the dof cap n/2
        summed = _finite_or_zero(lab.sum(axis=1))
        total += summed
        curves["mean"] += summed / C_s
        curves["rows"] += summed * n_s / C_s
        has = yy_s > 0
        curves["norm"] += _finite_or_zero((lab[:, has] / (yy_s[has] / n_s)).sum(axis=1))
        cap = 0.5 if n_s >= LOO_MIN_ROWS else 0.8
        curves["cap_small"] += _finite_or_zero(label_gcv(s_s, Q_s, yy_s, n_s, grid, cap).sum(axis=1))
        curves["s80"] += _finite_or_zero(label_gcv(s_s, Q_s, yy_s, n_s, grid, 0.8).sum(axis=1))
        _, maps = ridge.choose_lambda(G_s, B_s, phi_s, Ysub_s, grid, eig=(s_s, V_s))
        if np.isfinite(maps).any():
            loo_ev += np.nan_to_num(maps, nan=np.nanmin(maps)) * C_s
            if len(weights) == 0:  # the first session: its own system is the cumulative one
                cum_ev += np.nan_to_num(maps, nan=np.nanmin(maps)) * C_s
        if n_s >= LOO_MIN_ROWS and np.isfinite(maps).any():
            per_session.append(float(grid[int(np.nanargmax(maps))]))
        else:
            per_session.append(argmin_large(summed, grid) if np.isfinite(summed).any() and summed.any()
                               else float(grid[-1]))
        weights.append(C_s)
    lam["gcv_sessions"] = argmin_large(total, grid)
    above = grid >= lam["loo_first"] * (1 - 1e-9)
    lam["gcv_ge_loo"] = float(grid[above][len(grid[above]) - 1 - int(np.argmin(total[above][::-1]))])
    lam["geo_loo_gcv"] = float(np.sqrt(lam["loo_first"] * lam["gcv_sessions"]))
    lam["loo_sessions"] = float(grid[int(np.argmax(loo_ev))])
    lam["loo_cumulative"] = float(grid[int(np.argmax(cum_ev))])
    w = np.asarray(weights, dtype=np.float64)
    lam["loo_gcv_sessions"] = float(np.exp(np.sum(w * np.log(per_session)) / w.sum()))
    for k in ("mean", "rows", "norm", "cap_small", "s80"):
        lam[f"gcv_{k}"] = argmin_large(curves[k], grid)
    B = np.concatenate(Bs, axis=1)
    s, V = ridge.eigh(G_all)
    # joint's rule (oracle): leave-one-out mAP on rows of every session, every class seen (absent labels 0)
    offsets = np.cumsum([0] + [b.shape[1] for b in Bs])
    per = max(1, loo_rows // len(loo_all))
    phis, Ys = [], []
    for t, phi_s, Y_s in loo_all:
        Yu = np.zeros((min(per, len(Y_s)), B.shape[1]))
        Yu[:, offsets[t]:offsets[t + 1]] = Y_s[:per]
        phis.append(phi_s[:per])
        Ys.append(Yu)
    lam["loo_union"], _ = ridge.choose_lambda(G_all, B, np.concatenate(phis), np.concatenate(Ys), grid, eig=(s, V))
    Q = V.T @ B
    phi_test = fmap(stream.X_test)
    seen = stream.seen_classes(len(stream) - 1)
    rows = stream.test_rows(len(stream) - 1)
    Y_test = stream.Y_test[np.ix_(rows, seen)]
    P = phi_test[rows].astype(np.float64) @ V
    out = {"D": int(fmap.D), "n_first": sessions[0][3], "grid_mid": float(grid[12])}
    alphas: dict[float, float] = {}
    X0, Yfirst = stream.sessions[0].X, np.asarray(stream.sessions[0].Y)
    for rule, l in lam.items():
        S = P @ (Q / (np.maximum(s, 0)[:, None] + l))
        out[rule + "_a1"] = float(conv.mean_average_precision(Y_test, S)[0])
        out[rule + "_lambda"] = float(l / grid[12])
        # the real learner's α: chosen on the first session by simulated absence (here at the rule's final λ),
        # then W_s = (α G_all + (1 − α) G_s + λI)⁻¹ B_s per session
        if l not in alphas:
            alphas[l], _ = choose_alpha(fmap, X0, Yfirst, None, l, 0, loo_rows, False)
        a = alphas[l]
        if a == 1.0:
            out[rule] = out[rule + "_a1"]
        else:
            W = np.concatenate([weighted_solve(G_all, G_s, B_s, a, l) for G_s, B_s, *_ in sessions], axis=1)
            out[rule] = float(conv.mean_average_precision(Y_test, phi_test[rows].astype(np.float64) @ W)[0])
        out[rule + "_alpha"] = a
    return out


RESULTS = Path("benchmarks/results/default_policy")


def heldout() -> set[str]:
    """The held-out datasets named in HELDOUT.md's table (chosen before any candidate was measured)."""
    rows = [line.split("|")[1].strip() for line in (RESULTS / "HELDOUT.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| dataset")]
    return {r for r in rows if r and not r.startswith("---")}


def last_map(results: dict, dataset: str, learner: str) -> float:
    cell = results.get(f"{dataset} {learner}", {})
    return 100 * cell["last_mAP"] if "last_mAP" in cell else float("nan")


def report() -> None:
    """Print the candidates' screen and the sweep's goal table (Markdown)."""
    screen = json.loads((RESULTS / "screen.json").read_text())
    print("## Screen: λ rules × frames, last mAP (α = 1 solve, seed 0)\n")
    print("| dataset | frame | M | " + " | ".join(f"`{r}`" for r in RULES) + " | Σ label GCV |")
    print("|---|---|---|" + "---|" * (len(RULES) + 1))
    for key, cell in screen.items():
        name = key.split(" ")[0]
        frame = f"{cell['scaling']}" + (f", clip {cell['clip']}" if cell.get("clip") else "")
        print(f"| {name} | {frame} | {cell['M']} | "
              + " | ".join(f"{100 * cell[r]:.1f}" if r in cell else "–" for r in RULES)
              + f" | {cell['frame_gcv']:.4g} |")
    if (RESULTS / "screen2.json").exists():
        second = json.loads((RESULTS / "screen2.json").read_text())
        for cell in second.values():  # derived: the LOO floor only where the first session's LOO has ≥ 1,000 rows
            big = cell["n_first"] >= LOO_FLOOR_ROWS  # (the learner's floor threshold)
            for part in ("", "_lambda", "_alpha"):
                cell["gcv_ge_loo_1000" + part] = cell[("gcv_ge_loo" if big else "gcv_sessions") + part]
        print("\n## Second screen: λ rules that keep rcv1's choice, last mAP (the real learner's frame and α, seed 0)\n")
        print("| dataset | first session rows | frame | " + " | ".join(f"`{r}`" for r in RULES2) + " |")
        print("|---|---|---|" + "---|" * len(RULES2))
        for key, cell in second.items():
            frame = f"{cell['scaling']}" + (f", clip {cell['clip']}" if cell.get("clip") else "")
            print(f"| {key.split(' ')[0]} | {cell['n_first']:.0f} | {frame} | "
                  + " | ".join(f"{100 * cell[r]:.1f}" if r in cell else "–" for r in RULES2) + " |")
        print("\nλ (÷ the grid's middle, 10⁻⁵..10³ × the first session's mean eigenvalue) and α of each rule:\n")
        print("| dataset | " + " | ".join(f"`{r}`" for r in RULES2) + " |")
        print("|---|" + "---|" * len(RULES2))
        for key, cell in second.items():
            print(f"| {key.split(' ')[0]} | " + " | ".join(
                f"{cell[r + '_lambda']:.3g}, α {cell[r + '_alpha']:g}" if r in cell else "–" for r in RULES2) + " |")
    today = json.loads((RESULTS / "sweep_today.json").read_text())
    new = json.loads(Path("benchmarks/results/sweep/sweep.json").read_text())
    held = heldout()
    names = list(dict.fromkeys(v["dataset"] for v in today.values()))
    for title, group in (("Tuning datasets", [n for n in names if n not in held]),
                         ("Held-out datasets", [n for n in names if n in held])):
        print(f"\n## {title}: last mAP, seed 0 (sweep protocol B0-C⌈L/5⌉)\n")
        print("| dataset | today's default | new default | `joint` | new − joint (goal ≥ −1.0) | new − today "
              "(goal ≥ −0.5) | met |")
        print("|---|---|---|---|---|---|---|")
        for name in group:
            t, n, j = (last_map(today, name, "analytic"), last_map(new, name, "analytic"),
                       last_map(today, name, "joint"))
            if new.get(f"{name} analytic", {}).get("policy") != "issue 27":
                print(f"| {name} | {t:.1f} | not re-measured | {j:.1f} | – | – | – |")
                continue
            ok = "yes" if n - j >= -1.0 and n - t >= -0.5 else "**no**"
            print(f"| {name} | {t:.1f} | {n:.1f} | {j:.1f} | {n - j:+.1f} | {n - t:+.1f} | {ok} |")


def absence(names: list[str]) -> None:
    """One seed of ``analytic:memory=labels`` and ``analytic`` (defaults) on benchmarks/accuracy.py's label-absence
    suite (field protocol); prints one JSON line per dataset (last mAP, %)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from accuracy import SUITE

    from mlcil.bench import BenchConfig, run_benchmark

    for name, protocol, n_classes, _ in SUITE:
        if names and name not in names:
            continue
        rep = run_benchmark(load_dataset(name), BenchConfig(protocol=protocol, learners=("analytic:memory=labels",
                                                                                        "analytic"),
                                                            seeds=(0,), n_classes=n_classes), progress=False)
        print(json.dumps({"dataset": name, "protocol": protocol,
                          **{r["learner"]: 100 * r["summary"]["last_mAP"] for r in rep["runs"]}}), flush=True)


def merge(paths: list[Path]) -> None:
    """Write benchmarks/results/sweep/sweep.{json,md}: today's sweep (sweep_today.json) with the `analytic` cells
    replaced by the new default's from the given sweep.json files (later files win); an `analytic` cell not
    re-measured keeps today's numbers and says so (``"policy": "before issue 27"``)."""
    today = json.loads((RESULTS / "sweep_today.json").read_text())
    merged = {k: dict(v) for k, v in today.items()}
    for key, cell in merged.items():
        if cell.get("learner") == "analytic":
            cell["policy"] = "before issue 27"
    for path in paths:
        for key, cell in json.loads(path.read_text()).items():
            name = cell.get("dataset", key.split(" ")[0])
            if f"{name} analytic" not in today and f"{name}@minilm analytic" in today:
                # a raw-text set swept by its raw name (embedded with minilm in the cell) where today's sweep
                # named the embedded set: one row per dataset
                name = f"{name}@minilm"
                key, cell = f"{name} {cell['learner']}", {**cell, "dataset": name}
            if cell.get("learner") == "analytic" and "last_mAP" in cell and cell != today.get(key):
                merged[key] = {**cell, "policy": "issue 27"}
    out = Path("benchmarks/results/sweep")
    (out / "sweep.json").write_text(json.dumps(merged, indent=1))
    learners = ["analytic", "joint", "prototype", "finetune"]
    lines = ["| dataset | n | d | L | protocol | " + " | ".join(f"`{l}` last mAP · s · GB" for l in learners) + " |",
             "|" + "---|" * (5 + len(learners))]
    for name in dict.fromkeys(v["dataset"] for v in merged.values()):
        cells, info = [], None
        for l in learners:
            c = merged.get(f"{name} {l}")
            if c is None or "last_mAP" not in c:
                cells.append("–" if c is None else f"fails: {c.get('error', '')[:60]}")
                continue
            info = info or c
            old = "¹" if c.get("policy") == "before issue 27" else ""
            cells.append(f"{100 * c['last_mAP']:.1f}{old} · {c['wall_s']:.0f} · {c['peak_rss_bytes'] / 1e9:.1f}")
        proto = next((merged[f"{name} {l}"]["protocol"] for l in learners if f"{name} {l}" in merged), "")
        lines.append(f"| {name} | {info['n']:,} | {info['d']} | {info['L']} | {proto} | " + " | ".join(cells) + " |")
    stale = sorted(c["dataset"] for c in merged.values()
                   if c.get("learner") == "analytic" and c.get("policy") == "before issue 27")
    lines += [""]
    if stale:
        lines += [f"¹ `analytic` with the defaults before issue 27 (`lambda_search='first'`, `clip=None`): not "
                  f"re-measured with the new default ({', '.join(stale)})."]
    lines += ["Seconds of re-measured `analytic` cells were taken on a shared 2-core machine at load 1–12: compare "
              "them only within one run."]
    (out / "sweep.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="print the tables from the saved results")
    parser.add_argument("--merge", nargs="+", type=Path, help="sweep.json files of the new default to merge in")
    parser.add_argument("--absence", nargs="?", const="", help="the label-absence suite (comma-separated subset)")
    parser.add_argument("--datasets", default="")
    parser.add_argument("--frames", default="standardize,standardize:3,l2,none",
                        help="scaling[:clip] list; 'standardize' means 'scale' for sparse input; 'auto': the scaling and "
                             "clip that Analytic() chooses on the first session")
    parser.add_argument("--M", default="2048", help="comma-separated M values, or 'n' (M follows the first session)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default screen.json, or screen2.json with --second)")
    parser.add_argument("--second", action="store_true",
                        help="the second screen's rules (RULES2: λ rules that keep rcv1's choice)")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge)
        return
    if args.absence is not None:
        absence([n for n in args.absence.split(",") if n])
        return
    if args.report:
        report()
        return
    args.out = args.out or RESULTS / ("screen2.json" if args.second else "screen.json")
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    rules = RULES2 if args.second else RULES
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        stream = Protocol(protocol_for(ds.L), seed=0).build(ds)
        X0 = stream.sessions[0].X
        sparse = ridge.features.sp.issparse(X0)
        for frame in args.frames.split(","):
            scaling, _, clip = frame.partition(":")
            if scaling == "auto":  # the real learner's frame: Analytic() on the first session (scaling and clip 'auto')
                from mlcil import Analytic

                first = Analytic().learn(stream.sessions[0].X, stream.sessions[0].Y)
                scaling, clip = first.scaling_, ("" if first.clip_ is None else str(first.clip_))
            if scaling == "standardize" and sparse:
                scaling = "scale"
            for M in args.M.split(","):
                M_val = int(M) if M != "n" else m_for_rows(stream.sessions[0].n)
                start = time.perf_counter()
                fmap = frame_for(X0, ds.d, scaling, float(clip) if clip else None, M_val)
                cell = (screen2 if args.second else screen)(stream, fmap)
                cell.update(seconds=time.perf_counter() - start, M=M_val, scaling=scaling, clip=clip or None)
                key = f"{name} {scaling}:{clip or '-'} M={M}"
                results[key] = cell
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=1))
                print(key, " ".join(f"{r}={100 * cell[r]:.1f}" for r in rules if r in cell),
                      f"({cell['seconds']:.0f}s)", flush=True)


def m_for_rows(n: int) -> int:
    """M that follows the first session's rows: the power of two ≥ 2n, between 256 and 2048."""
    return int(min(2048, max(256, 2 ** math.ceil(math.log2(max(2 * n, 1))))))


if __name__ == "__main__":
    main()
