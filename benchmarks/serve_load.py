"""Load test of the tagging service with wrk, side by side with a bare FastAPI endpoint, one run.

    python benchmarks/serve_load.py                       # SQLite (+ PostgreSQL at $MLCIL_TEST_POSTGRES_URL)
    eval "$(.ci/postgres.sh)"; python benchmarks/serve_load.py --seconds 15 --rounds 2
    python benchmarks/serve_load.py --baseline /tmp/old/src     # also another source tree, side by side
    python benchmarks/serve_load.py --baseline /tmp/old/src --baseline-db postgresql --no-sqlite   # both on PostgreSQL

Starts, one after the other on the same machine (loopback):

1. ``bare``: a FastAPI app whose one endpoint parses the same predict JSON body with pydantic
   (``{"vectors": list[list[float]]}``) and returns a fixed answer (uvicorn, same flags);
2. ``mlcil serve`` on a fresh database (SQLite in a temporary folder unless --db), d = 512,
   M = 1024, 20 labels, --preload examples taught and λ chosen and calibrated before measuring;
   and a second one on PostgreSQL (--postgres URL or $MLCIL_TEST_POSTGRES_URL: a fresh schema,
   dropped at the end), preloaded alike;

and drives each with wrk (--threads threads, --connections connections, Lua scripts for the POST
bodies): bare predict-only, service predict-only (batch 1), service with --teach of the requests
being teaches (batch 1, a new id each), then bare again (the machine is shared: the two bare runs
bracket the load drift). With ``--baseline SRC`` a second ``mlcil serve`` runs from the source tree SRC
(``PYTHONPATH=SRC``, its own fresh database, preloaded alike) and each round measures it right after
this one (predict-only and mixed), on SQLite or (``--baseline-db postgresql``) on a fresh PostgreSQL schema of its
own; ``--no-sqlite`` leaves the SQLite server out (PostgreSQL only). Reports requests/s, latency percentiles, non-2xx, the predict rate of the
mixed run (counted by the Lua script from the replies) and the ratios the issue asks for, per server, to
--out (Markdown) and the .json beside it. Everything listens on 127.0.0.1; every wrk run has a
duration and the servers are stopped (and the schema dropped) whatever happens.
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


def post(http: httpx.Client, url: str, body: dict) -> httpx.Response:
    """POST, retried on a dropped keep-alive connection (every body here is safe to re-send: ids are given)."""
    for attempt in range(3):
        try:
            return http.post(url, json=body)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            if attempt == 2:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def preload(url: str, n: int, d: int, labels: list[str], A: np.ndarray) -> int:
    rng = np.random.default_rng(7)
    with httpx.Client(timeout=300) as http:
        for name in labels:
            r = post(http, url + "/v1/labels", {"name": name})
            if r.status_code != 409:  # 409: created by the first try of a retried request
                r.raise_for_status()
        version = 0
        for start in range(0, n, 500):
            X = rng.normal(size=(min(500, n - start), d)).astype(np.float32)
            Y = X @ A > 0.8
            body = {"examples": [{"id": f"pre{start + i}", "vector": np.round(x, 5).tolist(),
                                  "labels": {nm: int(y[j]) for j, nm in enumerate(labels) if rng.random() < 0.6}}
                                 for i, (x, y) in enumerate(zip(X, Y))]}
            version = post(http, url + "/v1/teach", body).raise_for_status().json()["version"]
        http.post(url + "/v1/lambda", json={}).raise_for_status()  # λ by leave-one-out + calibration now
        head = http.get(url + "/v1/health").json()["db_version"]
        for _ in range(10):  # the served model reaches the preload (a busy machine may need more than one 30 s wait)
            if post(http, url + "/v1/predict", {"vectors": [[0.1] * d], "min_version": head}).status_code == 200:
                break
        else:
            raise RuntimeError(f"{url} did not serve version {head} within 300 s")
    return version


def loadavg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def fresh_schema(url: str) -> tuple[str, str]:
    """(URL whose search_path is a new schema, schema name) on the PostgreSQL server at ``url``."""
    import uuid

    import psycopg

    schema = "load_" + uuid.uuid4().hex[:10]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}", schema


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def route_seconds(metrics: str, route: str) -> dict:
    """Server-side time of one route over every run (the ``mlcil_request_seconds`` histogram): count, mean ms, and
    the bucket bound at or under which 50, 90, 99 % of its requests finished (ms; inf above the last bucket)."""
    pattern = r'^mlcil_request_seconds_(bucket|sum|count)\{(?:le="([^"]+)",)?route="%s"(?:,le="([^"]+)")?\} (\S+)$'
    buckets, total, count = [], 0.0, 0.0
    for kind, le1, le2, value in re.findall(pattern % re.escape(route), metrics, re.M):
        if kind == "bucket":
            buckets.append((float(le1 or le2), float(value)))
        elif kind == "sum":
            total = float(value)
        else:
            count = float(value)
    out = {"count": int(count), "mean_ms": 1e3 * total / count if count else float("nan")}
    for q in (50, 90, 99):
        out[f"p{q}_le_ms"] = next((1e3 * le for le, c in sorted(buckets) if count and c >= q / 100 * count),
                                  float("nan"))
    return out


def summary(rows: list, kind: str, teach: float) -> dict:
    """Rates and latencies of one server over the rounds: predict-only and mixed."""
    def total(tag: str, key: str) -> float:
        picked = [s for t, _, s, _ in rows if t.startswith(tag + "-")]
        return sum(s[key] for s in picked) / sum(s["seconds"] for s in picked)

    def median(tag: str, key: str) -> float:
        return float(np.median([s[key] for t, _, s, _ in rows if t.startswith(tag + "-")]))

    out = {"predict_only_rps": total(f"{kind}", "requests"), "mixed_predict_rps": total(f"{kind}mixed", "ok_predict"),
           "mixed_teach_rps": total(f"{kind}mixed", "ok_teach"),
           "predict_only_p50_ms": median(kind, "p50_ms"), "predict_only_p99_ms": median(kind, "p99_ms"),
           "mixed_p50_ms": median(f"{kind}mixed", "p50_ms"), "mixed_p99_ms": median(f"{kind}mixed", "p99_ms"),
           "non2xx": sum(s["non2xx"] + s["errors"] for t, _, s, _ in rows if t.startswith((kind + "-", kind + "mixed-")))}
    out["mixed_over_predict_only"] = out["mixed_predict_rps"] / out["predict_only_rps"]
    out["mixed_p99_over_p50"] = out["mixed_p99_ms"] / out["mixed_p50_ms"]
    out["goal_met"] = bool(out["mixed_over_predict_only"] >= 0.7 and out["mixed_p99_over_p50"] <= 10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None, help="database URL of the first server (default: a fresh SQLite file)")
    ap.add_argument("--postgres", default=os.environ.get("MLCIL_TEST_POSTGRES_URL"),
                    help="also measure a server on this PostgreSQL (a fresh schema, dropped afterwards; default "
                         "$MLCIL_TEST_POSTGRES_URL; 'none' = SQLite only)")
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
    ap.add_argument("--baseline-db", choices=("sqlite", "postgresql"), default="sqlite",
                    help="the baseline's database (postgresql: a fresh schema at --postgres)")
    ap.add_argument("--no-sqlite", action="store_true", help="no SQLite server (only --postgres and --baseline)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_load.md",
                    help="Markdown report; the same numbers go to the .json beside it")
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
    bare_proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1",
                                  "--port", str(port), "--log-level", "warning", "--no-access-log"], cwd=folder,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare_url = f"http://127.0.0.1:{port}"
    extra = [] if args.refresh_interval is None else ["--refresh-interval", str(args.refresh_interval)]
    # (kind, what, database URL, extra environment)
    servers = [] if args.no_sqlite else [
        ("sqlite" if args.db is None or args.db.startswith("sqlite") else "serve",
         "mlcil serve (SQLite)" if args.db is None or args.db.startswith("sqlite") else "mlcil serve",
         args.db or f"sqlite:///{folder}/load.db", None)]
    schemas = []
    use_pg = bool(args.postgres and args.postgres != "none")
    if args.baseline_db == "postgresql" and not use_pg:
        sys.exit("--baseline-db postgresql needs --postgres (or $MLCIL_TEST_POSTGRES_URL)")
    if use_pg:
        pg_url, schema = fresh_schema(args.postgres)
        schemas.append(schema)
        servers.append(("postgresql", "mlcil serve (PostgreSQL)", pg_url, None))
    if args.baseline is not None:
        if args.baseline_db == "postgresql":
            base_db, schema = fresh_schema(args.postgres)
            schemas.append(schema)
        else:
            base_db = f"sqlite:///{folder}/baseline.db"
        servers.append(("baseline", f"baseline {args.baseline} "
                                    f"({'PostgreSQL' if args.baseline_db == 'postgresql' else 'SQLite'})", base_db,
                        {"PYTHONPATH": str(args.baseline.resolve())}))
    if not servers:
        sys.exit("no server to measure (--no-sqlite without --postgres or --baseline)")
    procs, urls = [], {}
    try:
        for kind, _, db, env in servers:
            proc, url = start_server(db, None, "--features", str(args.M), "--workers", str(args.workers), *extra,
                                     timeout=300, env=env)
            procs.append(proc)
            urls[kind] = url
        for _ in range(300):
            try:
                httpx.post(bare_url + "/v1/predict", json={"vectors": [[0.0]]}, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        for kind in urls:
            preload(urls[kind], args.preload, args.d, labels, A)
        for r in range(args.rounds):  # the machine is shared: alternate, so that drift hits every kind alike
            rows.append((f"bare-{r + 1}", "bare FastAPI, predict only", wrk(
                bare_url, luas["predict"], args.seconds, args.threads, args.connections), loadavg()))
            for kind, what, _, _ in servers:
                rows.append((f"{kind}-{r + 1}", f"{what}, predict only", wrk(
                    urls[kind], luas["predict"], args.seconds, args.threads, args.connections), loadavg()))
                rows.append((f"{kind}mixed-{r + 1}", f"{what}, {args.teach:.0%} teach", wrk(
                    urls[kind], luas["mixed"], args.seconds, args.threads, args.connections), loadavg()))
        rows.append((f"bare-{args.rounds + 1}", "bare FastAPI, predict only", wrk(
            bare_url, luas["predict"], args.seconds, args.threads, args.connections), loadavg()))
        health = {kind: httpx.get(url + "/v1/health", timeout=60).json() for kind, url in urls.items()}
        metrics = {kind: httpx.get(url + "/metrics", timeout=60).text for kind, url in urls.items()}
    finally:
        for proc in procs:
            stop(proc)
        bare_proc.terminate()
        bare_proc.wait()
        for schema in schemas:
            drop_schema(args.postgres, schema)

    picked = [s for t, _, s, _ in rows if t.startswith("bare-")]
    bare = sum(s["requests"] for s in picked) / sum(s["seconds"] for s in picked)
    result = {"command": f"python benchmarks/serve_load.py {' '.join(sys.argv[1:])}",
              "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.node()}, {os.cpu_count()} cores",
              "python": platform.python_version(), "d": args.d, "M": args.M, "labels": args.labels,
              "preload": args.preload, "wrk": f"-t{args.threads} -c{args.connections} -d{int(args.seconds)}s",
              "rounds": args.rounds, "teach_share": args.teach, "bare_rps": bare, "servers": {},
              "runs": [{"run": t, "server": w, **s, "loadavg": load} for t, w, s, load in rows]}
    for kind, what, _, _ in servers:
        out = summary(rows, kind, args.teach)
        out["predict_only_over_bare"] = out["predict_only_rps"] / bare
        m = metrics[kind]
        batch_sum = re.search(r"^mlcil_predict_batch_rows_sum (\S+)$", m, re.M)
        batch_count = re.search(r"^mlcil_predict_batch_rows_count (\S+)$", m, re.M)
        out["rows_per_batch"] = float(batch_sum.group(1)) / max(float(batch_count.group(1)), 1) if batch_sum else None
        out["server_teach"] = route_seconds(m, "/v1/teach")
        out["server_predict"] = route_seconds(m, "/v1/predict")
        out["examples_after"] = health[kind]["examples"]
        out["served_version"], out["db_version"] = health[kind]["version"], health[kind]["db_version"]
        result["servers"][kind] = {"what": what, **out}

    lines = [
        f"# Tagging service load test (wrk, {result['date']})", "",
        f"`{result['command']}`; {result['machine']} shared with other jobs, Python {result['python']}; "
        f"d = {args.d}, M = {args.M}, {args.labels} labels, {args.preload} examples preloaded per server; "
        f"wrk {result['wrk']} on the same machine (loopback); batch 1; {args.teach:.0%} of the mixed runs' "
        "requests are teaches (one example each, a new id).", "",
        "| run | server | requests/s | predict/s | teach/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | "
        "load avg (1/5/15 min) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for tag, what, s, load in rows:
        lines.append(f"| {tag} | {what} | {s['rps']:.0f} | {s['ok_predict'] / s['seconds']:.0f} | "
                     f"{s['ok_teach'] / s['seconds']:.1f} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | "
                     f"{s['p99_ms']:.1f} | {s['max_ms']:.0f} | {s['non2xx'] + s['errors']} | {load} |")
    lines += ["", f"Over the {args.rounds} alternating rounds (requests summed over seconds; latencies: medians of "
                  f"the runs' percentiles); bare FastAPI: {bare:.0f} requests/s.", "",
              "| server | predict-only requests/s | / bare | predictions/s with teaches | / predict-only (goal ≥ 70%) | "
              "mixed p50 ms | mixed p99 ms | p99 / p50 (goal ≤ 10×) | teaches/s | goal |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, out in result["servers"].items():
        lines.append(f"| {out['what']} | {out['predict_only_rps']:.0f} | {out['predict_only_over_bare']:.0%} | "
                     f"{out['mixed_predict_rps']:.0f} | **{out['mixed_over_predict_only']:.0%}** | "
                     f"{out['mixed_p50_ms']:.1f} | {out['mixed_p99_ms']:.1f} | **{out['mixed_p99_over_p50']:.1f}×** | "
                     f"{out['mixed_teach_rps']:.1f} | {'met' if out['goal_met'] else 'NOT met'} |")
    lines += [""] + [f"- {out['what']}: rows per φ(X)ᵀW (micro-batching) {out['rows_per_batch'] or float('nan'):.1f}; "
                     f"examples stored after the runs {out['examples_after']} (preload {args.preload}); served "
                     f"version {out['served_version']} of {out['db_version']}; non-2xx {out['non2xx']}"
                     for out in result["servers"].values()]
    lines += ["", "Time inside each server (its request-latency histogram, every run together; pN: the bucket bound "
                  "under which N % finished):", "",
              "| server | route | requests | mean ms | p50 ≤ ms | p90 ≤ ms | p99 ≤ ms |", "|---|---|---|---|---|---|---|"]
    for out in result["servers"].values():
        for route in ("predict", "teach"):
            r = out[f"server_{route}"]
            lines.append(f"| {out['what']} | {route} | {r['count']} | {r['mean_ms']:.1f} | {r['p50_le_ms']:g} | "
                         f"{r['p90_le_ms']:g} | {r['p99_le_ms']:g} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
