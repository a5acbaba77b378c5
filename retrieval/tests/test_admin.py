"""The operators' admin for vector stores: file counts, failed files with their errors, retrying a failed file's
ingestion (through the service the API's attach uses), batches."""

import pytest
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from retrieval.models import Chunk, VectorStoreFile
from retrieval.services import file_batch_create, vector_store_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def store_with_a_failed_file(project, make_file, fake_embeddings, ingest):
    """Two files ingest; the third fails because its stored bytes went missing (a storage outage)."""
    good = [make_file(project, f"good{i}.txt", f"otters and beavers {i}") for i in range(2)]
    lost = make_file(project, "lost.txt", "herons by the river")
    default_storage.delete(lost.storage_name)
    store = vector_store_create(project=project, name="handbook")
    file_batch_create(vector_store=store, file_ids=[f.public_id for f in [*good, lost]])
    assert sorted(ingest()) == ["completed", "completed", "failed"]
    return store, lost


def page(client, url, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_vector_stores_list_their_file_counts_and_failed_files(admin_client, store_with_a_failed_file):
    store, lost = store_with_a_failed_file
    vsf = VectorStoreFile.objects.get(file=lost)
    listing = page(admin_client, reverse("admin:retrieval_vectorstore_changelist"))
    row = listing[listing.index(store.public_id):]
    row = row[:row.index("</tr>")]
    # files, completed, in progress, failed (a link to them), cancelled
    assert '<td class="field-files_total"><a href="' in row and ">3</a>" in row
    assert '<td class="field-files_completed">2</td>' in row and '<td class="field-files_cancelled">0</td>' in row
    failed_link = f"vector_store__id__exact={store.pk}&amp;status__exact=failed"
    assert failed_link in row

    failed = page(admin_client, reverse("admin:retrieval_vectorstorefile_changelist"),
                  vector_store__id__exact=store.pk, status__exact="failed")
    assert lost.public_id in failed and "server_error: The file&#x27;s content could not be read." in failed
    assert "good0.txt" not in failed

    detail = page(admin_client, reverse("admin:retrieval_vectorstore_change", args=[store.pk]))
    assert "2 completed" in detail and "1 failed" in detail and "(3 in all)" in detail
    assert reverse("admin:retrieval_vectorstorefile_change", args=[vsf.pk]) in detail
    assert "The file&#x27;s content could not be read." in detail

    assert store.public_id in page(admin_client, reverse("admin:retrieval_vectorstore_changelist"), q=store.public_id)
    assert lost.public_id in page(admin_client, reverse("admin:retrieval_vectorstorefile_changelist"),
                                  q=lost.public_id)
    batches = page(admin_client, reverse("admin:retrieval_filebatch_changelist"), vector_store__id__exact=store.pk)
    assert '<td class="field-files_total">3</td>' in batches and "status__exact=failed" in batches
    vsf_page = page(admin_client, reverse("admin:retrieval_vectorstorefile_change", args=[vsf.pk]))
    assert "could not be read" in vsf_page and store.public_id in vsf_page


def test_retry_a_failed_file_queues_its_ingestion_again(admin_client, store_with_a_failed_file, ingest, monkeypatch,
                                                        django_capture_on_commit_callbacks):
    from retrieval import tasks

    store, lost = store_with_a_failed_file
    vsf = VectorStoreFile.objects.get(file=lost)
    completed = VectorStoreFile.objects.filter(vector_store=store, status="completed").first()
    default_storage.save(lost.storage_name, ContentFile(b"herons by the river"))  # the storage is back
    queued = []
    monkeypatch.setattr(tasks.vector_store_file_ingest, "delay", queued.append)  # no worker in unit tests

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:retrieval_vectorstorefile_changelist"), {
            "action": "retry_ingestion", "_selected_action": [vsf.pk, completed.pk]})
    assert response.status_code == 302
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert f"Ingestion queued again for 1 file(s): {lost.public_id}." in notes
    assert f"Not failed, left alone: {completed.file.public_id}." in notes
    assert queued == [vsf.pk]  # only the failed one
    retried = VectorStoreFile.objects.get(pk=vsf.pk)
    assert retried.status == "in_progress" and retried.last_error is None and retried.generation == vsf.generation + 1
    assert retried.chunking_strategy == vsf.chunking_strategy

    assert ingest() == ["completed"]  # what the queued task does
    assert Chunk.objects.filter(vector_store_file=vsf, text__contains="herons").exists()


def test_retry_on_an_expired_store_says_why(admin_client, store_with_a_failed_file):
    from django.utils import timezone

    from retrieval.models import VectorStore

    store, lost = store_with_a_failed_file
    VectorStore.objects.filter(pk=store.pk).update(expired_at=timezone.now())
    vsf = VectorStoreFile.objects.get(file=lost)
    response = admin_client.post(reverse("admin:retrieval_vectorstorefile_changelist"), {
        "action": "retry_ingestion", "_selected_action": [vsf.pk]})
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("has expired" in n for n in notes)
    assert VectorStoreFile.objects.get(pk=vsf.pk).status == "failed"


def test_vector_store_pages_need_staff(client, project):
    store = vector_store_create(project=project, name="x")
    response = client.get(reverse("admin:retrieval_vectorstore_change", args=[store.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_retry_needs_more_than_view_permission(client, django_user_model, store_with_a_failed_file):
    from django.contrib.auth.models import Permission

    _, lost = store_with_a_failed_file
    vsf = VectorStoreFile.objects.get(file=lost)
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_vectorstorefile"))
    client.force_login(viewer)
    url = reverse("admin:retrieval_vectorstorefile_changelist")
    assert "retry_ingestion" not in page(client, url)
    client.post(url, {"action": "retry_ingestion", "_selected_action": [vsf.pk]})
    assert VectorStoreFile.objects.get(pk=vsf.pk).status == "failed"


def test_errors_are_shown_escaped(admin_client, store_with_a_failed_file):
    store, lost = store_with_a_failed_file
    VectorStoreFile.objects.filter(file=lost).update(
        last_error={"code": "invalid_file", "message": "Unexpected {token} in <script>x</script>"})
    for url in (reverse("admin:retrieval_vectorstore_change", args=[store.pk]),
                reverse("admin:retrieval_vectorstorefile_changelist")):
        html = page(admin_client, url)
        assert "Unexpected {token} in &lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
