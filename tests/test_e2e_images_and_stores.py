"""Image parts of messages reach the model, and a deleted vector store leaves the tool_resources that named it
(both as on OpenAI), end to end through the SDK against the live stack."""

import base64
import struct
import zlib

import pytest

pytestmark = pytest.mark.e2e


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


def _image_parts(body: dict) -> list[dict]:
    user = [m for m in body["messages"] if m["role"] == "user"][-1]
    assert isinstance(user["content"], list), user
    return user["content"]


def test_an_image_file_part_reaches_the_model_as_a_data_url(live):
    client = live.client()
    png = tiny_png()
    image = client.files.create(file=("dot.png", png, "image/png"), purpose="vision")
    live.fake.add_rule(None, text="A green dot.")
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_file", "image_file": {"file_id": image.id, "detail": "low"}}]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    parts = _image_parts(live.fake.chat_requests()[-1])
    assert parts == [{"type": "text", "text": "What is in this picture?"},
                     {"type": "image_url", "image_url": {
                         "url": "data:image/png;base64," + base64.b64encode(png).decode(), "detail": "low"}}]


def test_an_image_url_part_passes_through(live):
    client = live.client()
    live.fake.add_rule(None, text="A cat.")
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "And this one?"}]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    assert _image_parts(live.fake.chat_requests()[-1]) == [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "auto"}},
        {"type": "text", "text": "And this one?"}]


def test_a_deleted_vector_store_leaves_assistants_and_threads(live):
    client = live.client()
    doomed = client.vector_stores.create(name="doomed")
    kept = client.vector_stores.create(name="kept")
    resources = {"file_search": {"vector_store_ids": [doomed.id]}}
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}],
                                              tool_resources=resources)
    other = client.beta.assistants.create(model="gpt-4o-mini", tool_resources={
        "file_search": {"vector_store_ids": [kept.id]}})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Look it up."}],
                                        tool_resources=resources)
    assert client.vector_stores.delete(doomed.id).deleted is True

    assert client.beta.assistants.retrieve(assistant.id).tool_resources.file_search.vector_store_ids == []
    assert client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids == []
    assert client.beta.assistants.retrieve(other.id).tool_resources.file_search.vector_store_ids == [kept.id]
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "user",
                       tool_calls=[{"name": "file_search", "arguments": {"queries": ["anything"]}}])
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "tool", reply="Nothing found.")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
    assert any(s.type == "tool_calls" for s in steps)
