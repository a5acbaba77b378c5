"""The operators' admin: per-project browsing, threads read as conversations, files with downloads."""

import pytest
from django.urls import reverse

from assistants import admin as assistants_admin
from assistants import services
from assistants.models import Message
from files.models import File
from files.tests.fixtures import make_file, stored

pytestmark = pytest.mark.django_db


def test_changelists_render_with_search_and_filters(admin_client, project, other_project, storage_dir):
    services.assistant_create(project=project, model="m", name="helper", metadata={"team": "blue"})
    thread = services.thread_create(project=project, metadata={"customer": "acme"},
                                    messages=[{"role": "user", "content": "hello"}])
    make_file(project, name="report.pdf")
    for model in ["tenancy_project", "tenancy_apikey", "assistants_assistant", "assistants_thread",
                  "assistants_message"]:
        url = reverse(f"admin:{model}_changelist")
        assert admin_client.get(url).status_code == 200
        assert admin_client.get(url, {"q": "x"}).status_code == 200
    assert admin_client.get(reverse("admin:files_file_changelist")).status_code == 200

    threads = reverse("admin:assistants_thread_changelist")
    assert thread.public_id in admin_client.get(threads, {"q": "acme"}).content.decode()  # metadata search
    assert thread.public_id in admin_client.get(threads, {"q": thread.public_id}).content.decode()
    assert thread.public_id not in admin_client.get(threads, {"q": "globex"}).content.decode()
    assert thread.public_id in admin_client.get(threads, {"project__id__exact": project.pk}).content.decode()
    assert thread.public_id not in admin_client.get(threads, {"project__id__exact": other_project.pk}).content.decode()
    assistants = reverse("admin:assistants_assistant_changelist")
    assert "helper" in admin_client.get(assistants, {"q": "blue"}).content.decode()
    files = admin_client.get(reverse("admin:files_file_changelist"), {"q": "report"}).content.decode()
    assert "report.pdf" in files and "download" in files


def test_thread_page_reads_as_a_conversation_newest_last(admin_client, project):
    thread = services.thread_create(project=project, messages=[
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ])
    page = admin_client.get(reverse("admin:assistants_thread_change", args=[thread.pk])).content.decode()
    positions = [page.index(text) for text in ("first question", "first answer", "second question")]
    assert positions == sorted(positions)


def test_thread_page_shows_only_the_latest_messages(admin_client, project, monkeypatch):
    monkeypatch.setattr(assistants_admin, "CONVERSATION_TAIL", 3)
    thread = services.thread_create(project=project, messages=[
        {"role": "user", "content": f"message number {i:02d}"} for i in range(6)])
    page = admin_client.get(reverse("admin:assistants_thread_change", args=[thread.pk])).content.decode()
    assert "message number 02" not in page
    assert all(f"message number {i:02d}" in page for i in (3, 4, 5))
    message = Message.objects.filter(thread=thread).first()
    assert admin_client.get(reverse("admin:assistants_message_change", args=[message.pk])).status_code == 200
    listing = admin_client.get(reverse("admin:assistants_message_changelist"), {"thread__id__exact": thread.pk})
    assert listing.status_code == 200 and "message number 00" in listing.content.decode()


def test_conversation_content_is_read_only(admin_client, project):
    thread = services.thread_create(project=project, messages=[{"role": "user", "content": "hi"}])
    url = reverse("admin:assistants_thread_change", args=[thread.pk])
    admin_client.post(url, {"metadata": "{}"})
    assert Message.objects.get(thread=thread).content[0]["text"]["value"] == "hi"
    assert admin_client.get(reverse("admin:assistants_thread_add")).status_code == 403
    assert admin_client.get(reverse("admin:assistants_message_add")).status_code == 403


def test_file_download_and_delete(admin_client, project, storage_dir, django_capture_on_commit_callbacks):
    file = make_file(project, content=b"operator view", name="ops.txt")
    response = admin_client.get(reverse("admin:files_file_download", args=[file.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"operator view"
    assert "ops.txt" in response["Content-Disposition"]
    page = admin_client.get(reverse("admin:files_file_change", args=[file.pk])).content.decode()
    assert reverse("admin:files_file_download", args=[file.pk]) in page and "13 bytes" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:files_file_delete", args=[file.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not File.objects.exists() and stored(storage_dir) == []


def test_admin_needs_staff(client, project, storage_dir):
    file = make_file(project)
    response = client.get(reverse("admin:files_file_download", args=[file.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_thread_page_shows_attachments_and_citations(admin_client, project, storage_dir):
    file = make_file(project, name="manual.txt")
    thread = services.thread_create(project=project, messages=[
        {"role": "user", "content": "read this", "attachments": [{"file_id": file.public_id, "tools": []}]}])
    Message.objects.create(project=project, thread=thread, role="assistant", content=[{"type": "text", "text": {
        "value": "It says hi【0:0†manual.txt】", "annotations": [{
            "type": "file_citation", "text": "【0:0†manual.txt】", "start_index": 10, "end_index": 26,
            "file_citation": {"file_id": file.public_id}}]}}])
    html = admin_client.get(reverse("admin:assistants_thread_change", args=[thread.pk])).content.decode()
    assert f"{file.public_id} (no tools)" in html
    assert f"【0:0†manual.txt】 → file_citation {file.public_id}" in html
