"""Metrics and logs through the real stack: a second `manage.py serve` beside the live stack (same Postgres and
Redis, its own Celery queue), with two uvicorn processes, JSON logs and /metrics on. One scrape of a web process
shows what the Celery worker process counted (prometheus_client's multiprocess mode), and the worker's log lines
for a run carry the id of the request that created it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import httpx
import psutil
import pytest

from tests.live import E2E_DATA_DIR, ROOT, LiveStack, e2e_env, free_port, stop_serve, wait_ready
from tests.test_observability import _sample

TOKEN = "metrics-e2e-token"


@pytest.fixture(scope="module")
def obs(live_stack):
    port, log_path = free_port(), E2E_DATA_DIR / "serve-observability.log"
    log_path.write_text("")
    metrics_dir = E2E_DATA_DIR / "metrics-observability"
    env = e2e_env(live_stack.fake.base_url, LOG_FORMAT="json", METRICS_TOKEN=TOKEN, WEB_CONCURRENCY="2",
                  CELERY_QUEUE="observability", WORKER_CONCURRENCY="4", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    metrics_dir.mkdir(exist_ok=True)
    (metrics_dir / "counter_stale-1.db").write_bytes(b"")  # a previous session's file: serve empties the dir
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--no-beat"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(base_url, proc, log_path)
        stack = LiveStack(base_url=base_url, api_key=live_stack.api_key, fake=live_stack.fake, proc=proc,
                          log_path=log_path, extra={"metrics_dir": metrics_dir})
        _wait_for_worker(stack)
        yield stack
    finally:
        stop_serve(proc)


def _wait_for_worker(stack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "ready." not in stack.log():
        time.sleep(0.2)


def _scrape(stack) -> str:
    root = stack.base_url.rsplit("/v1", 1)[0]
    response = httpx.get(f"{root}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def _json_lines(stack) -> list[dict]:
    out = []
    for line in stack.log().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def test_one_scrape_shows_the_web_and_the_worker_processes(obs):
    obs.fake.reset()
    obs.fake.add_rule("observe me", text="Observed and counted.")
    obs.fake.add_rule("flaky please", text="Fine after a retry.")
    obs.fake.add_rule("flaky please", error=(500, "upstream hiccup", "server_error"), times=1)  # (newest first)
    client = obs.client()
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    before = _scrape(obs)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "observe me"}]})
    assert run.status == "completed"
    with client.beta.threads.create_and_run_stream(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "flaky please"}]}) as stream:
        text = "".join(stream.text_deltas)
    assert text == "Fine after a retry."
    time.sleep(0.5)  # the worker records a run's metrics once its final status has committed

    after = _scrape(obs)

    def grew(name, **labels):
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    # counted by the Celery worker process, read by a uvicorn process
    assert grew("assistants_runs_total", status="completed", model="gpt-4o-mini") == 2
    assert grew("assistants_run_duration_seconds_count", status="completed", model="gpt-4o-mini") == 2
    assert grew("assistants_run_time_to_first_token_seconds_count", model="gpt-4o-mini") == 2
    assert grew("assistants_model_call_duration_seconds_count", provider="openai", model="gpt-4o-mini") == 2
    assert grew("assistants_model_call_retries_total", provider="openai", model="gpt-4o-mini") == 1
    assert grew("assistants_tokens_total", direction="in", model="gpt-4o-mini", project="default") > 0
    assert grew("assistants_tokens_total", direction="out", model="gpt-4o-mini", project="default") > 0
    # counted by the web processes
    assert grew("assistants_http_requests_total", method="POST", route="/v1/threads/runs", status="200") == 2
    assert grew("assistants_http_request_duration_seconds_count", method="POST", route="/v1/threads/runs") == 2
    assert _sample(after, "assistants_open_streams") == 0  # the stream closed
    # read at scrape time
    assert "\nassistants_queue_depth " in after and "\nassistants_indexing_backlog " in after

    # Every process keeps its own files in the shared directory; the stale one is gone.
    files = {path.name for path in obs.extra["metrics_dir"].glob("*.db")}
    assert "counter_stale-1.db" not in files
    owners = {name.rsplit("-", 1)[-1][:-3] for name in files}
    worker_pids = {str(pid) for pid in obs.child_pids("celery")}
    web_pids = {str(child.pid) for parent in obs.child_pids("uvicorn")
                for child in psutil.Process(parent).children()}
    assert worker_pids & owners and web_pids & owners, (owners, worker_pids, web_pids)


def test_many_requests_over_two_web_processes_add_up(obs):
    route = "/v1/assistants"
    before = _sample(_scrape(obs), "assistants_http_requests_total", method="GET", route=route, status="200")
    with obs.http() as http:
        for _ in range(30):
            assert http.get("/assistants").status_code == 200
    after = _sample(_scrape(obs), "assistants_http_requests_total", method="GET", route=route, status="200")
    assert after - before == 30


def test_metrics_need_the_token(obs):
    root = obs.base_url.rsplit("/v1", 1)[0]
    assert httpx.get(f"{root}/metrics").status_code == 401
    assert httpx.get(f"{root}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_worker_log_lines_carry_the_request_id_of_the_request_that_created_the_run(obs):
    obs.fake.reset()
    obs.fake.add_rule("log me", text="Logged.")
    request_id = f"e2e-{uuid.uuid4().hex}"
    with obs.http() as http:
        assistant = http.post("/assistants", json={"model": "gpt-4o-mini"}).json()
        response = http.post("/threads/runs", headers={"X-Request-ID": request_id}, json={
            "assistant_id": assistant["id"], "thread": {"messages": [{"role": "user", "content": "log me"}]}})
        assert response.status_code == 200 and response.headers["x-request-id"] == request_id
        run = response.json()
        deadline = time.monotonic() + 60
        while run["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            run = http.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()
    assert run["status"] == "completed"
    worker_pids = set(obs.child_pids("celery"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in _json_lines(obs) if line.get("request_id") == request_id]
        finished = [line for line in lines if line["logger"] == "runs.lifecycle" and line["message"] == "run completed"]
        if finished:
            break
        time.sleep(0.2)
    access = [line for line in lines if line["logger"] == "assistants.access"]
    assert len(access) == 1 and access[0]["route"] == "/v1/threads/runs" and access[0]["status"] == 200
    assert access[0]["project"] == "default" and access[0]["pid"] not in worker_pids
    assert len(finished) == 1, lines
    line = finished[0]
    assert line["pid"] in worker_pids
    assert (line["run_id"], line["thread_id"], line["project"]) == (run["id"], run["thread_id"], "default")
    assert line["level"] == "INFO" and line["time"]
