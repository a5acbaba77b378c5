"""Ingestion: every format, failures with a reason, keyword-only degradation, idempotence and races."""

import pytest

from retrieval.ingestion import vector_store_file_ingest
from retrieval.models import Chunk, VectorStoreFile
from retrieval.services import vector_store_create, vector_store_file_create
from retrieval.tests.conftest import embedding_of
from retrieval.tests.docs import make_docx, make_pdf, make_pptx

pytestmark = pytest.mark.django_db


def attach(project, *files, **kwargs):
    store = vector_store_create(project=project, file_ids=[f.public_id for f in files], **kwargs)
    return store, list(VectorStoreFile.objects.filter(vector_store=store).order_by("pk"))


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("a.txt", "plain text about otters", "otters"),
    ("a.md", "# Title\n\nmarkdown about beavers", "beavers"),
    ("a.html", "<html><body><p>html about herons</p><script>x()</script></body></html>", "herons"),
    ("a.json", '{"animal": "walrus"}', "walrus"),
    ("a.csv", "animal,legs\nspider,8\n", "spider"),
    ("a.py", "def penguin():\n    return 1\n", "penguin"),
    ("a.docx", make_docx(["docx about lemurs"]), "lemurs"),
    ("a.pptx", make_pptx([("Slide", "pptx about ibises")]), "ibises"),
])
def test_formats_are_parsed_chunked_and_embedded(project, make_file, fake_embeddings, name, content, needle):
    store, [vsf] = attach(project, make_file(project, name, content))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "completed"
    chunk = Chunk.objects.get(vector_store_file=vsf)
    assert needle in chunk.text and chunk.position == 0 and chunk.token_count > 0
    assert chunk.project_id == project.pk and chunk.vector_store_id == store.pk and chunk.file_id == vsf.file_id
    assert len(embedding_of(chunk)) == 1536
    vsf.refresh_from_db()
    assert (vsf.keyword_only, vsf.embedding_model, vsf.embedding_dimensions) == (False, "text-embedding-3-small",
                                                                                  1536)


def test_pdf_pages_are_kept_and_chunks_are_ordered(project, make_file, fake_embeddings):
    pages = [f"page {n} " + "filler words " * 60 for n in range(1, 4)]
    _, [vsf] = attach(project, make_file(project, "a.pdf", make_pdf(pages)),
                      chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100,
                                                                      "chunk_overlap_tokens": 0}})
    vector_store_file_ingest(vsf_id=vsf.pk)
    chunks = list(Chunk.objects.filter(vector_store_file=vsf).order_by("position"))
    assert [c.position for c in chunks] == list(range(len(chunks))) and len(chunks) > 3
    assert chunks[0].page == 1 and chunks[-1].page == 3
    assert {c.page for c in chunks} == {1, 2, 3}


@pytest.mark.parametrize(("name", "content", "code"), [
    ("corrupt.pdf", b"%PDF-1.4\n garbage without any objects", "invalid_file"),
    ("empty.txt", b"", "invalid_file"),
    ("blank.md", b"   \n\n  ", "invalid_file"),
    ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "unsupported_file"),
    ("broken.docx", b"PK\x03\x04 not really a zip", "invalid_file"),
])
def test_unusable_files_fail_with_a_reason(project, make_file, fake_embeddings, name, content, code):
    _, [vsf] = attach(project, make_file(project, name, content))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "failed"
    vsf.refresh_from_db()
    assert vsf.status == "failed" and vsf.last_error["code"] == code and vsf.last_error["message"]
    assert not Chunk.objects.filter(vector_store_file=vsf).exists()


def test_missing_stored_bytes_fail_as_server_error(project, make_file, fake_embeddings):
    from django.core.files.storage import default_storage

    doc = make_file(project, "a.txt", "hello")
    default_storage.delete(doc.storage_name)
    _, [vsf] = attach(project, doc)
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "failed"
    vsf.refresh_from_db()
    assert vsf.last_error["code"] == "server_error"


def test_no_embedding_model_indexes_for_keywords_only(project, make_file, keyword_only, fake_embeddings):
    _, [vsf] = attach(project, make_file(project, "a.txt", "keyword only"))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "completed"
    vsf.refresh_from_db()
    assert vsf.keyword_only and vsf.embedding_model == "" and vsf.status == "completed"
    assert embedding_of(Chunk.objects.get(vector_store_file=vsf)) is None
    assert fake_embeddings.embedding_requests() == []


