"""The indexer: new vectors wait in the pending table, then move into the HNSW-indexed one; deletes follow them."""

import pytest
from django.db import connection, transaction

from retrieval import tasks, vector_index
from retrieval.models import Chunk, ChunkVector, PendingChunkVector, VectorStoreFile
from retrieval.search import search
from retrieval.services import vector_store_create, vector_store_delete, vector_store_file_delete

pytestmark = pytest.mark.django_db


def store_of(project, make_file, ingest, n=3, name="kb"):
    files = [make_file(project, f"f{i}.txt", f"file {i} talks about topic{i} and teapots") for i in range(n)]
    store = vector_store_create(project=project, name=name, file_ids=[f.public_id for f in files])
    assert set(ingest()) == {"completed"}
    return store


def leave_a_file_in_progress(project, make_file) -> None:
    """A file being ingested (its task never runs here): the indexer gives way to it."""
    busy = make_file(project, "busy.txt", "still being ingested")
    vector_store_create(project=project, file_ids=[busy.public_id])


def test_ingestion_leaves_vectors_pending_and_schedules_the_indexer(project, make_file, fake_embeddings, ingest,
                                                                    django_capture_on_commit_callbacks,
                                                                    indexer_sends):
    with django_capture_on_commit_callbacks(execute=True):
        store_of(project, make_file, ingest, n=2)
    assert PendingChunkVector.objects.count() == 2 and not ChunkVector.objects.exists()
    assert indexer_sends == [(1.0, 2)], "storing files with vectors sends one indexer group"


def test_keyword_only_files_schedule_nothing(project, make_file, keyword_only, ingest,
                                             django_capture_on_commit_callbacks, indexer_sends):
    with django_capture_on_commit_callbacks(execute=True):
        store_of(project, make_file, ingest, n=1)
    assert indexer_sends == [] and not PendingChunkVector.objects.exists()


def test_index_pending_moves_every_vector_in_batches(project, make_file, fake_embeddings, ingest):
    store = store_of(project, make_file, ingest, n=5)
    pending = {v.chunk_id: list(v.embedding) for v in PendingChunkVector.objects.all()}
    outcome = vector_index.index_pending(defer=False, batch=2)
    assert outcome == vector_index.IndexOutcome(moved=5, deferred=False)
    assert not PendingChunkVector.objects.exists()
    indexed = {v.chunk_id: list(v.embedding) for v in ChunkVector.objects.all()}
    assert indexed == pending  # the same vectors, nothing lost or duplicated
    row = ChunkVector.objects.get(chunk_id=next(iter(indexed)))
    chunk = Chunk.objects.get(pk=row.chunk_id)
    assert (row.vector_store_id, row.vector_store_file_id) == (store.pk, chunk.vector_store_file_id)
    assert vector_index.index_pending(defer=False).moved == 0


def test_the_indexer_gives_way_to_ingestion_for_a_while(project, make_file, fake_embeddings, ingest, settings):
    store_of(project, make_file, ingest, n=2)
    leave_a_file_in_progress(project, make_file)
    settings.VECTOR_INDEX_DEFER_SECONDS = 3600
    assert vector_index.ingestion_has_priority()
    assert vector_index.index_pending() == vector_index.IndexOutcome(moved=0, deferred=True)
    assert PendingChunkVector.objects.count() == 2

    settings.VECTOR_INDEX_DEFER_SECONDS = 0  # the oldest pending vector has waited long enough
    assert not vector_index.ingestion_has_priority()
    assert vector_index.index_pending() == vector_index.IndexOutcome(moved=2, deferred=False)


