"""The reliability suite's stack and helpers, shared by its scenario files (runs, ingestion, outages): a real
`manage.py serve` (uvicorn + Celery worker + beat) on its own embedded Postgres and Redis under var/, the fake LLM
with its fault modes, and the faults we inflict (SIGKILL a worker, kill and restart Redis, stop and start
Postgres).

Profiles: RELIABILITY_PROFILE=fast (the default, part of every pytest run) or long (`make test-reliability`,
the figures of issue 12). ``rounds(fast, long)`` picks a scenario's number of rounds; RELIABILITY_ROUNDS=N
overrides every scenario's count."""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.live import E2E_API_KEY, E2E_DATA_DIR, LiveStack, free_port, start_serve, stop_serve, wait_ready

PROFILE = os.environ.get("RELIABILITY_PROFILE", "fast")
STACK_DATA_DIR = E2E_DATA_DIR.with_name(E2E_DATA_DIR.name + "-reliability")
# Short bounds so faults resolve in seconds: a dead worker is noticed after HEARTBEAT s (+ one sweep), a model
# call that stalls fails after LLM_TIMEOUT s.
HEARTBEAT_TIMEOUT = 6
LLM_TIMEOUT = 8
INGESTION_HEARTBEAT_TIMEOUT = 6
INGESTION_SWEEP_INTERVAL = 2
# With Postgres down a request waits this long for a pooled connection, then answers 503.
DB_POOL_TIMEOUT = 5
STACK_ENV = {
    "ASSISTANTS_DATA_DIR": str(STACK_DATA_DIR),
    "MODEL_ALIASES_FILE": "",
    "RUN_HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT),
    "RUN_SWEEP_INTERVAL_SECONDS": "1",
    "LLM_TIMEOUT_SECONDS": str(LLM_TIMEOUT),
    "FILE_SEARCH_INGESTION_WAIT_SECONDS": "2",
    "LLM_NUM_RETRIES": "1",
    "LLM_RETRY_BACKOFF_SECONDS": "0.1",
    "WORKER_CONCURRENCY": "8",
    "INGESTION_HEARTBEAT_TIMEOUT_SECONDS": str(INGESTION_HEARTBEAT_TIMEOUT),
    "INGESTION_SWEEP_INTERVAL_SECONDS": str(INGESTION_SWEEP_INTERVAL),
    "DB_POOL_TIMEOUT_SECONDS": str(DB_POOL_TIMEOUT),
}
# How long any run may take to end once its fault is over: recovery (heartbeat timeout + a sweep + a worker
# restart) plus one model call.
TERMINAL_BOUND = HEARTBEAT_TIMEOUT + LLM_TIMEOUT + 30
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
# How long a file may take to end once its fault is over: a silent file is noticed within heartbeat timeout + a
# sweep, a killed worker restarts in seconds, each attempt then takes seconds here; room for three attempts.
INGESTION_BOUND = (INGESTION_HEARTBEAT_TIMEOUT + INGESTION_SWEEP_INTERVAL) * 3 + 60
FILE_TERMINAL = {"completed", "failed", "cancelled"}
# serve gives up on a child that exits more than 5 times a minute: space worker kills out.
KILL_SPACING = 12.5


_WORKER_READY = re.compile(r"celery\.apps\.worker celery@\S+ ready\.")


def rounds(fast: int, long: int) -> int:
    override = os.environ.get("RELIABILITY_ROUNDS")
    if override:
        return max(1, int(override))
    return long if PROFILE == "long" else fast


def scenario_timeout(seconds_per_round: float, count: int) -> float:
    """A pytest timeout for ``count`` rounds (the suite's default 300 s is too short for the long profile)."""
    return max(300.0, 60 + seconds_per_round * count)


