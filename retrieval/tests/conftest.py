"""Fixtures for retrieval tests: stored files, the fake embeddings provider, running ingestion inline."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(autouse=True)
def indexer_sends(monkeypatch) -> list:
    """No indexer task is sent from unit tests (no worker runs): each would-be send is recorded instead, as
    (countdown, number of tasks). The Redis flag is real and starts cleared. Tests run the indexer inline."""
    from assistants_project.redis import redis_client
    from retrieval import vector_index

    redis_client().delete(vector_index.ALIVE_KEY)
    sent: list = []
    monkeypatch.setattr(vector_index, "_send", lambda *, countdown, count: sent.append((countdown, count)))
    yield sent
    redis_client().delete(vector_index.ALIVE_KEY)


@pytest.fixture
def fake_embeddings(fake_llm_server, monkeypatch, settings):
    """LiteLLM pointed at the session's fake OpenAI server (deterministic bag-of-words vectors)."""
    fake_llm_server.reset()
    monkeypatch.setenv("OPENAI_API_BASE", fake_llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-provider-key")
    settings.EMBEDDING_MODEL = "text-embedding-3-small"
    settings.EMBEDDING_DIMENSIONS = 1536
    settings.LLM_NUM_RETRIES = 0
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture
def keyword_only(fake_embeddings, settings):
    """No embedding model configured (the fake still runs, to prove nobody calls it)."""
    settings.EMBEDDING_MODEL = ""
    return fake_embeddings


@pytest.fixture
def make_file(tmp_path, settings):
    """make_file(project, filename, content: bytes|str) -> files.File stored in a per-test media dir."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}

    def make(project, filename: str, content: bytes | str, content_type: str = "application/octet-stream"):
        from django.core.files.base import ContentFile
        from django.core.files.storage import default_storage

        from files.models import File

        data = content.encode() if isinstance(content, str) else content
        name = default_storage.save(f"{uuid.uuid4().hex}/{filename}", ContentFile(data))
        return File.objects.create(project=project, filename=filename, purpose="assistants", bytes=len(data),
                                   content_type=content_type, storage_name=name)

    return make


@pytest.fixture
def ingest():
    """ingest() runs every queued file's ingestion inline (what the Celery task does), returns outcomes."""

    def run() -> list[str]:
        from retrieval.ingestion import vector_store_file_ingest
        from retrieval.models import VectorStoreFile

        pks = VectorStoreFile.objects.filter(status="in_progress").order_by("pk").values_list("pk", flat=True)
        return [vector_store_file_ingest(vsf_id=pk) for pk in list(pks)]

    return run


def embedding_of(chunk):
    """A chunk's vector, wherever it is (pending or indexed), or None."""
    from retrieval.models import ChunkVector, PendingChunkVector

    for model in (PendingChunkVector, ChunkVector):
        if row := model.objects.filter(chunk_id=chunk.pk).first():
            return row.embedding
    return None


def pytest_collection_modifyitems(items):
    """LiteLLM's response model complains that base64 embeddings are not lists of floats; expected here."""
    for item in items:
        if "retrieval" in item.nodeid.split("/")[0] or "vector_stores" in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"))
