"""A newcomer's first real-text run, end to end on a clean cache: the README's second set-up command.

Runs the command (``mlcil bench <dataset> ...`` on raw text: loading, embedding with the default
text encoder, every learner and seed, the report) in a fresh process with an empty ``MLCIL_CACHE``,
and records its wall-clock seconds, the embedding's own seconds and texts/s (the line that
``mlcil bench`` prints after embedding), the machine (cores, load average before and after) and
the encoder id. The ``pip install`` part of the README line is not timed.

    MLCIL_DATA=../shared/data python benchmarks/first_run.py
    MLCIL_DATA=../shared/data python benchmarks/first_run.py --command "mlcil bench reuters21578 -p B0-C18 -l analytic"

Writes benchmarks/results/first_run.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = "mlcil bench hoc --protocol B0-C2 --learners joint,analytic,prototype --n-seeds 3"
"""The README's second set-up command (after ``pip install -e ".[text]"``)."""


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--command", default=COMMAND)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/first_run"))
    parser.add_argument("--limit-s", type=float, default=600.0, help="the goal, in seconds")
    args = parser.parse_args(argv)

    argv_ = shlex.split(args.command)
    if argv_[0] == "mlcil":  # the installed console script, or this interpreter's module
        argv_ = [shutil.which("mlcil") or sys.executable, *argv_[1:]] if shutil.which("mlcil") else \
            [sys.executable, "-m", "mlcil", *argv_[1:]]
    with tempfile.TemporaryDirectory(prefix="mlcil-first-run-") as tmp:
        env = {**os.environ, "MLCIL_CACHE": str(Path(tmp) / "cache"), "PYTHONUNBUFFERED": "1"}
        load_before = os.getloadavg()
        started = time.perf_counter()
        proc = subprocess.run([*argv_, "--out", str(Path(tmp) / "report")], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        load_after = os.getloadavg()
        report = json.loads((Path(tmp) / "report" / "report.json").read_text()) if proc.returncode == 0 else None
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"the command failed with exit code {proc.returncode}")
    embedded = re.search(r"embedded ([\d,]+) inputs in (\d+) s \(([\d.]+) texts/s\)", proc.stderr)
    texts, embed_s, rate = (int(embedded[1].replace(",", "")), float(embedded[2]), float(embedded[3])) \
        if embedded else (None, None, None)
    versions = report["versions"] if report else {}
    result = {
        "command": args.command, "seconds": seconds, "limit_s": args.limit_s, "within_limit": seconds <= args.limit_s,
        "texts_embedded": texts, "embed_s": embed_s, "texts_per_s": rate,
        "bench_s": report["wall_s"] if report else None,
        "summary": {k: {m: 100 * v[m]["mean"] for m in ("avg_mAP", "last_mAP")} for k, v in report["summary"].items()},
        "machine": {"cores": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor(),
                    "load_average_before": round(load_before[0], 2), "load_average_after": round(load_after[0], 2),
                    "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}},
        "versions": versions,
        "stderr_tail": proc.stderr.strip().splitlines()[-5:],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    m = result["machine"]
    md = [f"`{args.command}` on a clean cache (`MLCIL_CACHE` empty; the `pip install` not timed):", "",
          "| wall s | goal s | texts embedded | embedding s | texts/s | benchmark s | cores | load average before / after |",
          "|---|---|---|---|---|---|---|---|",
          f"| {seconds:.0f} | {args.limit_s:.0f} | {texts if texts is not None else '?'} | "
          f"{embed_s if embed_s is not None else '?'} | {rate if rate is not None else '?'} | "
          f"{result['bench_s']:.0f} | {m['cores']} | {m['load_average_before']} / {m['load_average_after']} |", "",
          "The load average counts every process on the machine: above the core count, other work shared the cores "
          "and the times are longer than on an idle machine.", "",
          "| learner | avg mAP | last mAP |", "|---|---|---|"]
    md += [f"| `{k}` | {v['avg_mAP']:.1f} | {v['last_mAP']:.1f} |" for k, v in result["summary"].items()]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