def wait_until(condition: Callable[[], object], *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_terminal(client, thread_id: str, run_id: str, timeout: float = TERMINAL_BOUND):
    """The run once terminal (or requires_action); fails the test if it is not within ``timeout``."""
    def done():
        run = client.beta.threads.runs.retrieve(thread_id=thread_id, run_id=run_id)
        return run if run.status in TERMINAL or run.status == "requires_action" else None
    return wait_until(done, timeout=timeout, interval=0.3, what=f"run {run_id} to end")


def assert_no_duplicates(client, thread_id: str, run_id: str) -> tuple[list, list]:
    """At most one assistant message per message step, ids unique, every message step's message present."""
    messages = client.beta.threads.messages.list(thread_id=thread_id, run_id=run_id, limit=100).data
    steps = client.beta.threads.runs.steps.list(thread_id=thread_id, run_id=run_id, limit=100).data
    assert len({m.id for m in messages}) == len(messages)
    assert len({s.id for s in steps}) == len(steps)
    message_steps = [s for s in steps if s.type == "message_creation"]
    assert sorted(s.step_details.message_creation.message_id for s in message_steps) == sorted(m.id for m in messages)
    return messages, steps


def upload_text(client, name: str, words: int, seed: int):
    """A text file of ``words`` random words (deterministic per seed), uploaded for vector stores."""
    rng = random.Random(seed)
    text = " ".join(f"{rng.choice(['otter', 'heron', 'lemur', 'ibis', 'walrus'])}{rng.randrange(10_000)}"
                    for _ in range(words))
    return client.files.create(file=(name, text.encode(), "text/plain"), purpose="assistants")


def wait_files_terminal(client, store_id: str, timeout: float = INGESTION_BOUND) -> None:
    wait_until(lambda: client.vector_stores.retrieve(store_id).file_counts.in_progress == 0, timeout=timeout,
               interval=0.5, what=f"the files of {store_id} to end")


def assert_store_consistent(client, stack: Stack, store_id: str) -> dict[str, int]:
    """Every file terminal, with a reason if failed; file_counts match the files; no chunk stored twice; every
    completed file has its chunks. Returns the files' count per status."""
    files = list(client.vector_stores.files.list(vector_store_id=store_id, limit=100))
    for f in files:
        assert f.status in FILE_TERMINAL, f
        if f.status == "failed":
            assert f.last_error is not None and f.last_error.message, f
    by_status = {s: sum(1 for f in files if f.status == s) for s in ("in_progress", *sorted(FILE_TERMINAL))}
    counts = client.vector_stores.retrieve(store_id).file_counts
    assert counts.total == len(files) and counts.in_progress == 0
    assert (counts.completed, counts.failed, counts.cancelled) == (by_status["completed"], by_status["failed"],
                                                                  by_status["cancelled"])
    with stack.db() as db:
        duplicates = db.execute(
            "SELECT c.vector_store_file_id, c.position, count(*) FROM retrieval_chunk c "
            "JOIN retrieval_vectorstore s ON s.id = c.vector_store_id WHERE s.public_id = %s "
            "GROUP BY 1, 2 HAVING count(*) > 1", [store_id]).fetchall()
        mismatched = db.execute(
            "SELECT f.id, f.chunk_count, (SELECT count(*) FROM retrieval_chunk c WHERE c.vector_store_file_id = f.id)"
            " FROM retrieval_vectorstorefile f JOIN retrieval_vectorstore s ON s.id = f.vector_store_id "
            "WHERE s.public_id = %s AND f.status = 'completed'", [store_id]).fetchall()
    assert duplicates == []
    assert [row for row in mismatched if row[1] != row[2] or row[1] == 0] == []
    return by_status


class Stack(LiveStack):
    """The live stack plus the faults the reliability suite inflicts."""

    data_dir: Path = STACK_DATA_DIR
    last_worker_kill: float = 0.0
    killed: frozenset[int] = frozenset()
    readies_at_kill: int = 0

    def kill_workers(self) -> int:
        """SIGKILL the Celery worker (serve restarts it); returns how many processes were killed."""
        wait = self.last_worker_kill + KILL_SPACING - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        pids = self.child_pids("worker")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.last_worker_kill = time.monotonic()
        self.killed = self.killed | set(pids)
        self.readies_at_kill = self.worker_readies()
        return len(pids)

    def worker_readies(self) -> int:
        """How many times a worker has said it is ready (Celery logs it once it consumes)."""
        return len(_WORKER_READY.findall(self.log()))

    def wait_worker(self, timeout: float = 180) -> None:
        """Until serve runs a worker that is not one we killed, and it is ready (on a loaded machine a restarted
        worker takes a minute to import LiteLLM)."""
        wait_until(lambda: [p for p in self.child_pids("worker") if p not in self.killed]
                   and self.worker_readies() > self.readies_at_kill, timeout=timeout, interval=0.5,
                   what="the worker's restart")

    def kill_redis(self) -> None:
        from assistants_project import embedded

        pid = embedded._redis_pid(self.data_dir)
        assert pid, "the embedded Redis has no pid file"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), timeout=10, what="Redis to die")

    def start_redis(self) -> None:
        from assistants_project import embedded

        embedded.ensure_redis(self.data_dir)

    def stop_postgres(self) -> None:
        """Stop the embedded Postgres (a fast shutdown: open sessions are cut, as in a crash or failover)."""
        from assistants_project import embedded

        embedded.stop_postgres(self.data_dir)

    def start_postgres(self) -> None:
        from assistants_project import embedded

        embedded.ensure_postgres(self.data_dir)

    def db(self):
        """An autocommit connection to the stack's database, for what the API does not show (use in ``with``)."""
        import psycopg

        from assistants_project import embedded

        params = embedded.ensure_postgres(self.data_dir)
        return psycopg.connect(dbname=params["NAME"], user=params["USER"], host=params["HOST"], autocommit=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reset_stores(data_dir: Path) -> None:
    import psycopg
    import redis

    from assistants_project import embedded

    data_dir.mkdir(parents=True, exist_ok=True)
    params = embedded.ensure_postgres(data_dir)
    with psycopg.connect(dbname="postgres", user="postgres", host=params["HOST"], autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {params['NAME']} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {params['NAME']}")
    redis.Redis.from_url(embedded.ensure_redis(data_dir)).flushall()


def _warm_up(stack: LiveStack) -> None:
    """One run end to end before any scenario: the web process and the worker import LiteLLM on their first run
    (tens of seconds on a loaded machine), which is no part of what the scenarios time."""
    client = stack.client(timeout=180)
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "warm up"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=200, timeout=180)
    assert run.status == "completed", run.last_error


@pytest.fixture(scope="session")
def reliability_fake():
    from tests.fake_llm import FakeLLM

    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="session")
