"""/v1/vector_stores: create, list, retrieve, modify, delete; counts, status and expiry."""

from datetime import timedelta

import pytest
from django.utils import timezone

from retrieval.models import Chunk, VectorStore, VectorStoreFile
from tests.schema import assert_list_schema, assert_schema

pytestmark = pytest.mark.django_db


def error(response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()["error"]
    if param is not None:
        assert body["param"] == param, body
    return body


def test_create_without_files_is_completed_and_matches_the_schema(api):
    response = api.post("/v1/vector_stores", {"name": "docs", "metadata": {"team": "a"}})
    assert response.status_code == 200, response.content
    store = response.json()
    assert_schema(store, "VectorStoreObject")
    assert store["id"].startswith("vs_") and store["object"] == "vector_store"
    assert store["name"] == "docs" and store["metadata"] == {"team": "a"}
    assert store["status"] == "completed" and store["usage_bytes"] == 0
    assert store["file_counts"] == {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}
    assert store["expires_at"] is None and store["last_active_at"] == store["created_at"]


def test_create_with_files_counts_them_in_progress_then_completed(api, project, make_file, fake_embeddings, ingest):
    files = [make_file(project, f"f{i}.txt", f"document number {i} about llamas") for i in range(3)]
    store = api.post("/v1/vector_stores", {"file_ids": [f.public_id for f in files],
                                           "chunking_strategy": {"type": "static", "static": {
                                               "max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}}}).json()
    assert store["status"] == "in_progress"
    assert store["file_counts"] == {"in_progress": 3, "completed": 0, "failed": 0, "cancelled": 0, "total": 3}
    assert ingest() == ["completed"] * 3
    store = api.get(f"/v1/vector_stores/{store['id']}").json()
    assert store["status"] == "completed" and store["file_counts"]["completed"] == 3
    assert store["usage_bytes"] == sum(len(f"document number {i} about llamas") for i in range(3))
    strategy = VectorStoreFile.objects.values_list("chunking_strategy", flat=True).first()
    assert strategy == {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}}


def test_create_validates(api, project, other_project, make_file):
    error(api.post("/v1/vector_stores", {"bogus": 1}), 400, "bogus")
    error(api.post("/v1/vector_stores", {"expires_after": {"anchor": "created_at", "days": 3}}), 400,
          "expires_after.anchor")
    error(api.post("/v1/vector_stores", {"expires_after": {"anchor": "last_active_at", "days": 400}}), 400,
          "expires_after.days")
    error(api.post("/v1/vector_stores", {"file_ids": ["file-x"], "chunking_strategy": {
        "type": "static", "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}}}), 400,
        "chunking_strategy.static.max_chunk_size_tokens")
    error(api.post("/v1/vector_stores", {"file_ids": ["file-x"], "chunking_strategy": {
        "type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 201}}}), 400,
        "chunking_strategy.static.chunk_overlap_tokens")
    foreign = make_file(other_project, "theirs.txt", "secret")
    body = error(api.post("/v1/vector_stores", {"file_ids": [foreign.public_id]}), 404, "file_ids[0]")
    assert foreign.public_id in body["message"]
    assert VectorStore.objects.count() == 0


def test_list_paginates_and_is_scoped(api, other_api):
    ids = [api.post("/v1/vector_stores", {"name": f"s{i}"}).json()["id"] for i in range(3)]
    other_api.post("/v1/vector_stores", {"name": "theirs"})
    page = api.get("/v1/vector_stores?limit=2").json()
    assert_list_schema(page, "ListVectorStoresResponse")
    assert [s["id"] for s in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    rest = api.get(f"/v1/vector_stores?limit=2&after={page['last_id']}").json()
    assert [s["id"] for s in rest["data"]] == [ids[0]] and rest["has_more"] is False
    assert [s["id"] for s in api.get("/v1/vector_stores?order=asc").json()["data"]] == ids


def test_other_projects_store_is_not_found(api, other_api):
    theirs = other_api.post("/v1/vector_stores", {"name": "theirs"}).json()["id"]
    for response in (api.get(f"/v1/vector_stores/{theirs}"), api.post(f"/v1/vector_stores/{theirs}", {"name": "x"}),
                     api.delete(f"/v1/vector_stores/{theirs}"),
                     api.post(f"/v1/vector_stores/{theirs}/search", {"query": "x"})):
        assert error(response, 404)["message"] == f"No vector store found with id '{theirs}'."
    error(api.get("/v1/vector_stores/undefined"), 400, "vector_store_id")


def test_modify_name_metadata_and_expiry(api):
    store = api.post("/v1/vector_stores", {"name": "a"}).json()
    updated = api.post(f"/v1/vector_stores/{store['id']}", {
        "name": "b", "metadata": {"k": "v"}, "expires_after": {"anchor": "last_active_at", "days": 2}}).json()
    assert_schema(updated, "VectorStoreObject")
    assert updated["name"] == "b" and updated["metadata"] == {"k": "v"}
    assert updated["expires_after"] == {"anchor": "last_active_at", "days": 2}
    assert updated["expires_at"] == updated["last_active_at"] + 2 * 86400
    cleared = api.post(f"/v1/vector_stores/{store['id']}", {"expires_after": None}).json()
    assert "expires_after" not in cleared and cleared["expires_at"] is None and cleared["name"] == "b"
    error(api.post(f"/v1/vector_stores/{store['id']}", {"file_ids": []}), 400, "file_ids")


def test_expiry_task_marks_expired_and_expired_stores_refuse_work(api, project, make_file):
    from retrieval.tasks import vector_stores_expire

    store = api.post("/v1/vector_stores", {"expires_after": {"anchor": "last_active_at", "days": 1}}).json()
    assert vector_stores_expire() == 0
    VectorStore.objects.filter(public_id=store["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert vector_stores_expire() == 1
    assert api.get(f"/v1/vector_stores/{store['id']}").json()["status"] == "expired"
    doc = make_file(project, "a.txt", "hello")
    error(api.post(f"/v1/vector_stores/{store['id']}/files", {"file_id": doc.public_id}), 400, "vector_store_id")
    error(api.post(f"/v1/vector_stores/{store['id']}/search", {"query": "hello"}), 400, "vector_store_id")


def test_beat_schedule_has_the_expiry_task(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["retrieval-expire-vector-stores"]
    assert entry["task"] == "retrieval.tasks.vector_stores_expire"


def test_delete_removes_files_links_and_chunks_but_not_files(api, project, make_file, fake_embeddings, ingest):
    from files.models import File

    doc = make_file(project, "a.txt", "alpha beta gamma")
    store = api.post("/v1/vector_stores", {"file_ids": [doc.public_id]}).json()
    ingest()
    assert Chunk.objects.count() == 1
    response = api.delete(f"/v1/vector_stores/{store['id']}")
    assert response.json() == {"id": store["id"], "object": "vector_store.deleted", "deleted": True}
    assert_schema(response.json(), "DeleteVectorStoreResponse")
    assert Chunk.objects.count() == 0 and VectorStoreFile.objects.count() == 0
    assert File.objects.filter(pk=doc.pk).exists()
    error(api.get(f"/v1/vector_stores/{store['id']}"), 404)


def test_inline_helper_on_assistant_create_makes_a_store(api, project, make_file):
    doc = make_file(project, "a.txt", "hello")
    response = api.post("/v1/assistants", {"model": "gpt-4o-mini", "tools": [{"type": "file_search"}],
                                           "tool_resources": {"file_search": {"vector_stores": [{
                                               "file_ids": [doc.public_id], "metadata": {"via": "helper"}}]}}})
    assert response.status_code == 200, response.content
    [store_id] = response.json()["tool_resources"]["file_search"]["vector_store_ids"]
    store = api.get(f"/v1/vector_stores/{store_id}").json()
    assert store["metadata"] == {"via": "helper"} and store["file_counts"]["total"] == 1


def test_ingestion_marks_the_store_active_and_moves_its_expiry(api, project, make_file, fake_embeddings, ingest):
    store = api.post("/v1/vector_stores", {"expires_after": {"anchor": "last_active_at", "days": 2}}).json()
    VectorStore.objects.filter(public_id=store["id"]).update(last_active_at=timezone.now() - timedelta(days=1))
    api.post(f"/v1/vector_stores/{store['id']}/files", {"file_id": make_file(project, "a.txt", "hello").public_id})
    ingest()
    body = api.get(f"/v1/vector_stores/{store['id']}").json()
    assert abs(body["last_active_at"] - timezone.now().timestamp()) < 5
    assert body["expires_at"] == body["last_active_at"] + 2 * 86400
