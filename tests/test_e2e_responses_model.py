"""Runs on a Responses-backed model (issue 16): ``responses-model`` is marked ``api: responses`` in the live
stack's alias file, so its runs call the fake provider's ``POST /v1/responses`` (stateless: store false, the whole
context each turn) and never its chat completions, with every Assistants behaviour kept."""

import re
import time

import pytest
from openai import AssistantEventHandler

pytestmark = pytest.mark.e2e

MODEL = "responses-model"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


class Deltas(AssistantEventHandler):
    def __init__(self):
        super().__init__()
        self.text = []

    def on_text_delta(self, delta, snapshot):
        self.text.append(delta.value)


@pytest.fixture
def client(live):
    return live.client()


def test_text_streams_through_runs_stream(live, client):
    live.fake.add_rule("greet", text="Hello from the Responses API, friend.")
    assistant = client.beta.assistants.create(model=MODEL, instructions="Be nice.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "greet me"}])
    handler = Deltas()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                         event_handler=handler) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "completed" and run.model == MODEL
    assert len(handler.text) > 3 and "".join(handler.text) == "Hello from the Responses API, friend."
    stored = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert stored.content[0].text.value == "".join(handler.text)
    assert live.fake.chat_requests() == []
    (sent,) = live.fake.responses_requests()
    assert sent["store"] is False and sent["stream"] is True and sent["model"] == "gpt-4o-mini"
    assert sent["input"] == [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "greet me"}]
    assert run.usage.prompt_tokens > 0 and run.usage.completion_tokens == len(handler.text)


def test_two_round_function_call(live, client):
    live.fake.add_rule("weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}], times=1)
    live.fake.add_rule(lambda body: body["messages"][-1]["role"] == "tool" and "cold" in body["messages"][-1][
        "content"], tool_calls=[{"name": "get_weather", "arguments": {"city": "Bergen"}}], times=1)
    live.fake.add_rule(lambda body: body["messages"][-1]["role"] == "tool" and "wet" in body["messages"][-1][
        "content"], text="Oslo cold, Bergen wet.")
    assistant = client.beta.assistants.create(model=MODEL, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Oslo and Bergen?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=100)
    outputs = {"Oslo": "cold", "Bergen": "wet"}
    for _ in range(2):
        assert run.status == "requires_action"
        (call,) = run.required_action.submit_tool_outputs.tool_calls
        assert call.function.name == "get_weather"
        city = re.search(r'"city": ?"(\w+)"', call.function.arguments).group(1)
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": outputs[city]}],
            poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    assert client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == \
        "Oslo cold, Bergen wet."
    requests = live.fake.responses_requests()
    assert len(requests) == 3 and live.fake.chat_requests() == []
    assert requests[0]["tools"] == [{"type": "function", "name": "get_weather", "strict": False,
                                     "parameters": WEATHER["function"]["parameters"]}]
    last = requests[-1]["input"]
    assert [item.get("type") or item["role"] for item in last] == [
        "user", "function_call", "function_call_output", "function_call", "function_call_output"]
    assert last[1]["call_id"] == last[2]["call_id"] and last[2]["output"] == "cold"  # our ids, full context
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    assert all(s.usage is not None and s.usage.total_tokens > 0 for s in steps)
    assert run.usage.total_tokens == sum(s.usage.total_tokens for s in steps)


def test_file_search_with_citations(live, client, tmp_path):
    doc = tmp_path / "handbook.md"
    doc.write_text("# Office handbook\n\nThe office coffee machine is descaled every Tuesday by Priya.\n")
    uploaded = client.files.create(file=doc.open("rb"), purpose="assistants")
    store = client.vector_stores.create(name="handbook", file_ids=[uploaded.id])
    deadline = time.monotonic() + 60
    while client.vector_stores.retrieve(store.id).file_counts.completed < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)

    def cite(body):
        marker = re.search(r"Source (【\d+:\d+†[^】]*】)", body["messages"][-1]["content"]).group(1)
        return f"Every Tuesday {marker}."

    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "user",
                       tool_calls=[{"name": "file_search", "arguments": {"queries": ["coffee machine descaled"]}}])
    live.fake.add_rule(lambda b: b["messages"][-1]["role"] == "tool", reply=cite)
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "file_search"}],
                                              tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "When is the coffee machine "
                                                                               "descaled?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    (citation,) = text.annotations
    assert citation.type == "file_citation" and citation.file_citation.file_id == uploaded.id
    assert text.value[citation.start_index:citation.end_index] == citation.text
    output = live.fake.responses_requests()[-1]["input"][-1]
    assert output["type"] == "function_call_output" and "descaled every Tuesday by Priya" in output["output"]


def test_max_completion_tokens_ends_incomplete(live, client):
    live.fake.add_rule("long", text=" ".join(["word"] * 300))
    assistant = client.beta.assistants.create(model=MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "long answer"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   max_completion_tokens=256, poll_interval_ms=100)
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert live.fake.responses_requests()[-1]["max_output_tokens"] == 256
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.status == "incomplete" and len(message.content[0].text.value.split()) == 256
    assert run.usage.completion_tokens == 256


def test_cancel_mid_stream(live, client):
    live.fake.add_rule("slow", text=" ".join(["more"] * 300), token_delay=0.03)
    assistant = client.beta.assistants.create(model=MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "slow story"}])
    deltas = 0
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                deltas += 1
                if deltas == 3:
                    client.beta.threads.runs.cancel(thread_id=thread.id, run_id=stream.current_run.id)
        run = stream.get_final_run()
    assert run.status == "cancelled"
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"
    deadline = time.monotonic() + 5
    while live.fake.aborted_count < 1:  # the provider stream was closed, not read to its end
        assert time.monotonic() < deadline, "the Responses stream was not closed on cancel"
        time.sleep(0.05)


def test_litellm_responses_routing_is_followed(live, client):
    """A model LiteLLM itself serves through the Responses API (its model map: mode "responses") needs no alias."""
    assistant = client.beta.assistants.create(model="o1-pro")
    run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={
        "messages": [{"role": "user", "content": "hi there"}]}, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    assert [r["model"] for r in live.fake.responses_requests()] == ["o1-pro"] and live.fake.chat_requests() == []
    assert client.beta.threads.messages.list(thread_id=run.thread_id).data[0].content[0].text.value == "Echo: hi there"