def reliability_stack(reliability_fake):
    """One stack for the whole suite (its own data dir, apart from the e2e tests' stack)."""
    from assistants_project import embedded

    _reset_stores(STACK_DATA_DIR)
    port = free_port()
    log_path = STACK_DATA_DIR / "serve.log"
    log_path.write_text("")
    proc = start_serve(reliability_fake.base_url, port, log_path, **STACK_ENV)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(base_url, proc, log_path, timeout=300)  # a loaded 2-core machine can take minutes
        _warm_up(LiveStack(base_url=base_url, api_key=E2E_API_KEY, fake=reliability_fake, proc=proc,
                           log_path=log_path))
        yield Stack(base_url=base_url, api_key=E2E_API_KEY, fake=reliability_fake, proc=proc,
                    log_path=log_path)
    finally:
        stop_serve(proc)
        embedded.stop_redis(STACK_DATA_DIR)
        embedded.stop_postgres(STACK_DATA_DIR)


@pytest.fixture
def stack(reliability_stack):
    """The stack with the fake LLM's rules and fault settings cleared, and a worker running."""
    reliability_stack.fake.reset()
    reliability_stack.fake.hang_seconds = 60
    reliability_stack.wait_worker()
    return reliability_stack


@pytest.fixture
def client(stack):
    return stack.client(timeout=30)


@pytest.fixture
def assistant(client):
    return client.beta.assistants.create(model="gpt-4o-mini", instructions="Be brief.", tools=[{
        "type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}])