def test_too_many_pending_vectors_are_indexed_even_while_ingesting(project, make_file, fake_embeddings, ingest,
                                                                   settings, monkeypatch):
    store_of(project, make_file, ingest, n=3)
    leave_a_file_in_progress(project, make_file)
    settings.VECTOR_INDEX_DEFER_SECONDS = 3600
    monkeypatch.setattr(vector_index, "DEFER_MAX_PENDING", 3)
    assert vector_index.index_pending(batch=1) == vector_index.IndexOutcome(moved=1, deferred=True)
    assert PendingChunkVector.objects.count() == 2  # under the cap again: ingestion has priority once more


def test_nothing_in_progress_means_no_deferral(project, make_file, fake_embeddings, ingest, settings):
    store_of(project, make_file, ingest, n=2)
    settings.VECTOR_INDEX_DEFER_SECONDS = 3600
    assert not vector_index.ingestion_has_priority()


def test_the_task_indexes_and_sends_itself_again_when_it_deferred(project, make_file, fake_embeddings, ingest,
                                                                   settings, indexer_sends):
    store_of(project, make_file, ingest, n=2)
    leave_a_file_in_progress(project, make_file)
    settings.VECTOR_INDEX_DEFER_SECONDS = 3600
    assert vector_index.schedule() and indexer_sends == [(1.0, 2)]
    assert tasks.chunk_vectors_index() == 0
    assert indexer_sends[1:] == [(vector_index.DEFER_POLL_SECONDS, 1)]  # itself only: the group keeps its size
    assert not vector_index.schedule(), "the group is alive: no second one"
    VectorStoreFile.objects.filter(status="in_progress").delete()
    assert tasks.chunk_vectors_index() == 2
    assert ChunkVector.objects.count() == 2 and len(indexer_sends) == 2  # done: nothing sent again
    assert vector_index.schedule(), "the group ended: the next stored file sends a new one"


def test_a_task_out_of_time_hands_over_to_a_fresh_one(project, make_file, fake_embeddings, ingest, monkeypatch,
                                                       indexer_sends):
    store_of(project, make_file, ingest, n=3)
    monkeypatch.setattr(vector_index, "BATCH", 1)
    monkeypatch.setattr(vector_index, "TASK_SECONDS", 0)
    assert tasks.chunk_vectors_index() == 1  # one batch, then out of time
    assert indexer_sends == [(0, 1)] and PendingChunkVector.objects.count() == 2


def test_an_indexer_that_ends_while_vectors_arrive_sends_a_new_group(project, make_file, fake_embeddings, ingest,
                                                                     monkeypatch, indexer_sends,
                                                                     django_capture_on_commit_callbacks):
    """A file stored after the task's last batch but before it dropped the flag saw the group alive and sent
    nothing: the ending task checks once more."""
    store_of(project, make_file, ingest, n=1)
    real_move = vector_index._move_batch

    def move_then_another_file_arrives(limit):
        moved = real_move(limit)
        with django_capture_on_commit_callbacks(execute=True):
            store_of(project, make_file, ingest, n=1, name="late")
        assert indexer_sends == [(1.0, 2)], "the group is alive: the late file sends nothing"
        return moved

    assert vector_index.schedule()
    monkeypatch.setattr(vector_index, "_move_batch", move_then_another_file_arrives)
    assert vector_index.run_indexer() == 1
    assert PendingChunkVector.objects.count() == 1
    assert indexer_sends == [(1.0, 2), (1.0, 2)]  # the ending task's second look sent a new group


