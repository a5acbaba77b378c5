"""Ingestion under faults, on the real stack (serve + worker + beat, embedded Postgres and Redis, the fake LLM for
embeddings): the worker SIGKILLed at random points of ingestions, Redis killed and restarted while files attach,
an archive bomb. Every file ends terminal (completed, or failed with a reason) within the configured bounds,
batches end, no chunk is stored twice, file_counts agree with the files."""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.reliability.conftest import (
    INGESTION_BOUND,
    KILL_SPACING,
    assert_store_consistent,
    rounds,
    scenario_timeout,
    upload_text,
    wait_files_terminal,
)

pytestmark = pytest.mark.e2e

ROUNDS = rounds(1, 20)


@pytest.mark.timeout(scenario_timeout(180 + INGESTION_BOUND + KILL_SPACING + 60, ROUNDS))
def test_worker_sigkilled_at_random_points_of_ingestions(client, stack):
    rng = random.Random(os.environ.get("RELIABILITY_SEED", "ingest"))
    outcomes = {"completed": 0, "failed": 0, "cancelled": 0}
    for round_no in range(ROUNDS):
        stack.fake.embedding_delay = rng.uniform(0.2, 1.5)  # the kill lands before, during or after embedding
        uploads = [upload_text(client, f"r{round_no}-{i}.txt", rng.randrange(300, 3000), seed=round_no * 10 + i)
                   for i in range(3)]
        store = client.vector_stores.create(name=f"kill round {round_no}")
        with ThreadPoolExecutor(1) as pool:
            polled = pool.submit(client.vector_stores.file_batches.create_and_poll, vector_store_id=store.id,
                                 file_ids=[u.id for u in uploads], poll_interval_ms=300)
            time.sleep(rng.uniform(0.0, 2.0))
            assert stack.kill_workers() >= 1, "no worker to kill"
            killed_at = time.monotonic()
            stack.fake.embedding_delay = 0.0
            stack.wait_worker()  # the fault lasts until serve has a ready worker again (a minute under load)
            back_at = time.monotonic()
            batch = polled.result(timeout=INGESTION_BOUND)  # upload_and_poll-style polling returns
        assert batch.status == "completed" and batch.file_counts.in_progress == 0, batch
        by_status = assert_store_consistent(client, stack, store.id)
        for status in outcomes:
            outcomes[status] += by_status[status]
        print(f"ingestion kill {round_no + 1}/{ROUNDS}: worker back after {back_at - killed_at:.0f}s, the batch "
              f"ended {time.monotonic() - back_at:.0f}s later: {by_status}", flush=True)
    # One kill per round costs a file at most one of its INGESTION_MAX_ATTEMPTS: nothing is lost.
    print(f"\ningestion kill rounds: {ROUNDS}, files: {outcomes}")
    assert outcomes == {"completed": 3 * ROUNDS, "failed": 0, "cancelled": 0}


def test_redis_killed_and_restarted_while_files_attach(client, stack):
    uploads = [upload_text(client, f"redis-{i}.txt", 400, seed=1000 + i) for i in range(4)]
    store = client.vector_stores.create(name="redis down")
    stack.kill_redis()
    attached, refused = [], []
    try:
        with stack.http() as http:
            for upload in uploads:
                started = time.monotonic()
                response = http.post(f"/vector_stores/{store.id}/files", json={"file_id": upload.id})
                assert time.monotonic() - started < 30, "the API hung on the broker"
                assert response.status_code in (200, 503), response.text  # never a 500
                (attached if response.status_code == 200 else refused).append(upload.id)
    finally:
        stack.start_redis()
    wait_files_terminal(client, store.id)
    listed = {f.id for f in client.vector_stores.files.list(vector_store_id=store.id, limit=100)}
    assert listed == set(attached)  # a 503 wrote nothing; a 200 was not lost
    by_status = assert_store_consistent(client, stack, store.id)
    assert by_status["completed"] == len(attached)
    print(f"\nredis down: {len(attached)} attached (all completed), {len(refused)} refused with 503")
    with httpx.Client(timeout=10) as plain:  # the stack is healthy again
        assert plain.get(stack.base_url.rsplit("/v1", 1)[0] + "/readyz").status_code == 200


def test_an_archive_bomb_fails_cleanly_and_the_worker_keeps_no_memory(client, stack):
    """A small DOCX whose XML inflates to 45 MB is refused before parsing; one just under the archive cap is parsed
    (in a child process) and refused for its chunk count before anything is embedded. The worker's memory stays
    where it was."""
    import psutil

    from retrieval.tests.docs import make_docx_bomb

    [worker] = [p for p in stack.child_pids("worker") if p not in stack.killed]
    before = psutil.Process(worker).memory_info().rss
    bomb = client.files.create(file=("bomb.docx", make_docx_bomb(45 * 1024 * 1024)), purpose="assistants")
    heavy = client.files.create(file=("heavy.docx", make_docx_bomb(18 * 1024 * 1024)), purpose="assistants")
    store = client.vector_stores.create(name="bombs")
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[bomb.id, heavy.id])
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(client.vector_stores.file_batches.poll, batch.id, vector_store_id=store.id,
                            poll_interval_ms=300).result(timeout=INGESTION_BOUND)
    assert batch.status == "failed" and batch.file_counts.failed == 2
    errors = {f.id: f.last_error for f in client.vector_stores.files.list(vector_store_id=store.id)}
    assert errors[bomb.id].code == "invalid_file" and "XML inflates to" in errors[bomb.id].message
    assert errors[heavy.id].code == "invalid_file" and "chunks; the limit is 10,000" in errors[heavy.id].message
    assert stack.fake.embedding_requests() == []
    after = psutil.Process(worker).memory_info().rss
    print(f"\nworker RSS {before / 1e6:.0f} MB -> {after / 1e6:.0f} MB after both files")
    assert after - before < 100e6
    assert_store_consistent(client, stack, store.id)
