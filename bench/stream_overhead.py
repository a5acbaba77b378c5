"""Time to first text delta through the server minus time to first token of the same LiteLLM call made
directly, against the fake LLM with a fixed per-token delay; p50/p99 at 1 and at 50 concurrent streams, and where
the server's time to first delta goes at each level (p50 of each stage, from the run's own timestamps), and what a
run cost in CPU at each level, by process, against what a direct call cost (the bench's client and the fake).

    ASSISTANTS_DATA_DIR=var/bench .venv/bin/python bench/stream_overhead.py [--samples 100] [--streams 1,50] \
        [KEY=VALUE …]   # serve's environment, e.g. LOG_FORMAT=json LOG_LEVEL=INFO

Starts its own fake LLM (a separate process) and `manage.py serve` on the embedded stack under
ASSISTANTS_DATA_DIR (default var/bench).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ASSISTANTS_DATA_DIR", str(ROOT / "var" / "bench"))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.run_throughput import Cost  # noqa: E402
from tests import live as live_mod  # noqa: E402

TOKEN_DELAY = 0.02
PROMPT = [{"role": "user", "content": "benchmark prompt"}]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def start_fake() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_llm", "--port", "0", "--token-delay",
                             str(TOKEN_DELAY)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def direct_ttft(base_url: str) -> float:
    import litellm

    started = time.perf_counter()
    stream = litellm.completion(model="gpt-4o-mini", messages=PROMPT, api_base=base_url, api_key="sk-fake",
                                stream=True, num_retries=0, max_retries=0, _skip_mcp_handler=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            elapsed = time.perf_counter() - started
            break
    for _ in stream:
        pass
    return elapsed


def server_ttft(http: httpx.Client, assistant_id: str, marks: list | None = None) -> float:
    """``marks`` gets (run id, wall clock at the request, when the first delta entered the run's Redis stream (its
    entry id is Redis' clock), at the first delta) for ``stages``."""
    thread = http.post("/threads", json={"messages": PROMPT}).json()["id"]
    wall, started = time.time(), time.perf_counter()
    elapsed, run_id, event, entry, published = None, None, None, "", None
    with http.stream("POST", f"/threads/{thread}/runs", json={"assistant_id": assistant_id, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("id: "):
                entry = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
                if elapsed is None and event == "thread.message.delta":
                    elapsed = time.perf_counter() - started
                    published = int(entry.split("-")[0]) / 1000
            elif run_id is None and event == "thread.run.created" and line.startswith("data: "):
                run_id = json.loads(line[6:])["id"]
    if marks is not None:
        marks.append((run_id, wall, published, wall + elapsed))
    return elapsed


STAGES = ("request → run written (web)", "run written → claimed (broker, worker)",
          "claimed → first text (worker, model)", "first text → published (worker)", "published → client (relay)")


def stages(marks: list) -> list[float]:
    """p50 of each stage (ms) between the request and the first delta, from the run's created_at (the web's clock
    as it writes the run), started_at (the worker's as it claims it), its message's created_at (the worker's as
    the first text arrives) and the first delta's stream entry id (Redis' clock as the worker appends it; one
    machine, one clock, to the millisecond). The task is sent before the run is written, so the second stage may be
    negative."""
    with live_mod.e2e_db() as db:
        rows = {row[0]: [float(v) for v in row[1:]] for row in db.execute(
            "SELECT r.public_id, extract(epoch FROM r.created_at), extract(epoch FROM r.started_at), "
            "(SELECT extract(epoch FROM min(m.created_at)) FROM assistants_message m "
            " WHERE m.run_public_id = r.public_id) FROM runs_run r WHERE r.public_id = ANY(%s)",
            ([run_id for run_id, *_ in marks],))}
    spans: list[list[float]] = [[] for _ in STAGES]
    for run_id, requested, published, first in marks:
        points = [requested, *rows[run_id], published, first]
        for i in range(len(STAGES)):
            spans[i].append(points[i + 1] - points[i])
    return [statistics.median(span) * 1000 for span in spans]


def cpu_seconds(*procs: psutil.Process) -> float:
    return sum(t.user + t.system for t in (p.cpu_times() for p in procs))


def concurrent(fn, n: int, per_worker: int) -> list:
    out: list = []
    lock = threading.Lock()

    def work():
        for _ in range(per_worker):
            value = fn()
            with lock:
                out.append(value)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--streams", default="1,50", help="comma-separated concurrency levels (default 1,50)")
    args, serve_env = parser.parse_known_args()
    extra = dict(item.split("=", 1) for item in serve_env)  # serve's environment, e.g. LOG_FORMAT=json

    fake, fake_url = start_fake()
    live_mod.E2E_DATA_DIR = Path(os.environ["ASSISTANTS_DATA_DIR"]).resolve()
    live_mod.reset_e2e_stores()
    port = live_mod.free_port()
    log = live_mod.E2E_DATA_DIR / "serve.log"
    serve = live_mod.start_serve(fake_url, port, log, **{"WORKER_CONCURRENCY": "64", "LOG_LEVEL": "WARNING",
                                                         "MODEL_ALIASES_FILE": "", **extra})
    base = f"http://127.0.0.1:{port}/v1"
    try:
        live_mod.wait_ready(base, serve, log)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        http = httpx.Client(base_url=base, timeout=60, limits=limits,
                            headers={"Authorization": f"Bearer {live_mod.E2E_API_KEY}"})
        assistant = http.post("/assistants", json={"model": "gpt-4o-mini"}).json()["id"]
        from assistants_project import embedded

        redis_url = embedded.ensure_redis(live_mod.E2E_DATA_DIR)
        pg = embedded.ensure_postgres(live_mod.E2E_DATA_DIR)
        outside = (psutil.Process(), psutil.Process(fake.pid))  # this bench's client and the fake LLM
        for _ in range(5):  # warm both paths (imports, connections)
            direct_ttft(fake_url)
            server_ttft(http, assistant)
        rows, stage_rows, cpu_rows = [], [], []
        for streams in [int(n) for n in args.streams.split(",")]:
            marks: list = []
            if streams == 1:  # direct and server calls alternate, so drift in the machine's speed hits both
                pairs = concurrent(lambda marks=marks: (direct_ttft(fake_url), server_ttft(http, assistant, marks)), 1,
                                   args.samples)
                direct, server = [d for d, _ in pairs], [s for _, s in pairs]
            else:  # 50 direct streams at once, then 50 through the server at once
                started = cpu_seconds(*outside)
                direct = concurrent(lambda: direct_ttft(fake_url), streams, 2)
                direct_cpu = (cpu_seconds(*outside) - started) * 1000 / len(direct)
                cost, started = Cost(serve.pid, live_mod.E2E_DATA_DIR, redis_url, pg), cpu_seconds(*outside)
                server = concurrent(lambda marks=marks: server_ttft(http, assistant, marks), streams, 2)
                per_run = cost.per_run(len(server))["cpu_ms_per_run"]
                per_run["client+fake"] = round((cpu_seconds(*outside) - started) * 1000 / len(server), 2)
                cpu_rows.append((streams, per_run, direct_cpu))
            stage_rows.append((streams, stages(marks)))
            d50, s50 = statistics.median(direct), statistics.median(server)
            rows.append((streams, len(server), d50 * 1000, pct(direct, 0.99) * 1000, s50 * 1000,
                         pct(server, 0.99) * 1000, (s50 - d50) * 1000, (pct(server, 0.99) - d50) * 1000))
        print(f"fake LLM token delay {TOKEN_DELAY * 1000:.0f} ms; times in ms")
        print("streams samples direct_p50 direct_p99 server_p50 server_p99 overhead_p50 overhead_p99")
        for row in rows:
            print(f"{row[0]:>7} {row[1]:>7} " + " ".join(f"{v:>10.1f}" for v in row[2:]))
        print("where the server's time to first delta goes: p50 of each stage, ms")
        print(f"{'streams':>7} " + " | ".join(STAGES))
        for streams, spans in stage_rows:
            print(f"{streams:>7} " + " | ".join(f"{v:>{len(name)}.1f}" for name, v in zip(STAGES, spans, strict=True)))
        # (none at 1 stream: its direct and server calls alternate, so their CPU cannot be told apart)
        print("CPU per run through the server by process (ms), against a direct call's (the client and the fake)")
        for streams, per_run, direct_cpu in cpu_rows:
            print(f"{streams:>7} server {per_run} = {sum(per_run.values()):.1f} ms; direct {direct_cpu:.1f} ms")
    finally:
        live_mod.stop_serve(serve)
        fake.terminate()
        from assistants_project import embedded

        embedded.stop_redis(live_mod.E2E_DATA_DIR)
        embedded.stop_postgres(live_mod.E2E_DATA_DIR)


if __name__ == "__main__":
    main()
