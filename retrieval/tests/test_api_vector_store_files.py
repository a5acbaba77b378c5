"""/v1/vector_stores/{id}/files and /file_batches."""

import pytest

from retrieval.models import Chunk, VectorStoreFile
from retrieval.tests.test_api_vector_stores import error
from tests.schema import assert_list_schema, assert_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(api):
    return api.post("/v1/vector_stores", {"name": "s"}).json()["id"]


def test_attach_poll_update_content_detach(api, project, store, make_file, fake_embeddings, ingest):
    from files.models import File

    doc = make_file(project, "notes.md", "# Notes\n\nThe launch code is tangerine.")
    created = api.post(f"/v1/vector_stores/{store}/files",
                       {"file_id": doc.public_id, "attributes": {"team": "red", "year": 2024, "draft": False}})
    assert created.status_code == 200, created.content
    vsf = created.json()
    assert_schema(vsf, "VectorStoreFileObject")
    assert vsf["id"] == doc.public_id and vsf["vector_store_id"] == store and vsf["status"] == "in_progress"
    assert vsf["chunking_strategy"] == {"type": "static", "static": {"max_chunk_size_tokens": 800,
                                                                     "chunk_overlap_tokens": 400}}
    ingest()
    polled = api.get(f"/v1/vector_stores/{store}/files/{doc.public_id}")
    assert polled["openai-poll-after-ms"] == "500"
    assert polled.json()["status"] == "completed" and polled.json()["last_error"] is None
    assert polled.json()["usage_bytes"] > 0

    updated = api.post(f"/v1/vector_stores/{store}/files/{doc.public_id}", {"attributes": {"team": "blue"}}).json()
    assert updated["attributes"] == {"team": "blue"}
    error(api.post(f"/v1/vector_stores/{store}/files/{doc.public_id}", {}), 400, "attributes")

    content = api.get(f"/v1/vector_stores/{store}/files/{doc.public_id}/content").json()
    assert_schema(content, "VectorStoreFileContentResponse")
    assert content == {"object": "vector_store.file_content.page", "has_more": False, "next_page": None,
                       "data": [{"type": "text", "text": "# Notes\n\nThe launch code is tangerine."}]}

    deleted = api.delete(f"/v1/vector_stores/{store}/files/{doc.public_id}").json()
    assert deleted == {"id": doc.public_id, "object": "vector_store.file.deleted", "deleted": True}
    assert Chunk.objects.count() == 0 and File.objects.filter(pk=doc.pk).exists()
    error(api.get(f"/v1/vector_stores/{store}/files/{doc.public_id}"), 404, "file_id")


def test_list_filters_by_status_and_paginates(api, project, store, make_file, fake_embeddings, ingest):
    good = [make_file(project, f"g{i}.txt", f"good {i}") for i in range(3)]
    bad = make_file(project, "bad.pdf", b"not a pdf at all")
    for f in [*good, bad]:
        api.post(f"/v1/vector_stores/{store}/files", {"file_id": f.public_id})
    ingest()
    page = api.get(f"/v1/vector_stores/{store}/files?limit=2&order=asc").json()
    assert_list_schema(page, "ListVectorStoreFilesResponse")
    assert [f["id"] for f in page["data"]] == [good[0].public_id, good[1].public_id] and page["has_more"]
    rest = api.get(f"/v1/vector_stores/{store}/files?limit=2&order=asc&after={page['last_id']}").json()
    assert [f["id"] for f in rest["data"]] == [good[2].public_id, bad.public_id]
    failed = api.get(f"/v1/vector_stores/{store}/files?filter=failed").json()["data"]
    assert [f["id"] for f in failed] == [bad.public_id]
    assert failed[0]["last_error"]["code"] == "invalid_file"
    assert len(api.get(f"/v1/vector_stores/{store}/files?filter=completed").json()["data"]) == 3
    error(api.get(f"/v1/vector_stores/{store}/files?filter=done"), 400, "filter")


