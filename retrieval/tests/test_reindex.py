"""manage.py reindex: new dimension (and its index), keyword-only files gaining vectors, resuming."""

import pytest
from django.core.management import CommandError, call_command

from retrieval import indexes, ingestion
from retrieval.models import Chunk, ChunkVector, PendingChunkVector, VectorStoreFile
from retrieval.search import search
from retrieval.services import vector_store_create

pytestmark = pytest.mark.django_db(transaction=True)  # CREATE INDEX refuses to run after deferred FK checks


@pytest.fixture(autouse=True)
def _no_broker_and_the_default_index(monkeypatch):
    from retrieval import tasks

    monkeypatch.setattr(tasks.vector_store_file_ingest, "delay", lambda *args: None)  # ingest() runs them inline
    yield
    for dims in indexes.existing_index_dimensions():
        if dims != 1536:
            indexes.drop_hnsw_index(dims)
    indexes.ensure_hnsw_index(1536)


def store_with(project, make_file, ingest, n=3):
    files = [make_file(project, f"f{i}.txt", f"file {i} talks about topic{i} and teapots") for i in range(n)]
    store = vector_store_create(project=project, file_ids=[f.public_id for f in files])
    ingest()
    return store


def test_changing_the_dimension(project, make_file, fake_embeddings, ingest, settings):
    store = store_with(project, make_file, ingest)
    settings.EMBEDDING_DIMENSIONS = 256
    # Until the reindex, vector search skips the 1536-d files; keywords still find them.
    assert search(project=project, vector_store_ids=[store], query="topic1")[0].filename == "f1.txt"
    call_command("reindex", verbosity=0)
    assert indexes.existing_index_dimensions() == [256]  # the 1536 index was dropped once unused
    assert set(VectorStoreFile.objects.values_list("embedding_dimensions", flat=True)) == {256}
    assert all(len(v.embedding) == 256 for v in ChunkVector.objects.all())  # and indexed
    assert not PendingChunkVector.objects.exists() and ChunkVector.objects.count() == 3
    assert Chunk.objects.count() == 3
    assert search(project=project, vector_store_ids=[store], query="topic2")[0].filename == "f2.txt"
    fake_embeddings.requests.clear()
    call_command("reindex", verbosity=0)  # nothing left to do
    assert fake_embeddings.embedding_requests() == []


def test_keyword_only_files_get_vectors(project, make_file, fake_embeddings, ingest, settings):
    settings.EMBEDDING_MODEL = ""
    store_with(project, make_file, ingest)
    assert set(VectorStoreFile.objects.values_list("keyword_only", flat=True)) == {True}
    settings.EMBEDDING_MODEL = "text-embedding-3-small"
    call_command("reindex", verbosity=0)
    assert set(VectorStoreFile.objects.values_list("keyword_only", flat=True)) == {False}
    assert ChunkVector.objects.count() == Chunk.objects.count() == 3


def test_an_interrupted_reindex_resumes(project, make_file, fake_embeddings, ingest, settings, monkeypatch):
    store_with(project, make_file, ingest, n=4)
    settings.EMBEDDING_DIMENSIONS = 512
    real = ingestion.vector_store_file_reindex
    calls = []

    def interrupt_on_third(**kwargs):
        calls.append(kwargs["vsf_id"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(**kwargs)

    monkeypatch.setattr("retrieval.management.commands.reindex.vector_store_file_reindex", interrupt_on_third)
    with pytest.raises(CommandError, match="resume"):
        call_command("reindex", verbosity=0)
    assert sorted(VectorStoreFile.objects.values_list("embedding_dimensions", flat=True)) == [512, 512, 1536, 1536]
    monkeypatch.setattr("retrieval.management.commands.reindex.vector_store_file_reindex", real)
    fake_embeddings.requests.clear()
    call_command("reindex", verbosity=0)
    assert len(fake_embeddings.embedding_requests()) == 2  # only the two files not done yet
    assert set(VectorStoreFile.objects.values_list("embedding_dimensions", flat=True)) == {512}


def test_a_long_reindex_keeps_few_vectors_pending(project, make_file, fake_embeddings, ingest, settings,
                                                 monkeypatch):
    """Searches scan pending vectors exactly, so the command indexes them as it goes, not only at the end."""
    from retrieval import vector_index

    store_with(project, make_file, ingest, n=4)
    vector_index.index_pending(defer=False)
    settings.EMBEDDING_DIMENSIONS = 512
    monkeypatch.setattr("retrieval.management.commands.reindex.PENDING_MAX", 2)
    real, seen = ingestion.vector_store_file_reindex, []

    def record_pending(**kwargs):
        seen.append(PendingChunkVector.objects.count())
        return real(**kwargs)

    monkeypatch.setattr("retrieval.management.commands.reindex.vector_store_file_reindex", record_pending)
    call_command("reindex", verbosity=0)
    assert seen == [0, 1, 0, 1] and not PendingChunkVector.objects.exists()
    assert ChunkVector.objects.count() == 4


def test_a_provider_failure_keeps_the_old_vectors(project, make_file, fake_embeddings, ingest, settings):
    store_with(project, make_file, ingest, n=1)
    settings.EMBEDDING_DIMENSIONS = 256
    fake_embeddings.embedding_error = (500, "down")
    with pytest.raises(CommandError, match="could not be reindexed"):
        call_command("reindex", verbosity=0)
    vsf = VectorStoreFile.objects.get()
    assert (vsf.embedding_dimensions, vsf.keyword_only) == (1536, False)


def test_only_the_named_store_and_all(project, make_file, fake_embeddings, ingest):
    first = store_with(project, make_file, ingest, n=1)
    store_with(project, make_file, ingest, n=1)
    fake_embeddings.requests.clear()
    call_command("reindex", "--vector-store", first.public_id, "--all", verbosity=0)
    assert len(fake_embeddings.embedding_requests()) == 1
    with pytest.raises(CommandError, match="vs_nope"):
        call_command("reindex", "--vector-store", "vs_nope", verbosity=0)
