"""The ingestion lifecycle: claim, heartbeat, sweeper (a dead worker's file is sent again, then failed), the broker
down when a file is attached, and what one file may cost (archive inflation, chunks, tokens)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from retrieval import ingestion
from retrieval.ingestion import vector_store_file_claim, vector_store_file_ingest, vector_store_files_sweep
from retrieval.models import Chunk, VectorStoreFile
from retrieval.services import vector_store_create
from retrieval.tests.docs import make_docx_bomb

pytestmark = pytest.mark.django_db


def attach(project, *files):
    store = vector_store_create(project=project, file_ids=[f.public_id for f in files])
    return store, list(VectorStoreFile.objects.filter(vector_store=store).order_by("pk"))


def go_silent(vsf, seconds=3600):
    """What a SIGKILLed worker leaves: a claimed file whose heartbeat stopped."""
    VectorStoreFile.objects.filter(pk=vsf.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


@pytest.fixture
def sent(monkeypatch, django_capture_on_commit_callbacks):
    """Tasks the sweeper or an attach would send (recorded: no worker runs in unit tests)."""
    from retrieval import tasks

    out: list[int] = []
    monkeypatch.setattr(tasks.vector_store_file_ingest, "delay", lambda pk: out.append(pk))
    return out


def test_a_claim_is_exclusive_while_its_holder_beats(project, make_file):
    _, [vsf] = attach(project, make_file(project, "a.txt", "x"))
    assert vector_store_file_claim(vsf_id=vsf.pk, token="worker-a") is not None
    assert vector_store_file_claim(vsf_id=vsf.pk, token="worker-b") is None  # a duplicate delivery
    assert vector_store_file_claim(vsf_id=vsf.pk, token="worker-a") is not None  # a redelivery of the owner's task
    go_silent(vsf)
    assert vector_store_file_claim(vsf_id=vsf.pk, token="worker-b") is not None  # its holder died
    vsf.refresh_from_db()
    assert vsf.claimed_by == "worker-b" and vsf.attempts == 3


def test_the_sweeper_resends_a_dead_workers_file_then_fails_it(project, make_file, fake_embeddings, sent, settings,
                                                               django_capture_on_commit_callbacks):
    settings.INGESTION_MAX_ATTEMPTS = 2
    _, [vsf] = attach(project, make_file(project, "a.txt", "x"))
    for attempt in range(2):
        assert vector_store_file_claim(vsf_id=vsf.pk, token=f"dead-{attempt}") is not None
        assert vector_store_files_sweep() == {"resent": 0, "failed": 0}  # beating: left alone
        go_silent(vsf)
        with django_capture_on_commit_callbacks(execute=True):
            counts = vector_store_files_sweep()
        if attempt == 0:
            assert counts == {"resent": 1, "failed": 0} and sent == [vsf.pk]
            vsf.refresh_from_db()
            assert vsf.status == "in_progress" and vsf.claimed_by is None
    assert counts == {"resent": 0, "failed": 1} and sent == [vsf.pk]
    vsf.refresh_from_db()
    assert vsf.status == "failed" and vsf.last_error["code"] == "server_error"
    assert "stopped unexpectedly" in vsf.last_error["message"]
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "skipped"


def test_an_attempt_that_lost_its_claim_drops_its_result(project, make_file, fake_embeddings, monkeypatch):
    """A worker wedged past its deadline goes silent; the file is taken over. If the old attempt ever finishes,
    it stores nothing (no duplicate chunks)."""
    _, [vsf] = attach(project, make_file(project, "a.txt", "wedged " * 30))
    real_prepare = ingestion.prepare

    def prepare_while_taken_over(row, **kwargs):
        prepared = real_prepare(row, **kwargs)
        go_silent(row)
        monkeypatch.setattr(ingestion, "prepare", real_prepare)
        assert vector_store_file_ingest(vsf_id=row.pk, task_id="rescuer") == "completed"
        return prepared

    monkeypatch.setattr(ingestion, "prepare", prepare_while_taken_over)
    assert vector_store_file_ingest(vsf_id=vsf.pk, task_id="wedged") == "skipped"
    vsf.refresh_from_db()
    assert vsf.status == "completed" and vsf.claimed_by is None
    assert Chunk.objects.filter(vector_store_file=vsf).count() == vsf.chunk_count == 1


@pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection: it must see the row
def test_the_heartbeat_stamps_a_working_file_until_its_deadline(project, make_file, monkeypatch):
    import time

    from retrieval import heartbeat

    monkeypatch.setattr(heartbeat._beater, "interval", 0.05)
    monkeypatch.setattr(heartbeat._beater, "_thread", None)  # a thread of its own, connected in this (committing) test
    _, [vsf] = attach(project, make_file(project, "a.txt", "x"))
    vector_store_file_claim(vsf_id=vsf.pk, token="beating")
    go_silent(vsf)
    with heartbeat.beating("beating", timeout=0.5):
        deadline = time.monotonic() + 5
        while VectorStoreFile.objects.get(pk=vsf.pk).heartbeat_at < timezone.now() - timedelta(seconds=60):
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        time.sleep(0.7)  # past the attempt's deadline: no more beats
        go_silent(vsf)
        time.sleep(0.3)
        assert VectorStoreFile.objects.get(pk=vsf.pk).heartbeat_at < timezone.now() - timedelta(seconds=60)


def test_broker_down_at_attach_answers_success_and_the_sweeper_sends_it(api, project, make_file, monkeypatch,
                                                                        django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    from retrieval import tasks

    def down(pk):
        raise OperationalError("Error 111 connecting to redis. Connection refused.")

    monkeypatch.setattr(tasks.vector_store_file_ingest, "delay", down)
    doc = make_file(project, "a.txt", "x")
    store = vector_store_create(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/v1/vector_stores/{store.public_id}/files", {"file_id": doc.public_id}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "in_progress"
    vsf = VectorStoreFile.objects.get(vector_store=store)
    sent = []
    monkeypatch.setattr(tasks.vector_store_file_ingest, "delay", lambda pk: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert vector_store_files_sweep() == {"resent": 0, "failed": 0}  # not silent yet
        go_silent(vsf, seconds=61)
        assert vector_store_files_sweep() == {"resent": 1, "failed": 0}
    assert sent == [vsf.pk]


def test_a_docx_inflating_past_the_limit_is_refused_before_parsing(project, make_file, fake_embeddings):
    bomb = make_docx_bomb(45 * 1024 * 1024)
    assert len(bomb) < 300 * 1024  # a few hundred KB on disk, 45 MB of XML inflated
    _, [vsf] = attach(project, make_file(project, "bomb.docx", bomb))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "failed"
    vsf.refresh_from_db()
    assert vsf.last_error["code"] == "invalid_file" and "inflates to" in vsf.last_error["message"]
    assert fake_embeddings.embedding_requests() == [] and not Chunk.objects.exists()


def test_chunks_and_tokens_per_file_are_capped_before_embedding(project, make_file, fake_embeddings, settings):
    words = " ".join(f"word{i}" for i in range(3000))
    settings.INGESTION_MAX_CHUNKS = 5
    _, [vsf] = attach(project, make_file(project, "many.txt", words))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "failed"
    vsf.refresh_from_db()
    assert vsf.last_error["code"] == "invalid_file" and "chunks; the limit is 5 per file" in vsf.last_error["message"]
    settings.INGESTION_MAX_CHUNKS, settings.INGESTION_MAX_TOKENS = 10_000, 1000
    _, [vsf] = attach(project, make_file(project, "many2.txt", words))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "failed"
    vsf.refresh_from_db()
    assert "tokens; the limit is 1,000 per file" in vsf.last_error["message"]
    assert fake_embeddings.embedding_requests() == []


def test_a_parser_that_runs_out_of_time_fails_the_file(project, make_file, fake_embeddings, settings):
    from retrieval import extract

    settings.INGESTION_TIMEOUT_SECONDS = 0.001
    _, [vsf] = attach(project, make_file(project, "a.txt", "x " * extract.ISOLATE_ABOVE_BYTES))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "failed"
    vsf.refresh_from_db()
    assert vsf.last_error == {"code": "invalid_file",
                              "message": "The file could not be processed: it took longer than 0 seconds."}


class _DiesWhenUnpickled:
    """Kills the child that receives it, as the kernel's OOM killer would kill a parser."""

    def __reduce__(self):
        import os

        return os._exit, (9,)


