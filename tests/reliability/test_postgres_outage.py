"""Postgres stopped and started under requests, with runs and file ingestions in flight: while it is down every
request answers a prompt 503 in OpenAI's envelope (never a hang, never a 500) and /readyz says the database is
down without saying how; once it is back every run and file ends in a terminal state within the configured
bounds, nothing is duplicated, and every object acknowledged with a 2xx exists."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.reliability.conftest import (
    DB_POOL_TIMEOUT,
    INGESTION_BOUND,
    TERMINAL_BOUND,
    assert_no_duplicates,
    assert_store_consistent,
    rounds,
    scenario_timeout,
    upload_text,
    wait_files_terminal,
    wait_terminal,
    wait_until,
)

pytestmark = pytest.mark.e2e

ROUNDS = rounds(1, 3)
ANSWER = " ".join(f"pg{i}" for i in range(100))
OUTAGE_SECONDS = 4
# A request may wait DB_POOL_TIMEOUT for a connection before its 503; the rest is this loaded machine's slack.
ANSWER_BOUND = DB_POOL_TIMEOUT + 5


class Load:
    """A client sending requests in a loop (create a thread with a message; every few, start a run on it),
    recording every answer: status, time taken, body, and what a 2xx acknowledged."""

    def __init__(self, stack, assistant_id: str) -> None:
        self.stack, self.assistant_id = stack, assistant_id
        self.answers: list[tuple[str, int, float, dict | None]] = []
        self.threads: list[str] = []
        self.runs: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _call(self, http: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:  # a hang or a dropped connection: recorded, the test fails on it
            self.answers.append((path, 0, time.monotonic() - started, {"transport": repr(exc)}))
            return None
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
        self.answers.append((path, response.status_code, time.monotonic() - started, body))
        return response

    def _loop(self) -> None:
        with self.stack.http() as http:
            http.timeout = httpx.Timeout(60)
            number = 0
            while not self.stop.is_set():
                number += 1
                made = self._call(http, "POST", "/threads", json={
                    "messages": [{"role": "user", "content": "through the db outage"}], "metadata": {"n": str(number)}})
                if made is not None and made.status_code == 200:
                    self.threads.append(made.json()["id"])
                    if number % 4 == 0:
                        run = self._call(http, "POST", f"/threads/{made.json()['id']}/runs",
                                         json={"assistant_id": self.assistant_id})
                        if run is not None and run.status_code == 200:
                            self.runs.append((made.json()["id"], run.json()["id"]))
                self._call(http, "GET", f"/assistants/{self.assistant_id}")
                time.sleep(0.2)


def _timed(call):
    started = time.monotonic()
    return call(), time.monotonic() - started


@pytest.mark.timeout(scenario_timeout(TERMINAL_BOUND + INGESTION_BOUND + 60, ROUNDS))
def test_postgres_stopped_and_started_under_requests(client, assistant, stack):
    stack.fake.add_rule("through the db outage", text=ANSWER, token_delay=0.03)
    root = stack.base_url.rsplit("/v1", 1)[0]
    for number in range(ROUNDS):
        # in flight when Postgres stops: runs mid-answer and files mid-embedding
        uploads = [upload_text(client, f"pg-{number}-{i}.txt", 1500, seed=2000 + 10 * number + i) for i in range(3)]
        store = client.vector_stores.create(name=f"postgres outage {number}")
        stack.fake.embedding_delay = 1.5
        client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[u.id for u in uploads])
        runs = []
        for _ in range(3):
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "through the db outage"}])
            runs.append((thread.id, client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id).id))
        load = Load(stack, assistant.id)
        load.thread.start()
        time.sleep(1.0)

        stack.stop_postgres()
        down_at = time.monotonic()
        try:
            with stack.http() as http, httpx.Client(timeout=30) as plain:
                while time.monotonic() - down_at < OUTAGE_SECONDS:
                    answer, took = _timed(lambda http=http: http.get(f"/assistants/{assistant.id}"))
                    assert answer.status_code == 503 and took < ANSWER_BOUND, (answer.status_code, took)
                    error = answer.json()["error"]
                    assert error["type"] == "server_error" and error["message"], error
                    ready, took = _timed(lambda plain=plain: plain.get(f"{root}/readyz"))
                    assert ready.status_code == 503 and took < 5, (ready.status_code, took)
                    assert ready.json()["down"] == ["database"]
                    assert str(stack.data_dir) not in ready.text and "postgres" not in ready.text.lower()
        finally:
            stack.start_postgres()
            stack.fake.embedding_delay = 0.0
        back_at = time.monotonic()
        # back: the server answers again without a restart
        wait_until(lambda: httpx.get(f"{root}/readyz", timeout=10).status_code == 200, timeout=30,
                   what="/readyz to answer 200 again")
        time.sleep(2.0)
        load.stop.set()
        load.thread.join(60)
        assert not load.thread.is_alive()

        # while it was down: 503s in the envelope, promptly; never a 500, never a hang
        statuses = sorted({status for _, status, _, _ in load.answers})
        assert set(statuses) <= {200, 503}, [a for a in load.answers if a[1] not in (200, 503)][:5]
        refused = [a for a in load.answers if a[1] == 503]
        assert refused, "no request reached the server while Postgres was down"
        assert all(body and body["error"]["message"] and body["error"]["type"] == "server_error"
                   for _, _, _, body in refused)
        slowest = max(took for _, _, took, _ in load.answers)
        assert slowest < ANSWER_BOUND, slowest

        # every run and file ends within bounds; nothing duplicated
        for thread_id, run_id in runs + load.runs:
            run = wait_terminal(client, thread_id, run_id, timeout=TERMINAL_BOUND)
            # an attempt the outage broke is re-sent by the sweeper (as after a worker crash), not failed
            assert run.status == "completed", (run.status, run.last_error)
            messages, _ = assert_no_duplicates(client, thread_id, run_id)
            assert [m.content[0].text.value for m in messages] == [ANSWER]
        wait_files_terminal(client, store.id, timeout=INGESTION_BOUND)
        by_status = assert_store_consistent(client, stack, store.id)
        assert by_status["completed"] == len(uploads), by_status
        # nothing lost: every thread acknowledged exists with its one message
        for thread_id in load.threads:
            assert [m.role for m in client.beta.threads.messages.list(thread_id=thread_id).data][-1:] == ["user"]
        outcomes = [wait_terminal(client, t, r).status for t, r in runs + load.runs]
        print(f"\npostgres outage {number}: down {back_at - down_at:.1f}s; {len(load.answers)} requests, "
              f"{len(refused)} answered 503 (slowest answer {slowest:.1f}s); runs {outcomes}; files {by_status}")

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "after the outage"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=200)
    assert run.status == "completed"
