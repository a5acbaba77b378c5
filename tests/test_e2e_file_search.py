"""file_search inside runs: the model searches the assistant's vector store, answers citing a source, and the
message carries a file_citation that points at a real span; include[] shows the results' content."""

import re

import pytest

pytestmark = pytest.mark.e2e

INCLUDE = ["step_details.tool_calls[*].file_search.results[*].content"]
DOC = ("# Office handbook\n\nThe office coffee machine is descaled every Tuesday by Priya.\n\n"
       "Parking permits are renewed in March at the front desk.\n")


def cite_first_source(body):
    tool = body["messages"][-1]["content"]
    marker = re.search(r"Source (【\d+:\d+†[^】]*】)", tool).group(1)
    return f"The machine is descaled every Tuesday {marker}."


@pytest.fixture
def store(live, tmp_path):
    client = live.client()
    path = tmp_path / "handbook.md"
    path.write_text(DOC)
    uploaded = client.files.create(file=path.open("rb"), purpose="assistants")
    store = client.vector_stores.create(name="handbook", file_ids=[uploaded.id])
    store = _wait_completed(client, store.id)
    return store, uploaded


def _wait_completed(client, store_id, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = client.vector_stores.retrieve(store_id)
        if store.file_counts.in_progress == 0:
            assert store.file_counts.completed == store.file_counts.total, store.file_counts
            return store
        time.sleep(0.2)
    raise AssertionError("vector store never finished ingesting")


def test_file_search_answer_carries_a_citation(live, store):
    store, uploaded = store
    client = live.client()
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "user" and "coffee" in str(b["messages"][-1]),
                       tool_calls=[{"name": "file_search", "arguments": {"queries": ["coffee machine descaled"]}}])
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "tool", reply=cite_first_source)
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}],
                                              tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "When is the coffee machine "
                                                                               "descaled?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, include=INCLUDE)
    assert run.status == "completed", run.last_error

    tool_output = next(m for m in live.fake.chat_requests()[-1]["messages"] if m["role"] == "tool")["content"]
    assert "descaled every Tuesday by Priya" in tool_output  # the search found the right chunk

    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    text = message.content[0].text
    assert len(text.annotations) == 1
    citation = text.annotations[0]
    assert citation.type == "file_citation" and citation.file_citation.file_id == uploaded.id
    assert text.value[citation.start_index:citation.end_index] == citation.text
    assert citation.text.startswith("【") and "handbook.md" in citation.text

    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    call = steps[0].step_details.tool_calls[0]
    assert steps[0].type == "tool_calls" and call.type == "file_search"
    assert call.file_search.ranking_options.ranker == "auto"
    assert call.file_search.results and all(r.content is None for r in call.file_search.results)
    with_content = client.beta.threads.runs.steps.retrieve(thread_id=thread.id, run_id=run.id,
                                                           step_id=steps[0].id, include=INCLUDE)
    result = with_content.step_details.tool_calls[0].file_search.results[0]
    assert result.file_id == uploaded.id and result.file_name == "handbook.md" and 0 <= result.score <= 1
    assert "Priya" in result.content[0].text


def test_file_search_over_the_threads_store_and_model_sees_the_tool(live, store):
    store, uploaded = store
    client = live.client()
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "user",
                       tool_calls=[{"name": "file_search", "arguments": {"queries": ["parking permits"]}}])
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "tool", reply=cite_first_source)
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "parking?"}],
                                        tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    first_request = live.fake.chat_requests()[-2]
    assert [t["function"]["name"] for t in first_request["tools"]] == ["file_search"]
    tool_output = next(m for m in live.fake.chat_requests()[-1]["messages"] if m["role"] == "tool")["content"]
    assert "Parking permits are renewed in March" in tool_output
    annotations = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.annotations
    assert annotations[0].file_citation.file_id == uploaded.id


def test_message_attachments_go_into_the_threads_store(live, tmp_path):
    client = live.client()
    path = tmp_path / "menu.txt"
    path.write_text("The canteen serves lentil soup on Fridays.\n")
    uploaded = client.files.create(file=path.open("rb"), purpose="assistants")
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "user",
                       tool_calls=[{"name": "file_search", "arguments": {"queries": ["soup on Fridays"]}}])
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "tool", reply=cite_first_source)
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What soup is on Friday?",
                                                   "attachments": [{"file_id": uploaded.id,
                                                                    "tools": [{"type": "file_search"}]}]}])
    store_ids = client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids
    assert len(store_ids) == 1
    files = client.vector_stores.files.list(vector_store_id=store_ids[0]).data
    assert [f.id for f in files] == [uploaded.id]
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    tool_output = next(m for m in live.fake.chat_requests()[-1]["messages"] if m["role"] == "tool")["content"]
    assert "lentil soup on Fridays" in tool_output
    annotations = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.annotations
    assert annotations[0].file_citation.file_id == uploaded.id