def test_a_parser_that_dies_is_reported_and_this_process_carries_on():
    from retrieval import extract

    with pytest.raises(extract.ExtractCrashed, match="stopped unexpectedly"):
        extract._in_child((_DiesWhenUnpickled(),), timeout=60)


def test_a_batch_ends_when_the_sweeper_gives_up_on_its_file(api, project, make_file, settings, sent,
                                                            django_capture_on_commit_callbacks):
    settings.INGESTION_MAX_ATTEMPTS = 1
    store = vector_store_create(project=project)
    doc = make_file(project, "a.txt", "x")
    with django_capture_on_commit_callbacks(execute=True):
        batch = api.post(f"/v1/vector_stores/{store.public_id}/file_batches", {"file_ids": [doc.public_id]}).json()
    vsf = VectorStoreFile.objects.get(vector_store=store)
    assert sent == [vsf.pk] and batch["status"] == "in_progress"
    assert vector_store_file_claim(vsf_id=vsf.pk, token="killed") is not None
    go_silent(vsf)
    assert vector_store_files_sweep() == {"resent": 0, "failed": 1}
    batch = api.get(f"/v1/vector_stores/{store.public_id}/file_batches/{batch['id']}").json()
    assert batch["status"] == "failed" and batch["file_counts"]["failed"] == 1  # terminal: pollers stop
    assert batch["file_counts"]["in_progress"] == 0
    listed = api.get(f"/v1/vector_stores/{store.public_id}/files").json()["data"]
    assert [f["last_error"]["code"] for f in listed] == ["server_error"]