def test_a_broker_outage_does_not_fail_the_stored_file(project, make_file, fake_embeddings, ingest, monkeypatch,
                                                       django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    def broker_down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(vector_index, "_send", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        store = store_of(project, make_file, ingest, n=1)  # asserts the file completed
    assert PendingChunkVector.objects.filter(vector_store_id=store.pk).count() == 1
    from assistants_project.redis import redis_client

    assert not redis_client().exists(vector_index.ALIVE_KEY)  # no group is alive: beat's sweep sends one later


def test_beat_sends_an_indexer_for_forgotten_pending_vectors(project, make_file, fake_embeddings, ingest,
                                                             indexer_sends):
    assert not tasks.chunk_vectors_index_sweep() and indexer_sends == []  # nothing pending
    store_of(project, make_file, ingest, n=1)
    assert tasks.chunk_vectors_index_sweep() and indexer_sends == [(0, 2)]
    assert not tasks.chunk_vectors_index_sweep(), "alive group: not sent twice"


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_take_different_rows(project, make_file, fake_embeddings, ingest):
    """Two indexers at once: the second skips the rows the first holds (instead of moving nothing after waiting)."""
    import threading

    store_of(project, make_file, ingest, n=4)
    moved: list[int] = []
    with transaction.atomic(), connection.cursor() as cursor:  # the two oldest, as another open batch holds them
        cursor.execute("SELECT chunk_id FROM retrieval_pendingchunkvector ORDER BY chunk_id LIMIT 2 FOR UPDATE")
        held = [row[0] for row in cursor.fetchall()]
        thread = threading.Thread(target=lambda: moved.append(_move_in_new_connection()))
        thread.start()
        thread.join(10)
    assert moved == [2]
    assert set(PendingChunkVector.objects.values_list("chunk_id", flat=True)) == set(held)


def _move_in_new_connection() -> int:
    try:
        return vector_index._move_batch(10)
    finally:
        connection.close()


@pytest.mark.parametrize("indexed", [False, True], ids=["pending", "indexed"])
def test_detaching_a_file_or_deleting_a_store_removes_its_vectors(project, make_file, fake_embeddings, ingest,
                                                                  indexed):
    store = store_of(project, make_file, ingest, n=2)
    other = store_of(project, make_file, ingest, n=1, name="other")
    if indexed:
        vector_index.index_pending(defer=False)
    table = ChunkVector if indexed else PendingChunkVector
    assert table.objects.count() == 3
    vsf = VectorStoreFile.objects.filter(vector_store=store).order_by("pk").first()
    vector_store_file_delete(vector_store_file=vsf)
    assert not table.objects.filter(vector_store_file_id=vsf.pk).exists() and table.objects.count() == 2
    vector_store_delete(vector_store=store)
    assert list(table.objects.values_list("vector_store_id", flat=True)) == [other.pk]
    assert ChunkVector.objects.count() + PendingChunkVector.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_batch_skips_chunks_being_deleted_instead_of_waiting(project, make_file, fake_embeddings, ingest):
    """A file being deleted in another transaction holds its chunks' row locks: the indexer skips them (no wait,
    no deadlock with the delete's cascade), and the delete then removes their pending vectors."""
    import psycopg

    store_of(project, make_file, ingest, n=2)
    doomed = VectorStoreFile.objects.order_by("pk").first()
    settings_dict = connection.settings_dict
    with psycopg.connect(dbname=settings_dict["NAME"], user=settings_dict["USER"], host=settings_dict["HOST"],
                         port=settings_dict.get("PORT") or None, password=settings_dict.get("PASSWORD") or None,
                         options="-c lock_timeout=5000") as other:
        other.execute("DELETE FROM retrieval_chunk WHERE vector_store_file_id = %s", [doomed.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 5000")  # a wait would fail the test instead of hanging it
        assert vector_index.index_pending(defer=False).moved == 1
        other.commit()
    assert not PendingChunkVector.objects.exists()
    assert list(ChunkVector.objects.values_list("vector_store_file_id", flat=True)) == [
        VectorStoreFile.objects.order_by("pk").last().pk]


def test_search_reads_pending_vectors_before_the_indexer_runs(project, make_file, fake_embeddings, ingest):
    store = store_of(project, make_file, ingest, n=3)
    before = [r.filename for r in search(project=project, vector_store_ids=[store], query="topic2 teapots")]
    vector_index.index_pending(defer=False)
    after = [r.filename for r in search(project=project, vector_store_ids=[store], query="topic2 teapots")]
    assert before[0] == after[0] == "f2.txt" and before == after
