"""Run learners over a protocol and seeds, measuring the field's metrics after every session."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mlcil.data.dataset import Dataset
from mlcil.decide.thresholds import top_k
from mlcil.engines import resolve_engine
from mlcil.errors import MlcilError
from mlcil.learners.base import Learner
from mlcil.learners.calibrated import Calibrated
from mlcil.learners.factory import make_learner
from mlcil.metrics import (CONVENTIONS, DEFAULT_CONVENTION, FIELD_THRESHOLD, MetricConvention, average_precision,
                           decide_threshold, expected_calibration_error, forgetting, get_convention)
from mlcil.protocols import Protocol, Stream
from mlcil.version import __version__


@dataclass
class BenchConfig:
    """What to run: the protocol's parameters, the learners, the seeds, the threshold and the metric convention."""

    protocol: str = "B0-C10"
    learners: tuple[str, ...] = ("joint", "analytic")  # closed form: no torch needed
    seeds: tuple[int, ...] = (0, 1, 2)
    order: str = "alphabetical"
    n_classes: int | None = None
    few_shot: int | None = None
    test_size: float = 0.3
    threshold: float = FIELD_THRESHOLD
    device: str = "cpu"
    calibration: str | None = None  # None: each learner's own; 'platt'/'isotonic': held-out (or LOO) calibration
    holdout: float = 0.2  # fraction of each session held out to calibrate learners without LOO calibration
    top_k: int | None = None  # None: k = label cardinality of the training sessions so far, rounded
    metrics: str = DEFAULT_CONVENTION  # the convention tables show (mlcil.metrics.conventions); every one is stored
    engine: Any = None  # where additive learners accumulate: None/'local', 'ray' or an mlcil.engines.Engine
    campaign: str = "field"  # 'field' (the field's protocol) or 'disjoint' (the campaign protocol)


def make_bench_learner(spec: str, seed: int, config: BenchConfig) -> Learner:
    """The learner of ``spec``; with ``config.calibration`` set, calibrated on leave-one-out scores
    (the Analytic family) or wrapped in :class:`Calibrated` (held-out rows of each session)."""
    learner = make_learner(spec, seed=seed, device=config.device)
    if config.calibration is None:
        return learner
    if "calibration" in learner.get_params():
        return learner.set_params(calibration=config.calibration)
    return Calibrated(learner, method=config.calibration, holdout=config.holdout, seed=seed)


def example_memory_bytes(learner: Learner) -> int:
    """Bytes the learner keeps per example seen: an exemplar buffer (``buffer_bytes``: inputs and labels)
    or a label memory (``memory_bytes``: digests and label bits, no inputs); 0 for learners that keep neither."""
    for attr in ("memory_bytes", "buffer_bytes"):
        value = getattr(learner, attr, None)
        if value is not None:
            return int(value)
    inner = getattr(learner, "base", None)  # wrappers such as Calibrated
    return example_memory_bytes(inner) if isinstance(inner, Learner) else 0


