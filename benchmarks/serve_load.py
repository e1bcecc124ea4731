"""Load test of the tagging service with wrk, side by side with a bare FastAPI endpoint, one run.

    python benchmarks/serve_load.py                       # 30 s per run, 32 connections
    python benchmarks/serve_load.py --seconds 60 --db postgresql://...
    python benchmarks/serve_load.py --baseline /tmp/old/src     # also another source tree, side by side

Starts, one after the other on the same machine (loopback):

1. ``bare``: a FastAPI app whose one endpoint parses the same predict JSON body with pydantic
   (``{"vectors": list[list[float]]}``) and returns a fixed answer (uvicorn, same flags);
2. ``mlcil serve`` on a fresh database (SQLite in a temporary folder unless --db), d = 512,
   M = 1024, 20 labels, --preload examples taught and λ chosen and calibrated before measuring;

and drives each with wrk (--threads threads, --connections connections, Lua scripts for the POST
bodies): bare predict-only, service predict-only (batch 1), service with --teach of the requests
being teaches (batch 1, a new id each), then bare again (the machine is shared: the two bare runs
bracket the load drift). With ``--baseline SRC`` a second ``mlcil serve`` runs from the source tree SRC
(``PYTHONPATH=SRC``, its own fresh database, preloaded alike) and each round measures it right after
this one (predict-only and mixed). Reports requests/s, latency percentiles, non-2xx, the predict rate of the
mixed run (counted by the Lua script from the replies) and the ratios the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve.helpers import free_port, start_server, stop  # noqa: E402

BARE = '''
from fastapi import FastAPI
from pydantic import BaseModel


class PredictIn(BaseModel):
    vectors: list[list[float]]


app = FastAPI()
FIXED = {"version": 1, "predictions": [{"labels": ["cat"], "proba": {"cat": 0.9}, "scores": {"cat": 1.0}}]}


@app.post("/v1/predict")
async def predict(body: PredictIn) -> dict:
    return FIXED
'''

LUA = r'''
-- bodies: one predict body per line in PREDICT, teach bodies are built with a fresh id each
local predict_bodies = {}
local teach_vectors = {}
for line in io.lines("%(predict)s") do predict_bodies[#predict_bodies + 1] = line end
for line in io.lines("%(teach)s") do teach_vectors[#teach_vectors + 1] = line end
local teach_share = %(teach_share)f
local threads = {}
local counter = 0
tid = 0  -- global: setup() numbers the threads, each thread's copy is set before init()
local prefix = ""

function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end

function init(args)
  predicts, teaches, teach_ok, predict_ok = 0, 0, 0, 0
  math.randomseed(1000 * os.time() + tid)
  prefix = "w" .. os.time() .. "-" .. tid .. "-"  -- a new id for every teach, across runs too
end

function request()
  counter = counter + 1
  if math.random() < teach_share then
    teaches = teaches + 1
    local v = teach_vectors[math.random(#teach_vectors)]
    local body = '{"examples": [{"id": "' .. prefix .. counter .. '", ' .. v .. '}]}'
    return wrk.format("POST", "/v1/teach", {["Content-Type"] = "application/json"}, body)
  end
  predicts = predicts + 1
  return wrk.format("POST", "/v1/predict", {["Content-Type"] = "application/json"},
                    predict_bodies[math.random(#predict_bodies)])
end

function response(status, headers, body)
  if status == 200 then
    if string.find(body, '"ids"', 1, true) then teach_ok = teach_ok + 1 else predict_ok = predict_ok + 1 end
  end
end

function done(summary, latency, requests)
  local p, t, tok, pok = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    p = p + thread:get("predicts"); t = t + thread:get("teaches")
    tok = tok + thread:get("teach_ok"); pok = pok + thread:get("predict_ok")
  end
  io.write(string.format("MLCIL {\"sent_predict\": %%d, \"sent_teach\": %%d, \"ok_teach\": %%d, \"ok_predict\": %%d, " ..
    "\"requests\": %%d, \"seconds\": %%f, \"errors\": %%d, \"p50_ms\": %%f, \"p90_ms\": %%f, \"p99_ms\": %%f, " ..
    "\"max_ms\": %%f}\n", p, t, tok, pok, summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status +
    summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
'''


def write_bodies(folder: Path, d: int, labels: list[str], A: np.ndarray, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    predict, teach = folder / "predict.txt", folder / "teach.txt"
    X = rng.normal(size=(256, d)).astype(np.float32)
    predict.write_text("\n".join(json.dumps({"vectors": [np.round(x, 5).tolist()]}) for x in X) + "\n")
    lines = []
    for x in rng.normal(size=(256, d)).astype(np.float32):
        y = x @ A > 0.8
        lab = {name: int(y[j]) for j, name in enumerate(labels) if rng.random() < 0.6}
        lines.append(json.dumps({"vector": np.round(x, 5).tolist(), "labels": lab})[1:-1])
    teach.write_text("\n".join(lines) + "\n")
    return predict, teach


def wrk(url: str, lua: Path, seconds: float, threads: int, connections: int) -> dict:
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "30s",
                          "-s", str(lua), url], capture_output=True, text=True, check=True).stdout
    stats = json.loads(re.search(r"^MLCIL (\{.*\})$", out, re.M).group(1))
    stats["rps"] = stats["requests"] / stats["seconds"]
    stats["non2xx"] = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    return stats


def preload(url: str, n: int, d: int, labels: list[str], A: np.ndarray) -> int:
    rng = np.random.default_rng(7)
    with httpx.Client(timeout=300) as http:
        for name in labels:
            http.post(url + "/v1/labels", json={"name": name}).raise_for_status()
        version = 0
        for start in range(0, n, 500):
            X = rng.normal(size=(min(500, n - start), d)).astype(np.float32)
            Y = X @ A > 0.8
            body = {"examples": [{"vector": np.round(x, 5).tolist(),
                                  "labels": {nm: int(y[j]) for j, nm in enumerate(labels) if rng.random() < 0.6}}
                                 for x, y in zip(X, Y)]}
            version = http.post(url + "/v1/teach", json=body).raise_for_status().json()["version"]
        http.post(url + "/v1/lambda", json={}).raise_for_status()  # λ by leave-one-out + calibration now
        head = http.get(url + "/v1/health").json()["db_version"]
        http.post(url + "/v1/predict", json={"vectors": [[0.1] * d], "min_version": head}).raise_for_status()
    return version


def loadavg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file in a temp folder)")
    ap.add_argument("--seconds", type=float, default=20.0, help="per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of bare, predict-only, mixed")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--teach", type=float, default=0.1, help="share of teach requests in the mixed run")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--M", type=int, default=1024)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--preload", type=int, default=5000, help="examples taught before measuring")
    ap.add_argument("--workers", type=int, default=1, help="mlcil serve --workers")
    ap.add_argument("--refresh-interval", type=float, default=None, help="mlcil serve --refresh-interval")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="source tree (its src folder) of another mlcil to measure side by side")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_load.md")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name)
    labels = [f"label{j}" for j in range(args.labels)]
    A = np.random.default_rng(1).normal(size=(args.d, args.labels)) / np.sqrt(args.d)
    predict_txt, teach_txt = write_bodies(folder, args.d, labels, A)
    luas = {}
    for name, share in (("predict", 0.0), ("mixed", args.teach)):
        luas[name] = folder / f"{name}.lua"
        luas[name].write_text(LUA % {"predict": predict_txt, "teach": teach_txt, "teach_share": share})
    (folder / "bare_app.py").write_text(BARE)

    rows = []
    port = free_port()
    bare_proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port),
                                  "--log-level", "warning", "--no-access-log"], cwd=folder,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare_url = f"http://127.0.0.1:{port}"
    db = args.db or f"sqlite:///{folder}/load.db"
    extra = [] if args.refresh_interval is None else ["--refresh-interval", str(args.refresh_interval)]
    proc, url = start_server(db, None, "--features", str(args.M), "--workers", str(args.workers), *extra, timeout=300)
    old_proc = old_url = None
    if args.baseline is not None:
        old_db = f"sqlite:///{folder}/baseline.db" if args.db is None else args.db + "_baseline"
        old_proc, old_url = start_server(old_db, None, "--features", str(args.M), "--workers", str(args.workers),
                                         *extra, timeout=300, env={"PYTHONPATH": str(args.baseline.resolve())})
    try:
        for _ in range(300):
            try:
                httpx.post(bare_url + "/v1/predict", json={"vectors": [[0.0]]}, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        preload(url, args.preload, args.d, labels, A)
        if old_url is not None:
            preload(old_url, args.preload, args.d, labels, A)
        for r in range(args.rounds):  # the machine is shared: alternate, so that drift hits every kind alike
            rows.append((f"bare-{r + 1}", "bare FastAPI, predict only", wrk(
                bare_url, luas["predict"], args.seconds, args.threads, args.connections), loadavg()))
            rows.append((f"serve-{r + 1}", "mlcil serve, predict only", wrk(
                url, luas["predict"], args.seconds, args.threads, args.connections), loadavg()))
            if old_url is not None:
                rows.append((f"baseline-{r + 1}", "baseline mlcil serve, predict only", wrk(
                    old_url, luas["predict"], args.seconds, args.threads, args.connections), loadavg()))
            rows.append((f"mixed-{r + 1}", f"mlcil serve, {args.teach:.0%} teach", wrk(
                url, luas["mixed"], args.seconds, args.threads, args.connections), loadavg()))
            if old_url is not None:
                rows.append((f"basemixed-{r + 1}", f"baseline mlcil serve, {args.teach:.0%} teach", wrk(
                    old_url, luas["mixed"], args.seconds, args.threads, args.connections), loadavg()))
        rows.append((f"bare-{args.rounds + 1}", "bare FastAPI, predict only", wrk(
            bare_url, luas["predict"], args.seconds, args.threads, args.connections), loadavg()))
        health = httpx.get(url + "/v1/health", timeout=60).json()
        metrics = httpx.get(url + "/metrics", timeout=60).text
    finally:
        stop(proc)
        if old_proc is not None:
            stop(old_proc)
        bare_proc.terminate()
        bare_proc.wait()

    def total(kind: str, key: str) -> float:
        picked = [s for tag, _, s, _ in rows if tag.startswith(kind)]
        return sum(s[key] for s in picked) / sum(s["seconds"] for s in picked)

    bare = total("bare", "requests")
    serve_rps = total("serve", "requests")
    mixed_predict_rps = total("mixed", "ok_predict")
    mixed = {"p50_ms": float(np.median([s["p50_ms"] for t, _, s, _ in rows if t.startswith("mixed")])),
             "p99_ms": float(np.median([s["p99_ms"] for t, _, s, _ in rows if t.startswith("mixed")])),
             "ok_teach": sum(s["ok_teach"] for t, _, s, _ in rows if t.startswith("mixed"))}
    serve = {"rps": serve_rps,
             "p50_ms": float(np.median([s["p50_ms"] for t, _, s, _ in rows if t.startswith("serve")])),
             "p99_ms": float(np.median([s["p99_ms"] for t, _, s, _ in rows if t.startswith("serve")]))}
    batch_sum = re.search(r"^mlcil_predict_batch_rows_sum (\S+)$", metrics, re.M)
    batch_count = re.search(r"^mlcil_predict_batch_rows_count (\S+)$", metrics, re.M)
    mean_batch = float(batch_sum.group(1)) / max(float(batch_count.group(1)), 1) if batch_sum else float("nan")
    lines = [
        f"# Tagging service load test (wrk, {time.strftime('%Y-%m-%d %H:%M')})", "",
        f"`python benchmarks/serve_load.py {' '.join(sys.argv[1:])}`; "
        f"{platform.node()}, {os.cpu_count()} cores shared with other jobs, {platform.python_version()}; "
        f"database {'SQLite' if db.startswith('sqlite') else 'PostgreSQL'}; d = {args.d}, M = {args.M}, "
        f"{args.labels} labels, {args.preload} examples preloaded; wrk -t{args.threads} -c{args.connections} "
        f"-d{int(args.seconds)}s on the same machine; batch 1.", "",
        "| run | server | requests/s | predict/s | teach/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | "
        "load avg (1/5/15 min) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for tag, what, s, load in rows:
        lines.append(f"| {tag} | {what} | {s['rps']:.0f} | {s['ok_predict'] / s['seconds']:.0f} | "
                     f"{s['ok_teach'] / s['seconds']:.1f} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | "
                     f"{s['p99_ms']:.1f} | {s['max_ms']:.0f} | {s['non2xx'] + s['errors']} | {load} |")
    lines += ["", f"Over the {args.rounds} alternating rounds (requests summed over seconds; latencies: medians of "
                  "the runs' percentiles):", "",
              f"- predict-only rate / bare FastAPI: **{serve['rps'] / bare:.0%}** ({serve['rps']:.0f} vs {bare:.0f} "
              f"requests/s; goal ≥ 50%)",
              f"- predict rate with {args.teach:.0%} teaches / predict-only: **{mixed_predict_rps / serve['rps']:.0%}** "
              f"({mixed_predict_rps:.0f} predictions/s; goal ≥ 70%)",
              f"- mixed runs p99 / p50: **{mixed['p99_ms'] / mixed['p50_ms']:.1f}×** (goal ≤ 10×); "
              f"predict-only p99 / p50: {serve['p99_ms'] / serve['p50_ms']:.1f}×",
              f"- rows per φ(X)ᵀW in the server (micro-batching of concurrent predictions): {mean_batch:.1f} on average",
              f"- teaches acknowledged in the mixed runs: {mixed['ok_teach']}; examples stored after them: "
              f"{health['examples']} = preload {args.preload} + {health['examples'] - args.preload} "
              f"(a teach in flight when wrk stops may be stored unacknowledged); served version "
              f"{health['version']} of {health['db_version']}"]
    if old_url is not None:
        base_rps, base_mixed = total("baseline", "requests"), total("basemixed", "ok_predict")
        lines += [f"- baseline ({args.baseline}): predict-only **{base_rps:.0f}** requests/s, this tree "
                  f"**{serve['rps']:.0f}** ({serve['rps'] / base_rps:.0%} of the baseline); with {args.teach:.0%} "
                  f"teaches {base_mixed:.0f} vs {mixed_predict_rps:.0f} predictions/s "
                  f"({mixed_predict_rps / base_mixed:.0%})"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