def test_provider_failure_degrades_to_keyword_only(project, make_file, fake_embeddings):
    fake_embeddings.embedding_error = (500, "embeddings are down")
    _, [vsf] = attach(project, make_file(project, "a.txt", "provider down"))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "completed"
    vsf.refresh_from_db()
    assert vsf.keyword_only and vsf.last_error is None
    assert embedding_of(Chunk.objects.get(vector_store_file=vsf)) is None


def test_wrong_vector_size_from_the_provider_degrades_to_keyword_only(project, make_file, fake_embeddings,
                                                                       settings):
    settings.EMBEDDING_MODEL = "openai/some-other-embedding"  # no `dimensions` parameter: the fake answers 1536
    settings.EMBEDDING_DIMENSIONS = 256
    _, [vsf] = attach(project, make_file(project, "a.txt", "size mismatch"))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "completed"
    vsf.refresh_from_db()
    assert vsf.keyword_only


def test_dimensions_are_sent_for_text_embedding_3(project, make_file, fake_embeddings, settings):
    settings.EMBEDDING_DIMENSIONS = 256
    _, [vsf] = attach(project, make_file(project, "a.txt", "short vectors"))
    vector_store_file_ingest(vsf_id=vsf.pk)
    assert fake_embeddings.embedding_requests()[-1]["dimensions"] == 256
    assert len(embedding_of(Chunk.objects.get(vector_store_file=vsf))) == 256


def test_large_files_are_embedded_in_batches(project, make_file, fake_embeddings, monkeypatch):
    from retrieval import embeddings

    monkeypatch.setattr(embeddings, "MAX_INPUTS_PER_REQUEST", 4)
    words = " ".join(f"w{i}" for i in range(2000))
    _, [vsf] = attach(project, make_file(project, "a.txt", words),
                      chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100,
                                                                      "chunk_overlap_tokens": 0}})
    vector_store_file_ingest(vsf_id=vsf.pk)
    count = Chunk.objects.filter(vector_store_file=vsf).count()
    assert count > 8
    assert [len(r["input"]) for r in fake_embeddings.embedding_requests()] == [4] * (count // 4) + (
        [count % 4] if count % 4 else [])


def test_ingestion_is_idempotent(project, make_file, fake_embeddings):
    _, [vsf] = attach(project, make_file(project, "a.txt", "once"))
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "completed"
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "skipped"  # a redelivered message
    VectorStoreFile.objects.filter(pk=vsf.pk).update(status="in_progress")  # a crash after commit, then retry
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "completed"
    assert Chunk.objects.filter(vector_store_file=vsf).count() == 1


def test_a_stale_ingestion_loses_to_a_requeue(project, make_file, fake_embeddings, monkeypatch):
    """The file is re-attached (new generation) while an older ingestion is still embedding: the old result is
    dropped and the new one wins."""
    from retrieval import ingestion

    doc = make_file(project, "a.txt", "stale " * 50)
    store, [vsf] = attach(project, doc)
    real_prepare = ingestion.prepare

    def prepare_then_requeue(row, **kwargs):
        prepared = real_prepare(row, **kwargs)
        vector_store_file_create(vector_store=store, file_id=doc.public_id)
        return prepared

    monkeypatch.setattr(ingestion, "prepare", prepare_then_requeue)
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "skipped"
    assert not Chunk.objects.exists()
    monkeypatch.setattr(ingestion, "prepare", real_prepare)
    assert vector_store_file_ingest(vsf_id=vsf.pk) == "completed"


def test_task_failure_hook_marks_the_file_failed(project, make_file):
    from retrieval.tasks import _ingest_failed

    _, [vsf] = attach(project, make_file(project, "a.txt", "x"))
    _ingest_failed(None, RuntimeError("boom"), "task-id", (vsf.pk,), {}, None)
    vsf.refresh_from_db()
    assert vsf.status == "failed" and vsf.last_error["code"] == "server_error"


def test_enqueue_happens_on_commit(project, make_file, django_capture_on_commit_callbacks, monkeypatch):
    from retrieval import tasks

    sent = []
    monkeypatch.setattr(tasks.vector_store_file_ingest, "delay", lambda pk: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        _, vsfs = attach(project, make_file(project, "a.txt", "x"), make_file(project, "b.txt", "y"))
        assert sent == []
    assert sent == [v.pk for v in vsfs]