def evaluate_session(learner: Learner, stream: Stream, t: int, threshold: float,
                     k: int = 1, convention: str | MetricConvention = DEFAULT_CONVENTION) -> tuple[dict, np.ndarray]:
    """Metrics after session t, and per-class AP on the full fixed test set (for forgetting).

    mAP, ECE and the F1 family use the protocol's test set after t (test examples with a seen
    class, scored on the seen classes); the returned AP vector covers every test example and
    is always mlcil's order-free AP (forgetting is mlcil's measure whatever the convention).
    Decisions three ways: the global ``threshold`` (CF1, OF1; ``p > threshold`` or ``>=`` as
    the convention says), the learner's tuned per-class ``thresholds_`` where it has them
    (CF1_tuned, OF1_tuned; NaN otherwise; always ``>=``, the rule they were tuned for), and
    top-``k``; the F1 family of all three, and mAP, follow ``convention``
    (:mod:`mlcil.metrics.conventions`). ``metrics["conventions"]`` holds mAP and the F1 family
    at the global threshold under *every* registered convention, so that a report can be read
    either way.
    """
    conv = get_convention(convention)
    seen = stream.seen_classes(t)
    classes = learner.classes_
    if set(classes.tolist()) != set(seen.tolist()):
        raise MlcilError(f"{learner.name}: after session {t} knows classes {classes.tolist()}, expected {seen.tolist()}")
    start = time.perf_counter()
    S = learner.scores(stream.X_test)
    predict_s = time.perf_counter() - start
    P = learner.proba(stream.X_test)
    Y = stream.Y_test[:, classes]
    rows = stream.test_rows(t)
    Yr, Sr, Pr = Y[rows], S[rows], P[rows]
    by_convention = {name: {"mAP": c.mean_average_precision(Yr, Sr)[0], **c.threshold_metrics(Yr, c.decide(Pr, threshold))}
                     for name, c in CONVENTIONS.items()}
    mAP, no_positive = conv.mean_average_precision(Yr, Sr)
    f1 = conv.threshold_metrics(Yr, conv.decide(Pr, threshold))
    tuned = getattr(learner, "thresholds_", None)
    nan = float("nan")
    f1_tuned = conv.threshold_metrics(Yr, decide_threshold(Pr, tuned)) if tuned is not None else {}
    f1_top = conv.threshold_metrics(Yr, top_k(Sr, k))
    excluded = no_positive if conv.no_positive == "exclude" else np.zeros(0, dtype=np.int64)
    metrics = {
        "t": t, "n_test": int(len(rows)), "mAP": float(mAP), **{m: float(v) for m, v in f1.items()},
        "ECE": expected_calibration_error(Yr, Pr),
        "CF1_tuned": f1_tuned.get("CF1", nan), "OF1_tuned": f1_tuned.get("OF1", nan),
        "CF1_topk": f1_top["CF1"], "OF1_topk": f1_top["OF1"], "k": int(k),
        "excluded_classes": classes[excluded].tolist(),
        "no_positive_classes": classes[no_positive].tolist(),
        "conventions": by_convention,
        "predict_ms_per_1k": 1000.0 * predict_s / max(len(stream.Y_test), 1) * 1000.0,
        "state_bytes": int(learner.state_bytes),
        "memory_bytes": example_memory_bytes(learner),
    }
    return metrics, average_precision(Y, S)


def run_learner(spec: str, stream: Stream, seed: int, config: BenchConfig, progress=None) -> dict:
    """One learner through every session of one stream; returns its run record."""
    learner = make_bench_learner(spec, seed, config)
    position = {c: i for i, c in enumerate(stream.class_order.tolist())}
    history = np.full((len(stream), len(stream.class_order)), np.nan)
    sessions = []
    seen_rows: set[int] = set()
    n_positive = 0
    for t, session in enumerate(stream):
        data = stream.joint_session(t) if learner.needs_full_labels else session
        start = time.perf_counter()
        learner.learn(data, engine=config.engine)
        learn_s = time.perf_counter() - start
        seen_rows.update(session.index.tolist())
        n_positive += int(np.count_nonzero(session.Y))
        k = config.top_k or max(1, int(round(n_positive / max(len(seen_rows), 1))))
        metrics, ap_full = evaluate_session(learner, stream, t, config.threshold, k, config.metrics)
        metrics.update(classes=session.classes.tolist(), n_train=int(data.n), learn_s=learn_s)
        sessions.append(metrics)
        history[t, [position[c] for c in learner.classes_.tolist()]] = ap_full
        if progress is not None:
            # sessions count from 1, as in the report's tables (t=1 is the first session)
            progress.set_postfix_str(f"{spec} seed={seed} t={t + 1}/{len(stream)} mAP={100 * metrics['mAP']:.1f}")
            progress.update(1)
    last = stream.sessions[-1].classes
    summary = {
        "avg_mAP": float(np.mean([s["mAP"] for s in sessions])),
        "last_mAP": sessions[-1]["mAP"],
        "last_CF1": sessions[-1]["CF1"],
        "last_OF1": sessions[-1]["OF1"],
        "last_CF1_tuned": sessions[-1]["CF1_tuned"],
        "last_OF1_tuned": sessions[-1]["OF1_tuned"],
        "last_CF1_topk": sessions[-1]["CF1_topk"],
        "last_OF1_topk": sessions[-1]["OF1_topk"],
        "last_ECE": sessions[-1]["ECE"],
        "forgetting": float(forgetting(history, np.array([position[c] for c in last.tolist()]))),
        "learn_s": float(sum(s["learn_s"] for s in sessions)),
        "state_bytes": sessions[-1]["state_bytes"],
        "conventions": {name: {"avg_mAP": float(np.mean([s["conventions"][name]["mAP"] for s in sessions])),
                               **{f"last_{m}": v for m, v in sessions[-1]["conventions"][name].items()}}
                        for name in CONVENTIONS},
        "memory_bytes": sessions[-1]["memory_bytes"],
    }
    return {"learner": spec, "name": learner.name, "params": learner.get_params(), "seed": seed,
            "sessions": sessions, "ap_history": history.tolist(), "summary": summary}


