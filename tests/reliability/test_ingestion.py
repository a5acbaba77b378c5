"""Ingestion under faults, on the real stack (serve + worker + beat, embedded Postgres and Redis, the fake LLM for
embeddings): the worker SIGKILLed at random points of ingestions, Redis killed and restarted while files attach.
Every file ends terminal (completed, or failed with a reason) within the configured bounds, batches end, no chunk
is stored twice, file_counts agree with the files.

RELIABILITY_ROUNDS sets how many kill rounds run (3 by default, for CI; the long profile uses 20)."""

from __future__ import annotations

import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.live import E2E_DATA_DIR, e2e_db, e2e_env

pytestmark = pytest.mark.e2e

ROUNDS = int(os.environ.get("RELIABILITY_ROUNDS", "3"))
_ENV = e2e_env("http://unused")
# A silent file is noticed within heartbeat timeout + sweep interval; a killed worker restarts in a few seconds
# (serve restarts it, the worker preloads LiteLLM); each attempt then takes seconds here.
BOUND_SECONDS = (int(_ENV["INGESTION_HEARTBEAT_TIMEOUT_SECONDS"]) + int(_ENV["INGESTION_SWEEP_INTERVAL_SECONDS"])
                 ) * 3 + 60
TERMINAL = {"completed", "failed", "cancelled"}
KILL_SPACING_SECONDS = 12  # serve gives up on a child restarted more than 5 times a minute


def _upload(client, name: str, words: int, seed: int):
    rng = random.Random(seed)
    text = " ".join(f"{rng.choice(['otter', 'heron', 'lemur', 'ibis', 'walrus'])}{rng.randrange(10_000)}"
                    for _ in range(words))
    return client.files.create(file=(name, text.encode(), "text/plain"), purpose="assistants")


