"""What /metrics and JSON logging cost.

    .venv/bin/python bench/observability_cost.py [--n 20000]
    .venv/bin/python bench/observability_cost.py --stack 3

Without --stack: the CPU cost of the observability hooks on their own, without the noise of a whole-stack
benchmark: one API request's share (``RequestMiddleware``: request id, early checks, OpenAI headers, HTTP
metrics, one JSON access line) and one run's share (claim binding, model-call timing, the final-status metrics and
JSON log line), in microseconds, in multiprocess mode like under `serve`.

With --stack N: the whole stack before and after in one run, N rounds (off first, then on first) of "off"
(METRICS_ENABLED=false, text logs at WARNING: no access lines) and "on" (metrics recorded and served, JSON logs at
INFO: an access line per request, a line per run): bench/run_throughput.py at 16 clients on the instant fake (runs/s,
and the CPU every process spent per completed run, steadier than runs/s on a shared machine) and
bench/stream_overhead.py at one stream (first-delta overhead p50). Medians over the rounds and the on/off ratio.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="obs-cost-")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def per_call_us(fn, n: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


OFF = {"METRICS_ENABLED": "false", "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING"}
ON = {"METRICS_ENABLED": "true", "METRICS_TOKEN": "bench-metrics-token", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}


def stack_once(env: dict[str, str], data_dir: Path) -> dict[str, float]:
    import json
    import subprocess

    pairs = [f"{key}={value}" for key, value in env.items()]
    out = data_dir / "throughput.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "run_throughput.py"), "--duration", "8", "--clients", "16",
                    "--skip-slow", "--samples", "20", "--json", str(out), *pairs], check=True, capture_output=True,
                   env={**os.environ, "ASSISTANTS_DATA_DIR": str(data_dir)})
    level = json.loads(out.read_text())["throughput"][0]
    overhead = subprocess.run([sys.executable, str(ROOT / "bench" / "stream_overhead.py"), "--streams", "1",
                               "--samples", "100", *pairs], check=True, capture_output=True, text=True,
                              env={**os.environ, "ASSISTANTS_DATA_DIR": str(data_dir)}).stdout.splitlines()[-1]
    return {"runs_per_s": level["ours"]["per_second"], "ratio_to_direct": level["ratio"],
            "cpu_ms_per_run": sum(level["ours"]["cost"]["cpu_ms_per_run"].values()),
            "stream_overhead_p50_ms": float(overhead.split()[6])}


def stack(rounds: int) -> None:
    import statistics

    data_dir = Path(os.environ.get("ASSISTANTS_DATA_DIR", ROOT / "var" / "bench-observability")).resolve()
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for i in range(rounds):  # the order alternates too, so what the first of a pair pays (a warm-up) cancels out
        for name, env in (("off", OFF), ("on", ON))[::1 if i % 2 == 0 else -1]:
            row = stack_once(env, data_dir)
            results[name].append(row)
            print(f"round {i + 1} {name:>3}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items())
                  + f"; load {os.getloadavg()[0]:.2f}", flush=True)
    medians = {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in results.items()}
    for name, row in medians.items():
        print(f"median {name:>3}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    off, on = medians["off"], medians["on"]
    print(f"on/off: runs/s {on['runs_per_s'] / off['runs_per_s']:.3f}, ratio to direct "
          f"{on['ratio_to_direct'] / off['ratio_to_direct']:.3f}, "
          f"CPU per run {on['cpu_ms_per_run'] / off['cpu_ms_per_run']:.3f}; "
          f"stream overhead p50 {on['stream_overhead_p50_ms'] - off['stream_overhead_p50_ms']:+.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--stack", type=int, default=0, metavar="ROUNDS",
                        help="the whole stack, metrics and JSON logs off and on, alternating ROUNDS times")
    args = parser.parse_args()
    if args.stack:
        return stack(args.stack)
    n = args.n
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from django.conf import settings

    settings.configure(USE_TZ=True)  # no database: the hooks alone

    from assistants_project import logs, metrics
    from assistants_project.api import request_context

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    handler.addFilter(logs.ContextFilter())
    for name in ("assistants.access", "runs.lifecycle"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    run_logger = logging.getLogger("runs.lifecycle")

    class Response(dict):
        status_code = 200

    match = SimpleNamespace(route="^v1/threads/(?P<thread_id>[^/.]+)/runs$", kwargs={"thread_id": "thread_abc"})
    request = SimpleNamespace(method="POST", path="/v1/threads/thread_abc/runs", resolver_match=match,
                              headers={"X-Request-ID": "bench-request-id"}, content_type="application/json",
                              get_host=lambda: "localhost")

    def view(request):
        logs.bind(project="default")
        return Response()

    middleware = request_context.RequestMiddleware(view)

    def one_request():
        middleware(request)
        stream.seek(0)
        stream.truncate()

    now = datetime.now(UTC)
    run = SimpleNamespace(model="gpt-4o-mini", created_at=now - timedelta(seconds=1), project_id=1, public_id="run_x",
                          usage={"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}, status="completed")

    def until_first_token():  # the worker's hooks before a run's first token reaches the stream
        with logs.bound():
            logs.bind(run_id=run.public_id, thread_id="thread_abc", project="default")
            metrics.run_started(SimpleNamespace(model=run.model, created_at=run.created_at, usage=None))
            with metrics.model_call("gpt-4o-mini") as first_token:
                first_token()

    def one_run():
        until_first_token()
        metrics.run_entered(run, "completed", now, project="default")
        with logs.bound(run_id=run.public_id, project="default"):
            run_logger.info("run %s", run.status, extra={"status": run.status, "model": run.model})
        stream.seek(0)
        stream.truncate()

    request_us, first_us, run_us = (per_call_us(fn, n) for fn in (one_request, until_first_token, one_run))
    print(f"multiprocess mode, JSON lines, in microseconds: per API request {request_us:.1f}; per run in the worker "
          f"{run_us:.1f}, of which before the first token {first_us:.1f}; on the streaming path to the first token "
          f"(the request's share and the worker's) {request_us + first_us:.1f}")


if __name__ == "__main__":
    main()