def summarize(runs: list[dict]) -> dict:
    """Mean and std over seeds of every summary metric, per learner spec (in run order).

    NaN values (undefined under the convention, e.g. OF1 when nothing is predicted under
    ``field``; or not applicable, e.g. tuned thresholds of a learner without them) are left
    out of the mean and std; ``n_nan`` counts the seeds they were left out of.
    """
    out: dict[str, dict] = {}
    for spec in dict.fromkeys(r["learner"] for r in runs):
        rows = [r["summary"] for r in runs if r["learner"] == spec]
        out[spec] = {key: _stat([row[key] for row in rows]) for key in rows[0] if key != "conventions"}
        if "conventions" in rows[0]:
            out[spec]["conventions"] = {
                name: {key: _stat([row["conventions"][name][key] for row in rows]) for key in values}
                for name, values in rows[0]["conventions"].items()
            }
        for metric in ("mAP", "ECE"):
            curves = np.array([[s[metric] for s in r["sessions"]] for r in runs if r["learner"] == spec])
            out[spec][f"{metric}_per_session"] = {"mean": curves.mean(axis=0).tolist(),
                                                  "std": curves.std(axis=0).tolist()}
    return out


def _stat(values: list) -> dict:
    """{"mean", "std"} over the finite values (NaN when none), plus "n_nan" when some were NaN."""
    vals = np.array(values, dtype=float)
    finite = np.isfinite(vals)
    stat = {"mean": float(np.mean(vals[finite])) if finite.any() else float("nan"),
            "std": float(np.std(vals[finite])) if finite.any() else float("nan")}
    if not finite.all():
        stat["n_nan"] = int((~finite).sum())
    return stat


def versions() -> dict:
    """Versions of mlcil, Python and the numerical libraries, and the machine, for a report.

    ``torch`` is its version when PyTorch is installed, else None: the harness itself never needs it
    (the closed-form learners run without it), and reading the version does not import it."""
    import scipy
    import sklearn

    return {"mlcil": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "torch": torch_version(), "scikit-learn": sklearn.__version__,
            "machine": f"{platform.system()} {platform.machine()}"}


def torch_version() -> str | None:
    """PyTorch's version: from the loaded module when something imported it, else from the installed
    distribution's metadata (no import); None when PyTorch is not installed."""
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch, "__version__", None):
        return str(torch.__version__)
    return _package_version("torch")


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_benchmark(dataset: Dataset, config: BenchConfig, progress: bool = True) -> dict:
    """Every learner × seed on ``dataset`` under ``config.protocol``; returns the report dict."""
    get_convention(config.metrics)  # fail before any learning on an unknown convention
    started = time.time()
    streams = {}
    for seed in config.seeds:
        protocol = Protocol(config.protocol, order=config.order, seed=seed, n_classes=config.n_classes,
                            test_size=config.test_size, few_shot=config.few_shot, campaign=config.campaign)
        streams[seed] = protocol.build(dataset)
    total = sum(len(s) for s in streams.values()) * len(config.learners)
    runs = []
    with tqdm(total=total, desc=f"{dataset.name} {config.protocol}", unit="session", disable=not progress,
              leave=False) as bar:
        for seed, stream in streams.items():
            for spec in config.learners:
                runs.append(run_learner(spec, stream, seed, config, bar))
    first = streams[config.seeds[0]]
    return {
        "dataset": {"name": dataset.name, "n": dataset.n, "d": dataset.d, "L": dataset.L,
                    "cardinality": dataset.cardinality, "path": str(dataset.meta.get("path", ""))},
        "protocol": {"spec": config.protocol, "order": config.order, "n_sessions": len(first),
                     "n_classes": len(first.class_order), "n_train": int(len(first.train_index)),
                     "n_test": int(len(first.test_index)), "official_split": first.info["official_split"],
                     "few_shot": config.few_shot, "campaign": config.campaign,
                     "n_rows": int(sum(s.n for s in first)), "class_order": [first.label_names[c] for c in first.class_order]},
        "config": {"learners": list(config.learners), "seeds": list(config.seeds), "threshold": config.threshold,
                   "device": config.device, "test_size": config.test_size, "calibration": config.calibration,
                   "holdout": config.holdout, "top_k": config.top_k, "metrics": config.metrics,
                   "engine": resolve_engine(config.engine).describe()},
        "versions": versions(),
        "wall_s": time.time() - started,
        "runs": runs,
        "summary": summarize(runs),
    }