def test_attach_validates(api, project, other_project, store, make_file):
    error(api.post(f"/v1/vector_stores/{store}/files", {}), 400, "file_id")
    error(api.post(f"/v1/vector_stores/{store}/files", {"file_id": "file-nope"}), 404, "file_id")
    foreign = make_file(other_project, "x.txt", "theirs")
    error(api.post(f"/v1/vector_stores/{store}/files", {"file_id": foreign.public_id}), 404, "file_id")
    doc = make_file(project, "x.txt", "ours")
    error(api.post(f"/v1/vector_stores/{store}/files", {"file_id": doc.public_id, "chunking_strategy": {
        "type": "fixed"}}), 400, "chunking_strategy.type")
    error(api.post(f"/v1/vector_stores/{store}/files", {"file_id": doc.public_id, "attributes": {
        f"k{i}": i for i in range(17)}}), 400, "attributes")
    error(api.post(f"/v1/vector_stores/{store}/files", {"file_id": doc.public_id, "attributes": {"k": [1]}}),
          400, "attributes")
    error(api.post(f"/v1/vector_stores/{store}/files", {"file_id": doc.public_id, "attributes": {"k": "v" * 513}}),
          400, "attributes")
    assert VectorStoreFile.objects.count() == 0


def test_reattaching_a_file_requeues_it_with_the_new_settings(api, project, store, make_file, fake_embeddings,
                                                             ingest):
    doc = make_file(project, "a.txt", "alpha " * 300)
    api.post(f"/v1/vector_stores/{store}/files", {"file_id": doc.public_id})
    ingest()
    again = api.post(f"/v1/vector_stores/{store}/files", {"file_id": doc.public_id, "chunking_strategy": {
        "type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}}).json()
    assert again["status"] == "in_progress"
    assert VectorStoreFile.objects.count() == 1
    ingest()
    assert Chunk.objects.count() == 3  # 300 tokens in windows of 100, no overlap


def test_batch_create_poll_list_and_counts(api, project, store, make_file, fake_embeddings, ingest):
    docs = [make_file(project, f"d{i}.txt", f"doc {i}") for i in range(3)]
    empty = make_file(project, "empty.txt", b"")
    response = api.post(f"/v1/vector_stores/{store}/file_batches",
                        {"file_ids": [d.public_id for d in [*docs, empty]], "attributes": {"src": "batch"}})
    assert response.status_code == 200, response.content
    batch = response.json()
    assert_schema(batch, "VectorStoreFileBatchObject")
    assert batch["object"] == "vector_store.files_batch" and batch["id"].startswith("vsfb_")
    assert batch["status"] == "in_progress" and batch["file_counts"]["in_progress"] == 4
    ingest()
    polled = api.get(f"/v1/vector_stores/{store}/file_batches/{batch['id']}")
    assert polled["openai-poll-after-ms"] == "500"
    assert polled.json()["status"] == "completed"
    assert polled.json()["file_counts"] == {"in_progress": 0, "completed": 3, "failed": 1, "cancelled": 0,
                                            "total": 4}
    listed = api.get(f"/v1/vector_stores/{store}/file_batches/{batch['id']}/files?filter=completed").json()
    assert_list_schema(listed, "ListVectorStoreFilesResponse")
    assert {f["id"] for f in listed["data"]} == {d.public_id for d in docs}
    assert all(f["attributes"] == {"src": "batch"} for f in listed["data"])
    store_body = api.get(f"/v1/vector_stores/{store}").json()
    assert store_body["file_counts"]["total"] == 4 and store_body["file_counts"]["failed"] == 1


def test_batch_with_per_file_settings(api, project, store, make_file):
    a, b = make_file(project, "a.txt", "a"), make_file(project, "b.txt", "b")
    batch = api.post(f"/v1/vector_stores/{store}/file_batches", {"files": [
        {"file_id": a.public_id, "attributes": {"n": 1}},
        {"file_id": b.public_id, "chunking_strategy": {"type": "static", "static": {
            "max_chunk_size_tokens": 300, "chunk_overlap_tokens": 100}}}]}).json()
    rows = {v.file_id: v for v in VectorStoreFile.objects.all()}
    assert rows[a.pk].attributes == {"n": 1} and rows[b.pk].attributes == {}
    assert rows[b.pk].chunking_strategy["static"]["max_chunk_size_tokens"] == 300
    assert batch["file_counts"]["total"] == 2
    error(api.post(f"/v1/vector_stores/{store}/file_batches", {"files": [{"file_id": a.public_id,
          "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 5000,
                                                             "chunk_overlap_tokens": 0}}}]}),
          400, "files[0].chunking_strategy.static.max_chunk_size_tokens")
    error(api.post(f"/v1/vector_stores/{store}/file_batches", {"file_ids": [a.public_id], "files": [
        {"file_id": a.public_id}]}), 400, "files")
    error(api.post(f"/v1/vector_stores/{store}/file_batches", {}), 400, "file_ids")
    error(api.post(f"/v1/vector_stores/{store}/file_batches", {"file_ids": []}), 400, "file_ids")
    error(api.post(f"/v1/vector_stores/{store}/file_batches", {"file_ids": [a.public_id, "file-nope"]}), 404,
          "file_ids[1]")


def test_cancel_stops_pending_files_and_a_late_ingestion_changes_nothing(api, project, store, make_file,
                                                                        fake_embeddings, ingest):
    from retrieval.ingestion import vector_store_file_ingest

    docs = [make_file(project, f"d{i}.txt", f"doc {i}") for i in range(3)]
    batch = api.post(f"/v1/vector_stores/{store}/file_batches", {"file_ids": [d.public_id for d in docs]}).json()
    first = VectorStoreFile.objects.get(file=docs[0])
    assert vector_store_file_ingest(vsf_id=first.pk) == "completed"
    cancelled = api.post(f"/v1/vector_stores/{store}/file_batches/{batch['id']}/cancel").json()
    assert_schema(cancelled, "VectorStoreFileBatchObject")
    assert cancelled["status"] == "cancelled"
    assert cancelled["file_counts"] == {"in_progress": 0, "completed": 1, "failed": 0, "cancelled": 2, "total": 3}
    late = VectorStoreFile.objects.get(file=docs[1])
    assert vector_store_file_ingest(vsf_id=late.pk) == "skipped"  # a message delivered after the cancel
    assert Chunk.objects.filter(vector_store_file=late).count() == 0
    assert api.get(f"/v1/vector_stores/{store}").json()["file_counts"]["cancelled"] == 2
    again = api.post(f"/v1/vector_stores/{store}/file_batches/{batch['id']}/cancel").json()
    assert again["status"] == "cancelled"


def test_cancel_after_completion_leaves_the_batch_completed(api, project, store, make_file, fake_embeddings,
                                                           ingest):
    doc = make_file(project, "a.txt", "a")
    batch = api.post(f"/v1/vector_stores/{store}/file_batches", {"file_ids": [doc.public_id]}).json()
    ingest()
    assert api.post(f"/v1/vector_stores/{store}/file_batches/{batch['id']}/cancel").json()["status"] == "completed"


def test_batches_and_files_of_another_store_or_project_are_not_found(api, other_api, project, store, make_file):
    doc = make_file(project, "a.txt", "a")
    batch = api.post(f"/v1/vector_stores/{store}/file_batches", {"file_ids": [doc.public_id]}).json()
    other_store = api.post("/v1/vector_stores", {}).json()["id"]
    error(api.get(f"/v1/vector_stores/{other_store}/file_batches/{batch['id']}"), 404, "batch_id")
    error(api.get(f"/v1/vector_stores/{other_store}/files/{doc.public_id}"), 404, "file_id")
    error(other_api.get(f"/v1/vector_stores/{store}/file_batches/{batch['id']}"), 404, "vector_store_id")
    error(other_api.get(f"/v1/vector_stores/{store}/files/{doc.public_id}/content"), 404, "vector_store_id")
    error(api.get(f"/v1/vector_stores/{store}/file_batches/nope"), 400, "batch_id")


def test_deleting_the_file_detaches_it_everywhere(api, project, store, make_file, fake_embeddings, ingest):
    from files.services import file_delete

    doc = make_file(project, "a.txt", "alpha")
    second = api.post("/v1/vector_stores", {"file_ids": [doc.public_id]}).json()["id"]
    api.post(f"/v1/vector_stores/{store}/files", {"file_id": doc.public_id})
    ingest()
    assert Chunk.objects.count() == 2
    file_delete(file=doc)
    assert Chunk.objects.count() == 0 and VectorStoreFile.objects.count() == 0
    for store_id in (store, second):
        assert api.get(f"/v1/vector_stores/{store_id}").json()["file_counts"]["total"] == 0


