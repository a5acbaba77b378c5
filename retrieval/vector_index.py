"""The indexer: moves new vectors from the pending table into the HNSW-indexed one.

Why deferred: an HNSW insert is by far the dearest part of storing a chunk (about 3 ms of Postgres CPU at 1536
dimensions, against under 1 ms for everything else), so ingestion writes vectors to ``retrieval_pendingchunkvector``,
which has no vector index, and a file is ``completed`` (and searchable: search scans pending vectors exactly) as
soon as its chunks are stored. This task then inserts them into the graph, in short batches.

While files are being ingested the indexer gives way to them, so a batch of files is not slowed by graph inserts,
but only while the oldest pending vector is younger than VECTOR_INDEX_DEFER_SECONDS and fewer than
DEFER_MAX_PENDING vectors wait (searches scan a store's pending vectors exactly: about 6 µs a chunk at 1536
dimensions). A steady stream of files therefore still gets indexed, at the rate HNSW allows.

A group of VECTOR_INDEX_CONCURRENCY tasks does the work (HNSW inserts are CPU-bound in Postgres; concurrent ones
are safe, and each batch takes rows the others skip). It is sent after a file is stored with vectors unless a
group is alive (a Redis flag, kept fresh by its tasks while they work); beat checks for forgotten pending vectors
as a safety net.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from kombu.exceptions import OperationalError as KombuOperationalError
from redis import RedisError

from assistants_project.redis import redis_client

logger = logging.getLogger(__name__)

BATCH = 200  # vectors moved per transaction (~1 s of graph inserts at 1536 dimensions on this kind of machine)
DEFER_MAX_PENDING = 20_000
DEFER_POLL_SECONDS = 2.0
TASK_SECONDS = 60.0  # a task then hands over to a fresh one: worker threads free up, time limits never hit
ALIVE_KEY = "retrieval:vector-index:alive"
ALIVE_SECONDS = 60  # a group whose tasks all died is forgotten after this long


@dataclass(frozen=True)
class IndexOutcome:
    moved: int
    deferred: bool  # stopped early (to give way to ingestion, or out of time); pending vectors remain


def schedule(countdown: float = 1.0) -> bool:
    """Send the indexer group unless one is alive. True if it was sent."""
    try:
        if not redis_client().set(ALIVE_KEY, 1, nx=True, ex=ALIVE_SECONDS):
            return False
    except RedisError as exc:
        logger.warning("Could not check the indexer flag, sending the indexer anyway: %s", exc)
    try:
        _send(countdown=countdown, count=settings.VECTOR_INDEX_CONCURRENCY)
    except KombuOperationalError as exc:  # the file is stored all the same; beat sends the indexer later
        logger.warning("Could not send the indexer (broker unreachable): %s", exc)
        _forget_group()
        return False
    return True


def schedule_if_pending() -> bool:
    """Beat's safety net: vectors left pending (a lost task, a worker killed mid-batch) get an indexer."""
    return pending_count(at_most=1) > 0 and schedule(countdown=0)


def run_indexer() -> int:
    """One task of the group: index until nothing is pending, or stop early (ingestion has priority, or the task
    has run TASK_SECONDS) and send itself again."""
    outcome = index_pending(batch=BATCH, on_batch=_keep_alive, seconds=TASK_SECONDS)
    if outcome.deferred:
        _keep_alive()
        _send(countdown=DEFER_POLL_SECONDS if outcome.moved == 0 else 0, count=1)
    else:
        _forget_group()
        if pending_count(at_most=1):  # stored after this task's last batch, by a file that saw the flag still set
            schedule()
    return outcome.moved


def _send(*, countdown: float, count: int) -> None:
    from retrieval.tasks import chunk_vectors_index

    for _ in range(count):
        chunk_vectors_index.apply_async(countdown=countdown)


def _keep_alive() -> None:
    try:
        redis_client().set(ALIVE_KEY, 1, ex=ALIVE_SECONDS)
    except RedisError as exc:
        logger.warning("Could not refresh the indexer flag: %s", exc)


def _forget_group() -> None:
    try:
        redis_client().delete(ALIVE_KEY)
    except RedisError as exc:
        logger.warning("Could not clear the indexer flag: %s", exc)


def index_pending(*, defer: bool = True, batch: int = BATCH, on_batch=None,
                  seconds: float | None = None) -> IndexOutcome:
    """Move pending vectors into the indexed table until none are left, or until (``defer``) ingestion has priority
    or ``seconds`` have passed."""
    moved, deadline = 0, None if seconds is None else time.monotonic() + seconds
    while True:
        if defer and ingestion_has_priority():
            return IndexOutcome(moved=moved, deferred=True)
        count = _move_batch(batch)
        moved += count
        if count < batch:
            return IndexOutcome(moved=moved, deferred=False)
        if on_batch is not None:
            on_batch()
        if deadline is not None and time.monotonic() >= deadline:  # after a batch: every task makes progress
            return IndexOutcome(moved=moved, deferred=True)


def ingestion_has_priority() -> bool:
    """Files are being ingested, and the pending vectors are few and recent enough to wait for them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM retrieval_vectorstorefile WHERE status = 'in_progress'), "
            "(SELECT clock_timestamp() - queued_at < make_interval(secs => %s) FROM retrieval_pendingchunkvector "
            " ORDER BY chunk_id LIMIT 1), "
            "(SELECT count(*) FROM (SELECT 1 FROM retrieval_pendingchunkvector LIMIT %s) AS p)",
            [settings.VECTOR_INDEX_DEFER_SECONDS, DEFER_MAX_PENDING])
        busy, recent, pending = cursor.fetchone()
    return bool(busy and recent and pending < DEFER_MAX_PENDING)


def pending_count(*, at_most: int | None = None) -> int:
    """Vectors waiting for the index; with ``at_most``, counting stops there (a cheap "any?" or "too many?")."""
    limit = "" if at_most is None else f" LIMIT {int(at_most)}"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM retrieval_pendingchunkvector{limit}) AS p")
        return cursor.fetchone()[0]


def _move_batch(limit: int) -> int:
    """One transaction: the oldest pending vectors that no other indexer holds go to the indexed table. Their chunks
    are locked too (KEY SHARE, skipping any being deleted), so a concurrent delete of a file never deadlocks with
    this batch: it waits for it, then removes the moved vectors through the foreign key's cascade."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "WITH picked AS (SELECT c.id FROM retrieval_pendingchunkvector p "
            "  JOIN retrieval_chunk c ON c.id = p.chunk_id "
            "  ORDER BY p.chunk_id LIMIT %s FOR UPDATE OF p SKIP LOCKED FOR KEY SHARE OF c SKIP LOCKED), "
            "moved AS (DELETE FROM retrieval_pendingchunkvector p USING picked WHERE p.chunk_id = picked.id "
            "  RETURNING p.chunk_id, p.vector_store_id, p.vector_store_file_id, p.embedding) "
            "INSERT INTO retrieval_chunkvector (chunk_id, vector_store_id, vector_store_file_id, embedding) "
            "SELECT * FROM moved", [limit])
        return cursor.rowcount
