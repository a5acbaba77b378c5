"""End-to-end run latency and throughput through the official Python SDK, against the fake LLM.

    .venv/bin/python bench/run_throughput.py [--duration 15] [--clients 1,16,64] [--samples 50]

In one run: `create_and_run_poll` latency (SDK defaults) with the polls each run took (also for the 2 s model), streamed
`create_and_run` latency until `thread.run.completed`, completed runs per second at each client count with an
instant fake model and with a fake whose first token comes after 2 s, the same concurrency calling LiteLLM
directly against the same fake (the ceiling), and the web and worker resident memory after the load.
Starts its own fake LLM (a separate process) and `manage.py serve` (1 web process, 1 worker, beat) on the
embedded stack under ASSISTANTS_DATA_DIR (default var/bench-throughput). Prints a table and saves JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ASSISTANTS_DATA_DIR", str(ROOT / "var" / "bench-throughput"))

import httpx  # noqa: E402

from tests import live as live_mod  # noqa: E402

SLOW_MODEL = "slow-2s"  # alias → the fake answers it after SLOW_SECONDS
SLOW_SECONDS = 2.0
SLOW_POLL_SAMPLES = 5
MESSAGES = [{"role": "user", "content": "one line please"}]
RUN_POLL = re.compile(r"/threads/[^/]+/runs/[^/]+$")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


def serve_fake() -> None:
    """Child-process mode: the fake LLM, with SLOW_MODEL answering after SLOW_SECONDS."""
    import signal

    from tests.fake_llm import FakeLLM

    fake = FakeLLM().start()
    fake.add_rule(lambda body: body.get("model") == SLOW_MODEL, text="slow answer", first_token_delay=SLOW_SECONDS)
    print(fake.base_url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    fake.stop()


def client(base_url: str, counter: dict | None = None):
    import openai

    hooks = {}
    if counter is not None:
        def count(request: httpx.Request) -> None:
            if request.method == "GET" and RUN_POLL.search(request.url.path):
                counter["polls"] += 1

        hooks = {"request": [count]}
    http = httpx.Client(limits=httpx.Limits(max_connections=256, max_keepalive_connections=256), event_hooks=hooks)
    return openai.OpenAI(base_url=base_url, api_key=live_mod.E2E_API_KEY, http_client=http, max_retries=0,
                         timeout=120)


def streamed_run(sdk, assistant_id: str) -> float:
    """Seconds from the request until `thread.run.completed` arrives."""
    started = time.perf_counter()
    stream = sdk.beta.threads.create_and_run(assistant_id=assistant_id, thread={"messages": MESSAGES}, stream=True)
    done = None
    with stream:
        for event in stream:
            if event.event == "thread.run.completed":
                done = time.perf_counter() - started
            elif event.event in ("thread.run.failed", "thread.run.expired", "thread.run.cancelled"):
                raise RuntimeError(f"run ended {event.event}: {getattr(event.data, 'last_error', None)}")
    if done is None:
        raise RuntimeError("stream ended without thread.run.completed")
    return done


def polled_run(sdk, assistant_id: str) -> float:
    started = time.perf_counter()
    run = sdk.beta.threads.create_and_run_poll(assistant_id=assistant_id, thread={"messages": MESSAGES})
    if run.status != "completed":
        raise RuntimeError(f"run ended {run.status}: {run.last_error}")
    return time.perf_counter() - started


def direct_call(model: str, fake_url: str) -> float:
    import litellm

    started = time.perf_counter()
    stream = litellm.completion(model=f"openai/{model}", messages=MESSAGES, api_base=fake_url, api_key="sk-fake",
                                stream=True, num_retries=0, max_retries=0)
    for _ in stream:
        pass
    return time.perf_counter() - started


def load(fn, clients: int, duration: float) -> dict:
    """`clients` threads call fn back to back for `duration` seconds; completed calls per second."""
    done: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration

    def work() -> None:
        while time.perf_counter() < stop_at:
            try:
                elapsed = fn()
            except Exception as exc:  # a failure is counted, not fatal to the bench
                with lock:
                    errors.append(repr(exc)[:200])
                continue
            with lock:
                done.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "completed": len(done), "errors": len(errors), "first_error": errors[:1],
            "per_second": len(done) / wall, "p50_ms": pct(done, 0.5) * 1000, "p90_ms": pct(done, 0.9) * 1000}


def processes(stack_pid: int, data_dir: Path) -> dict:
    """The stack's processes by role: web, worker, beat (serve's children and theirs), postgres (the postmaster and
    its backends), redis."""
    import psutil

    out: dict[str, list] = {"web": [], "worker": [], "beat": [], "postgres": [], "redis": []}
    for child in psutil.Process(stack_pid).children(recursive=False):
        cmd = " ".join(child.cmdline())
        role = "web" if "uvicorn" in cmd else "worker" if " worker" in cmd else "beat" if " beat" in cmd else None
        if role:
            out[role] += [child, *child.children(recursive=True)]
    try:
        postmaster = psutil.Process(int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]))
        out["postgres"] = [postmaster, *postmaster.children(recursive=True)]
        out["redis"] = [psutil.Process(int((data_dir / "redis" / "redis.pid").read_text().strip()))]
    except (OSError, ValueError, psutil.Error):
        pass
    return out


class Cost:
    """What a stretch of load cost the stack: CPU seconds per process role (processes that started meanwhile,
    like new Postgres backends, count from zero), Redis commands by name, Postgres transactions and rows."""

    def __init__(self, stack_pid: int, data_dir: Path, redis_url: str, pg: dict) -> None:
        self.stack_pid, self.data_dir, self.redis_url, self.pg = stack_pid, data_dir, redis_url, pg
        self.before = self.snapshot()

    def snapshot(self) -> dict:
        import psutil
        import redis

        cpu: dict[str, dict[int, float]] = {}
        for role, procs in processes(self.stack_pid, self.data_dir).items():
            cpu[role] = {}
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    cpu[role][proc.pid] = times.user + times.system
                except psutil.Error:
                    continue
        stats = redis.Redis.from_url(self.redis_url).info("commandstats")
        commands = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
        import psycopg

        with psycopg.connect(dbname=self.pg["NAME"], user=self.pg["USER"], host=self.pg["HOST"]) as conn:
            row = conn.execute("SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, tup_inserted, "
                               "tup_updated, tup_deleted FROM pg_stat_database WHERE datname = current_database()"
                               ).fetchone()
        return {"cpu": cpu, "redis": commands, "pg": dict(zip(
            ["transactions", "rows_returned", "rows_fetched", "rows_inserted", "rows_updated", "rows_deleted"],
            row, strict=True))}

    def per_run(self, runs: int) -> dict:
        after = self.snapshot()
        cpu = {}
        for role, pids in after["cpu"].items():
            spent = sum(t - self.before["cpu"].get(role, {}).get(pid, 0.0) for pid, t in pids.items())
            cpu[role] = round(spent * 1000 / max(runs, 1), 2)
        commands = {name: round((calls - self.before["redis"].get(name, 0)) / max(runs, 1), 2)
                    for name, calls in after["redis"].items() if calls > self.before["redis"].get(name, 0)}
        # the stats read itself (one INFO per snapshot) is not the runs'
        commands.pop("info", None)
        pg = {name: round((value - self.before["pg"][name]) / max(runs, 1), 2) for name, value in after["pg"].items()}
        return {"runs": runs, "cpu_ms_per_run": cpu, "redis_commands_per_run": dict(sorted(commands.items())),
                "redis_commands_total_per_run": round(sum(commands.values()), 1), "postgres_per_run": pg}


def profile(stack_pid: int, out_dir: str, seconds: float) -> list[subprocess.Popen]:
    """py-spy on the web and the worker main processes for ``seconds`` (wall-clock samples, idle excluded)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    spies = []
    for role, procs in processes(stack_pid, Path(os.environ["ASSISTANTS_DATA_DIR"])).items():
        if role in ("web", "worker") and procs:
            spies.append(subprocess.Popen(
                [str(spy), "record", "-p", str(procs[0].pid), "-f", "raw", "-r", "200", "-d", str(int(seconds)),
                 *os.environ.get("PYSPY_FLAGS", "").split(),
                 "-o", str(Path(out_dir) / f"{role}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return spies


def rss_mb(stack_pid: int) -> dict:
    import psutil

    out: dict[str, float] = {}
    for child in psutil.Process(stack_pid).children(recursive=False):
        cmd = " ".join(child.cmdline())
        role = "web" if "uvicorn" in cmd else "worker" if " worker" in cmd else "beat" if " beat" in cmd else None
        if role:
            procs = [child, *child.children(recursive=True)]  # several workers (WORKER_PROCESSES): their sum
            out[role] = round(out.get(role, 0) + sum(p.memory_info().rss for p in procs) / 2**20, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per throughput level")
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--samples", type=int, default=50, help="runs per latency figure")
    parser.add_argument("--skip-slow", action="store_true", help="no 2 s fake levels")
    parser.add_argument("--skip-fast", action="store_true", help="no instant fake levels")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="py-spy (raw format) of the web and worker processes during the 16-client instant level")
    parser.add_argument("--json", default=None, help="where to save the figures (default: data dir)")
    args, serve_env = parser.parse_known_args()
    extra = dict(item.split("=", 1) for item in serve_env)  # e.g. WORKER_CONCURRENCY=64 WORKER_POOL=threads
    levels = [int(n) for n in args.clients.split(",")]

    fake = subprocess.Popen([sys.executable, __file__, "--fake-server"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    fake_url = fake.stdout.readline().strip()
    live_mod.E2E_DATA_DIR = Path(os.environ["ASSISTANTS_DATA_DIR"]).resolve()
    live_mod.reset_e2e_stores()
    aliases = live_mod.E2E_DATA_DIR / "models.yaml"
    aliases.write_text(f"{SLOW_MODEL}:\n  model: openai/{SLOW_MODEL}\n")
    port = live_mod.free_port()
    log = live_mod.E2E_DATA_DIR / "serve.log"
    # `make run`'s defaults, not the e2e tests' (which shorten sweeps and keep-alives and cut worker threads)
    env = {"LOG_LEVEL": "WARNING", "MODEL_ALIASES_FILE": str(aliases), "WORKER_CONCURRENCY": "16",
           "RUN_SWEEP_INTERVAL_SECONDS": "15", "RUN_HEARTBEAT_TIMEOUT_SECONDS": "60", "LLM_NUM_RETRIES": "2",
           "STREAM_KEEPALIVE_SECONDS": "10", "VECTOR_INDEX_DEFER_SECONDS": "30", **extra}
    serve = live_mod.start_serve(fake_url, port, log, **env)
    base = f"http://127.0.0.1:{port}/v1"
    results: dict = {"settings": {k: v for k, v in env.items() if k != "MODEL_ALIASES_FILE"},
                     "load_before": os.getloadavg()}
    try:
        live_mod.wait_ready(base, serve, log)
        from assistants_project import embedded

        redis_url = embedded.ensure_redis(live_mod.E2E_DATA_DIR)
        pg = embedded.ensure_postgres(live_mod.E2E_DATA_DIR)
        sdk = client(base)
        fast = sdk.beta.assistants.create(model="gpt-4o-mini").id
        slow = sdk.beta.assistants.create(model=SLOW_MODEL).id
        for _ in range(5):  # warm imports, pools and connections on both sides
            streamed_run(sdk, fast)
            polled_run(sdk, fast)
            direct_call("gpt-4o-mini", fake_url)

        counter = {"polls": 0}
        polling = client(base, counter)
        polled = [polled_run(polling, fast) for _ in range(args.samples)]
        streamed = [streamed_run(sdk, fast) for _ in range(args.samples)]
        results["create_and_run_poll"] = {"p50_ms": pct(polled, 0.5) * 1000, "p90_ms": pct(polled, 0.9) * 1000,
                                          "polls_per_run": counter["polls"] / args.samples}
        if not args.skip_slow:  # how often a poll helper asks about a run whose model takes 2 s
            counter["polls"] = 0
            polled_slow = [polled_run(polling, slow) for _ in range(SLOW_POLL_SAMPLES)]
            results["create_and_run_poll_slow"] = {"p50_ms": pct(polled_slow, 0.5) * 1000,
                                                   "polls_per_run": counter["polls"] / SLOW_POLL_SAMPLES}
        results["streamed_until_completed"] = {"p50_ms": pct(streamed, 0.5) * 1000,
                                               "p90_ms": pct(streamed, 0.9) * 1000}

        results["throughput"] = []
        for model, assistant in ([] if args.skip_fast else [("gpt-4o-mini", fast)]) + (
                [] if args.skip_slow else [(SLOW_MODEL, slow)]):
            for clients in levels:
                cost = Cost(serve.pid, live_mod.E2E_DATA_DIR, redis_url, pg)
                spies = profile(serve.pid, args.profile, args.duration) if (
                    args.profile and clients == 16 and model != SLOW_MODEL) else []
                ours = load(lambda a=assistant: streamed_run(sdk, a), clients, args.duration)
                ours["cost"] = cost.per_run(ours["completed"])
                for spy in spies:
                    spy.wait()
                ceiling = load(lambda m=model: direct_call(m, fake_url), clients, args.duration)
                results["throughput"].append({"model": model, "clients": clients, "ours": ours, "direct": ceiling,
                                              "ratio": ours["per_second"] / ceiling["per_second"]})
        results["rss_mb_after_load"] = rss_mb(serve.pid)
        results["load_after"] = os.getloadavg()
    finally:
        live_mod.stop_serve(serve)
        fake.terminate()
        from assistants_project import embedded

        embedded.stop_redis(live_mod.E2E_DATA_DIR)
        embedded.stop_postgres(live_mod.E2E_DATA_DIR)

    out = Path(args.json) if args.json else live_mod.E2E_DATA_DIR / "run_throughput.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"settings: {results['settings']}; load average before {results['load_before'][0]:.2f}, "
          f"after {results['load_after'][0]:.2f}")
    p, s = results["create_and_run_poll"], results["streamed_until_completed"]
    print(f"create_and_run_poll p50 {p['p50_ms']:.0f} ms, p90 {p['p90_ms']:.0f} ms, "
          f"{p['polls_per_run']:.1f} polls per run")
    if "create_and_run_poll_slow" in results:
        q = results["create_and_run_poll_slow"]
        print(f"create_and_run_poll of the 2 s model p50 {q['p50_ms']:.0f} ms, {q['polls_per_run']:.1f} polls per run")
    print(f"streamed create_and_run until completed p50 {s['p50_ms']:.0f} ms, p90 {s['p90_ms']:.0f} ms")
    print("model        clients  runs/s  direct/s  ratio  run_p50_ms  errors")
    for row in results["throughput"]:
        o, d = row["ours"], row["direct"]
        print(f"{row['model']:<12} {row['clients']:>7} {o['per_second']:>7.1f} {d['per_second']:>9.1f} "
              f"{row['ratio']:>6.2f} {o['p50_ms']:>11.0f} {o['errors']:>7}")
    print("cost per completed run (CPU ms by process; Redis commands; Postgres transactions):")
    for row in results["throughput"]:
        c = row["ours"]["cost"]
        print(f"  {row['model']:<12} {row['clients']:>3} clients: CPU {c['cpu_ms_per_run']}; Redis "
              f"{c['redis_commands_total_per_run']} {c['redis_commands_per_run']}; Postgres {c['postgres_per_run']}")
    print(f"resident memory after the load (MB): {results['rss_mb_after_load']}")
    print(f"saved {out}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--fake-server"]:
        serve_fake()
    else:
        main()