def _kill_workers(live) -> list[int]:
    pids = live.child_pids("worker")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def _wait_worker_back(live, killed: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if [p for p in live.child_pids("worker") if p not in killed]:
            return
        time.sleep(0.2)
    raise AssertionError("serve did not restart the worker")


def _assert_consistent(client, store_id: str) -> dict:
    """Every file terminal with a reason if failed; file_counts match the files; no duplicate chunk."""
    files = list(client.vector_stores.files.list(vector_store_id=store_id, limit=100))
    for f in files:
        assert f.status in TERMINAL, f
        if f.status == "failed":
            assert f.last_error is not None and f.last_error.message, f
    counts = client.vector_stores.retrieve(store_id).file_counts
    by_status = {s: sum(1 for f in files if f.status == s) for s in ("in_progress", "completed", "failed",
                                                                      "cancelled")}
    assert counts.total == len(files) and counts.in_progress == 0
    assert (counts.completed, counts.failed, counts.cancelled) == (by_status["completed"], by_status["failed"],
                                                                  by_status["cancelled"])
    with e2e_db() as db:
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


@pytest.mark.timeout(120 + ROUNDS * (BOUND_SECONDS + KILL_SPACING_SECONDS + 60))
def test_worker_sigkilled_at_random_points_of_ingestions(live):
    client = live.client()
    rng = random.Random(os.environ.get("RELIABILITY_SEED", "ingest"))
    outcomes = {"completed": 0, "failed": 0, "cancelled": 0}
    last_kill = -KILL_SPACING_SECONDS
    for round_no in range(ROUNDS):
        time.sleep(max(0.0, last_kill + KILL_SPACING_SECONDS - time.monotonic()))
        live.fake.embedding_delay = rng.uniform(0.2, 1.5)  # the kill lands before, during or after embedding
        uploads = [_upload(client, f"r{round_no}-{i}.txt", rng.randrange(300, 3000), seed=round_no * 10 + i)
                   for i in range(3)]
        store = client.vector_stores.create(name=f"kill round {round_no}")
        with ThreadPoolExecutor(1) as pool:
            polled = pool.submit(client.vector_stores.file_batches.create_and_poll, vector_store_id=store.id,
                                 file_ids=[u.id for u in uploads], poll_interval_ms=300)
            time.sleep(rng.uniform(0.0, 2.0))
            killed, last_kill = _kill_workers(live), time.monotonic()
            live.fake.embedding_delay = 0.0
            batch = polled.result(timeout=BOUND_SECONDS)  # upload_and_poll-style polling returns
        assert batch.status == "completed" and batch.file_counts.in_progress == 0, batch
        by_status = _assert_consistent(client, store.id)
        for status, n in by_status.items():
            if status in outcomes:
                outcomes[status] += n
        _wait_worker_back(live, killed)
    # One kill per round costs a file at most one of its INGESTION_MAX_ATTEMPTS: nothing is lost.
    print(f"\ningestion kill rounds: {ROUNDS}, files: {outcomes}")
    assert outcomes == {"completed": 3 * ROUNDS, "failed": 0, "cancelled": 0}


def test_redis_killed_and_restarted_while_files_attach(live):
    from assistants_project import embedded

    client = live.client()
    uploads = [_upload(client, f"redis-{i}.txt", 400, seed=1000 + i) for i in range(4)]
    store = client.vector_stores.create(name="redis down")
    pid = embedded._redis_pid(E2E_DATA_DIR)
    assert pid
    os.kill(pid, signal.SIGKILL)
    attached, refused = [], []
    try:
        with live.http() as http:
            for upload in uploads:
                started = time.monotonic()
                response = http.post(f"/vector_stores/{store.id}/files", json={"file_id": upload.id})
                assert time.monotonic() - started < 30, "the API hung on the broker"
                assert response.status_code in (200, 503), response.text  # never a 500
                (attached if response.status_code == 200 else refused).append(upload.id)
    finally:
        embedded.ensure_redis(E2E_DATA_DIR)
    deadline = time.monotonic() + BOUND_SECONDS
    while client.vector_stores.retrieve(store.id).file_counts.in_progress:
        assert time.monotonic() < deadline, "files attached while Redis was down never finished"
        time.sleep(0.5)
    listed = {f.id for f in client.vector_stores.files.list(vector_store_id=store.id, limit=100)}
    assert listed == set(attached)  # a 503 wrote nothing; a 200 was not lost
    by_status = _assert_consistent(client, store.id)
    assert by_status["completed"] == len(attached)
    print(f"\nredis down: {len(attached)} attached (all completed), {len(refused)} refused with 503")
    with httpx.Client(timeout=10) as plain:  # the stack is healthy again
        assert plain.get(live.base_url.rsplit("/v1", 1)[0] + "/readyz").status_code == 200


def test_an_archive_bomb_fails_cleanly_and_the_worker_keeps_no_memory(live):
    """A small DOCX whose XML inflates to 45 MB is refused before parsing; one just under the archive cap is parsed
    (in a child process) and refused for its chunk count before anything is embedded. The worker's memory stays
    where it was."""
    import psutil

    from retrieval.tests.docs import make_docx_bomb

    client = live.client()
    [worker] = live.child_pids("worker")
    before = psutil.Process(worker).memory_info().rss
    bomb = client.files.create(file=("bomb.docx", make_docx_bomb(45 * 1024 * 1024)), purpose="assistants")
    heavy = client.files.create(file=("heavy.docx", make_docx_bomb(18 * 1024 * 1024)), purpose="assistants")
    store = client.vector_stores.create(name="bombs")
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[bomb.id, heavy.id])
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(client.vector_stores.file_batches.poll, batch.id, vector_store_id=store.id,
                            poll_interval_ms=300).result(timeout=BOUND_SECONDS)
    assert batch.status == "failed" and batch.file_counts.failed == 2
    errors = {f.id: f.last_error for f in client.vector_stores.files.list(vector_store_id=store.id)}
    assert errors[bomb.id].code == "invalid_file" and "XML inflates to" in errors[bomb.id].message
    assert errors[heavy.id].code == "invalid_file" and "chunks; the limit is 10,000" in errors[heavy.id].message
    assert live.fake.embedding_requests() == []
    after = psutil.Process(worker).memory_info().rss
    print(f"\nworker RSS {before / 1e6:.0f} MB -> {after / 1e6:.0f} MB after both files")
    assert after - before < 100e6
    _assert_consistent(client, store.id)
