"""Threads, messages and files through the official openai SDK against a live `manage.py serve`."""

from __future__ import annotations

import os

import openai
import pytest

from tests.live import E2E_DATA_DIR, e2e_db

pytestmark = pytest.mark.e2e


def _mark_run(message_ids: list[str], run_id: str) -> None:
    """Stamp messages as a run's output, straight in the live server's database: what the runs engine will
    write (through assistants.services.message_create), without needing a run here."""
    with e2e_db() as conn:
        conn.execute("UPDATE assistants_message SET run_public_id = %s, assistant_public_id = 'asst_e2e' "
                     "WHERE public_id = ANY(%s)", (run_id, message_ids))


def test_thread_with_initial_messages_pagination_and_deletes(live):
    client = live.client()
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Hello"},
                  {"role": "assistant", "content": [{"type": "text", "text": "Hi! How can I help?"}]}],
        metadata={"customer": "acme"},
    )
    assert thread.id.startswith("thread_") and thread.metadata == {"customer": "acme"}
    assert client.beta.threads.retrieve(thread.id).id == thread.id

    added = [client.beta.threads.messages.create(thread.id, role="user", content=f"question {i}",
                                                 metadata={"i": str(i)}) for i in range(5)]
    assert added[0].content[0].text.value == "question 0" and added[0].content[0].text.annotations == []
    assert added[0].status == "completed" and added[0].run_id is None and added[0].thread_id == thread.id

    newest_first = [m.id for m in client.beta.threads.messages.list(thread.id, limit=2)]  # auto-paginates
    assert len(newest_first) == 7 and newest_first[:5] == [m.id for m in reversed(added)]
    oldest_first = [m.id for m in client.beta.threads.messages.list(thread.id, limit=3, order="asc")]
    assert oldest_first == newest_first[::-1]
    first_page = client.beta.threads.messages.list(thread.id, limit=3, order="asc")
    assert first_page.has_more is True and [m.role for m in first_page.data[:2]] == ["user", "assistant"]
    assert first_page.data[1].content[0].text.value == "Hi! How can I help?"

    _mark_run([added[1].id, added[3].id], "run_e2e")
    by_run = [m.id for m in client.beta.threads.messages.list(thread.id, run_id="run_e2e", limit=1)]
    assert by_run == [added[3].id, added[1].id]
    assert list(client.beta.threads.messages.list(thread.id, run_id="run_other")) == []

    updated = client.beta.threads.messages.update(added[0].id, thread_id=thread.id, metadata={"seen": "yes"})
    assert updated.metadata == {"seen": "yes"}
    deleted = client.beta.threads.messages.delete(added[0].id, thread_id=thread.id)
    assert deleted.deleted is True and deleted.object == "thread.message.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(added[0].id, thread_id=thread.id)

    assert client.beta.threads.update(thread.id, metadata={"customer": "globex"}).metadata == {"customer": "globex"}
    gone = client.beta.threads.delete(thread.id)
    assert gone.deleted is True and gone.object == "thread.deleted"
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.threads.retrieve(thread.id)
    assert f"No thread found with id '{thread.id}'." in info.value.message
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id).data  # noqa: B018


def test_file_upload_content_and_delete(live, tmp_path):
    client = live.client()
    path = tmp_path / "quarterly report.csv"
    content = os.urandom(3 * 1024 * 1024 + 17)  # past the in-memory upload threshold: spooled to disk
    path.write_bytes(content)

    with path.open("rb") as handle:
        file = client.files.create(file=handle, purpose="assistants")
    assert file.id.startswith("file-") and file.bytes == len(content)
    assert file.filename == "quarterly report.csv" and file.purpose == "assistants" and file.status == "processed"
    assert client.files.retrieve(file.id).bytes == len(content)

    downloaded = client.files.content(file.id)
    assert downloaded.content == content
    assert downloaded.response.headers["content-type"] == "text/csv"
    assert "quarterly" in downloaded.response.headers["content-disposition"]

    expiring = client.files.create(file=("note.txt", b"short-lived"), purpose="user_data",
                                   expires_after={"anchor": "created_at", "seconds": 3600})
    assert expiring.expires_at == expiring.created_at + 3600
    assert [f.id for f in client.files.list(purpose="user_data")] == [expiring.id]
    assert file.id in [f.id for f in client.files.list()]

    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert info.value.param == "file"
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("x.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    assert info.value.param == "purpose"

    # A message can carry the file; another project's (or an unknown) file cannot be attached.
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id, role="user", content="see attached",
        attachments=[{"file_id": file.id, "tools": [{"type": "file_search"}]}])
    assert message.attachments[0].file_id == file.id
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.threads.messages.create(thread.id, role="user", content="x",
                                            attachments=[{"file_id": "file-unknown", "tools": []}])
    assert info.value.param == "attachments[0].file_id"

    for f in (file, expiring):
        deleted = client.files.delete(f.id)
        assert deleted.deleted is True and deleted.id == f.id
    with pytest.raises(openai.NotFoundError) as info:
        client.files.content(file.id)
    assert f"No such File object: {file.id}" in info.value.message
    stored_dir = E2E_DATA_DIR / "files"
    assert not any(p.name in (file.id, expiring.id) for p in stored_dir.rglob("*"))
