"""The live stack for end-to-end tests: `manage.py serve` (uvicorn + Celery worker + beat) on a free port,
its own embedded Postgres and Redis under var/test-e2e, and the fake LLM that LiteLLM reaches through
OPENAI_API_BASE. Nothing of ours is mocked; only the model provider is fake."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Beside the unit tests' data dir (settings_test sets ASSISTANTS_DATA_DIR), so parallel checkouts don't collide.


def _e2e_data_dir() -> Path:
    unit = Path(os.environ.get("ASSISTANTS_DATA_DIR") or ROOT / "var" / "test").resolve()
    return unit.with_name(unit.name + "-e2e")


E2E_DATA_DIR = _e2e_data_dir()
E2E_API_KEY = "sk-e2e-test-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def e2e_env(fake_base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="assistants_project.settings",
        ASSISTANTS_DATA_DIR=str(E2E_DATA_DIR),
        ASSISTANTS_API_KEY=E2E_API_KEY,
        OPENAI_API_BASE=fake_base_url,
        OPENAI_API_KEY="sk-fake-provider-key",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONUNBUFFERED="1",
        RUN_SWEEP_INTERVAL_SECONDS="2",
        RUN_HEARTBEAT_TIMEOUT_SECONDS="6",
        WORKER_CONCURRENCY="8",
        # a runaway call in a test is killed sooner than the default 30 s; the wall limit leaves a loaded 2-core machine
        # room for the slowest legitimate call (importing matplotlib and drawing: ~1.4 CPU s, ~4.5 s wall at load 11)
        CODE_INTERPRETER_WALL_SECONDS="15",
        CODE_INTERPRETER_CPU_SECONDS="5",
        MODEL_ALIASES_FILE=str(E2E_DATA_DIR / "models.yaml"),
        LLM_NUM_RETRIES="1",
        LLM_RETRY_BACKOFF_SECONDS="0.1",
        STREAM_KEEPALIVE_SECONDS="0.3",  # every stream that waits a moment carries keep-alive lines
        INGESTION_SWEEP_INTERVAL_SECONDS="2",
        INGESTION_HEARTBEAT_TIMEOUT_SECONDS="6",
        GATEWAY_MODELS="gpt-4o-mini,text-embedding-3-small,omni-moderation-latest",  # listed by GET /v1/models
        VECTOR_INDEX_DEFER_SECONDS="2",  # files other tests leave in progress hold the indexer back 2 s at most
    )
    env.update(extra)
    return env


def e2e_db():
    """An autocommit connection to the live server's database, for what the API does not show (use it in ``with``)."""
    import psycopg

    from assistants_project import embedded

    params = embedded.ensure_postgres(E2E_DATA_DIR)
    return psycopg.connect(dbname=params["NAME"], user=params["USER"], host=params["HOST"], autocommit=True)


def reset_e2e_stores() -> None:
    """A fresh database and an empty Redis, so no earlier session's objects or queued tasks leak in."""
    from assistants_project import embedded

    E2E_DATA_DIR.mkdir(parents=True, exist_ok=True)
    params = embedded.ensure_postgres(E2E_DATA_DIR)
    import psycopg

    with psycopg.connect(dbname="postgres", user="postgres", host=params["HOST"], autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {params['NAME']} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {params['NAME']}")
    import redis

    redis.Redis.from_url(embedded.ensure_redis(E2E_DATA_DIR)).flushall()


@dataclass
class LiveStack:
    base_url: str
    api_key: str
    fake: object
    proc: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    def client(self, **kwargs):
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 60)
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, **kwargs)

    def async_client(self, **kwargs):
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 60)
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, **kwargs)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60,
                            headers={"Authorization": f"Bearer {self.api_key}", "OpenAI-Beta": "assistants=v2"})

    def child_pids(self, role: str) -> list[int]:
        """Pids of serve's children whose command line names ``role`` (worker, beat, uvicorn)."""
        import psutil

        out = []
        for child in psutil.Process(self.proc.pid).children(recursive=False):
            try:
                if role in " ".join(child.cmdline()):
                    out.append(child.pid)
            except psutil.NoSuchProcess:
                continue
        return out

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_serve(fake_base_url: str, port: int, log_path: Path, **env_extra: str) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=e2e_env(fake_base_url, **env_extra), stdout=log, stderr=subprocess.STDOUT,
    )


def wait_ready(base_url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    root = base_url.rsplit("/v1", 1)[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited early:\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"{root}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"serve not ready in {timeout}s:\n{log_path.read_text(errors='replace')[-4000:]}")


def stop_serve(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def fake_llm_server():
    from tests.fake_llm import FakeLLM

    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="session")
def live_stack(fake_llm_server):
    from assistants_project import embedded

    reset_e2e_stores()
    # A public alias for a LiteLLM target with its own parameters (runs must echo the alias).
    # responses-model: runs through the provider's Responses API (issue 16).
    (E2E_DATA_DIR / "models.yaml").write_text("house-model:\n  model: openai/gpt-4o-mini\n  temperature: 0.25\n"
                                              "responses-model:\n  model: openai/gpt-4o-mini\n  api: responses\n")
    port = free_port()
    log_path = E2E_DATA_DIR / "serve.log"
    log_path.write_text("")
    proc = start_serve(fake_llm_server.base_url, port, log_path)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(base_url, proc, log_path)
        yield LiveStack(base_url=base_url, api_key=E2E_API_KEY, fake=fake_llm_server, proc=proc, log_path=log_path)
    finally:
        stop_serve(proc)
        embedded.stop_redis(E2E_DATA_DIR)
        embedded.stop_postgres(E2E_DATA_DIR)


@pytest.fixture
def live(live_stack):
    """The live stack with the fake LLM's rules and records cleared for this test."""
    live_stack.fake.reset()
    return live_stack
