"""Streaming runs through the official SDKs: event order, handlers, tool calls, cancel, failure, resume."""

import asyncio
import json
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import openai
import pytest
from openai import AssistantEventHandler

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

TEXT_RUN = ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created",
            "thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress",
            "thread.message.delta", "thread.message.completed", "thread.run.step.completed",
            "thread.run.completed"]
TOOL_RUN = ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created",
            "thread.run.step.in_progress", "thread.run.step.delta", "thread.run.requires_action"]
AFTER_SUBMIT = ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress",
                "thread.run.step.created", "thread.run.step.in_progress", "thread.message.created",
                "thread.message.in_progress", "thread.message.delta", "thread.message.completed",
                "thread.run.step.completed", "thread.run.completed"]


def collapse(names):
    """Consecutive repeats (the deltas) collapse to one, so orders compare exactly."""
    out = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return out


class Recorder(AssistantEventHandler):
    def __init__(self):
        super().__init__()
        self.events, self.text_deltas, self.calls_done, self.created_text = [], [], [], []

    def on_event(self, event):
        self.events.append(event.event)

    def on_text_created(self, text):
        self.created_text.append(text)

    def on_text_delta(self, delta, snapshot):
        self.text_deltas.append(delta.value)

    def on_tool_call_done(self, tool_call):
        self.calls_done.append(tool_call)


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def client(live):
    return live.client()


@pytest.fixture
def assistant(client):
    return client.beta.assistants.create(model="gpt-4o-mini", instructions="Be nice.", tools=[WEATHER])


def test_text_run_streams_in_openai_order(client, assistant, live):
    live.fake.add_rule("greet", text="Hello there, how are you today?")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "greet me"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                         event_handler=handler) as stream:
        stream.until_done()
        final_messages = stream.get_final_messages()
        final_run = stream.get_final_run()
    assert collapse(handler.events) == TEXT_RUN
    assert handler.events.count("thread.message.delta") == len(handler.text_deltas) > 1
    assert "".join(handler.text_deltas) == "Hello there, how are you today?"
    assert final_run.status == "completed" and final_run.usage.total_tokens > 0
    stored = client.beta.threads.messages.retrieve(thread_id=thread.id, message_id=final_messages[0].id)
    assert stored.content[0].text.value == "".join(handler.text_deltas)  # persisted == streamed


def test_create_and_run_stream(client, assistant, live):
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi stream"}]},
            event_handler=handler) as stream:
        stream.until_done()
    assert collapse(handler.events) == ["thread.created", *TEXT_RUN]
    assert "".join(handler.text_deltas) == "Echo: hi stream"


def test_function_calling_stream_then_submit_stream(client, assistant, live):
    live.fake.add_rule("weather in Lima", tool_calls=[{"name": "get_weather", "arguments": {"city": "Lima"}},
                                                      {"name": "get_weather", "arguments": {"city": "Cusco"}}])
    live.fake.add_rule(lambda body: body["messages"][-1]["role"] == "tool", text="Lima mild, Cusco cold.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Lima and Cusco"}])

    class Tools(Recorder):
        def on_event(self, event):
            super().on_event(event)
            if event.event == "thread.run.requires_action":
                self.required = event.data

    handler = Tools()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id,
                                         event_handler=handler) as stream:
        stream.until_done()
    assert collapse(handler.events) == TOOL_RUN
    calls = handler.required.required_action.submit_tool_outputs.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Lima", "Cusco"]
    assert [c.function.arguments for c in handler.calls_done] == [c.function.arguments for c in calls]

    after = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread.id, run_id=handler.required.id, event_handler=after,
            tool_outputs=[{"tool_call_id": calls[0].id, "output": "mild"},
                          {"tool_call_id": calls[1].id, "output": "cold"}]) as stream:
        stream.until_done()
    assert collapse(after.events) == AFTER_SUBMIT
    assert "".join(after.text_deltas) == "Lima mild, Cusco cold."


def test_async_client_streams(live, assistant):
    client = live.async_client()

    async def go():
        thread = await client.beta.threads.create(messages=[{"role": "user", "content": "async hello"}])
        names, text = [], []
        async with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            async for event in stream:
                names.append(event.event)
                if event.event == "thread.message.delta":
                    text.append(event.data.delta.content[0].text.value)
        return names, "".join(text)

    names, text = asyncio.run(go())
    assert collapse(names) == TEXT_RUN and text == "Echo: async hello"


def _raw_events(live, path, body, headers=None):
    """(id, event, data) triples of a raw SSE response, read to its end."""
    out = []
    with live.http() as http, http.stream("POST" if body is not None else "GET", path, json=body,
                                          headers=headers or {}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        current = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    out.append((current.get("id"), current.get("event"), current.get("data")))
                current = {}
                continue
            key, _, value = line.partition(": ")
            current[key] = value
    return out


def test_stream_ends_with_done_and_every_event_has_an_id(live, client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "ids please"}])
    events = _raw_events(live, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True},
                         headers={"Accept": "application/json"})  # the SDKs send this even when streaming
    assert events[-1] == (None, "done", "[DONE]")
    assert all(entry_id for entry_id, _, _ in events[:-1])
    assert len({entry_id for entry_id, _, _ in events[:-1]}) == len(events) - 1


def test_cancelled_run_stream(live, client, assistant):
    live.fake.add_rule("endless", text=" ".join(["more"] * 300), token_delay=0.03)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "endless text"}])
    names = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            names.append(event.event)
            if event.event == "thread.message.delta" and names.count("thread.message.delta") == 3:
                client.beta.threads.runs.cancel(thread_id=thread.id, run_id=stream.current_run.id)
    tail = [n for n in collapse(names) if n != "thread.message.delta"][-5:]
    assert tail == ["thread.message.in_progress", "thread.run.cancelling", "thread.message.incomplete",
                    "thread.run.step.cancelled", "thread.run.cancelled"]


def test_failed_run_stream(live, client, assistant):
    live.fake.add_rule("fail hard", error=(400, "bad prompt", "invalid_request_error"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "fail hard"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        names = [event.event for event in stream]
        final = stream.get_final_run()
    assert names == ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.failed"]
    assert final.status == "failed" and final.last_error.code == "invalid_prompt"


def test_errors_before_streaming_are_plain_json(live, client, assistant):
    with pytest.raises(openai.NotFoundError):
        with client.beta.threads.runs.stream(thread_id="thread_nope", assistant_id=assistant.id) as stream:
            stream.until_done()


def test_resume_after_disconnect_has_no_gap_and_no_repeat(live, client, assistant):
    text = " ".join(f"w{i}" for i in range(80))
    live.fake.add_rule("resume me", text=text, token_delay=0.02)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "resume me"}])
    first = []
    with live.http() as http, http.stream("POST", f"/threads/{thread.id}/runs",
                                          json={"assistant_id": assistant.id, "stream": True}) as response:
        current = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                first.append(current)
                current = {}
                if sum(1 for e in first if e.get("event") == "thread.message.delta") == 10:
                    break  # disconnect in the middle of the message
                continue
            key, _, value = line.partition(": ")
            current[key] = value
    run_id = json.loads(first[0]["data"])["id"]
    rest = _raw_events(live, f"/threads/{thread.id}/runs/{run_id}/events", None,
                       headers={"Last-Event-ID": first[-1]["id"]})
    ids = [e["id"] for e in first] + [i for i, _, _ in rest[:-1]]
    assert len(ids) == len(set(ids)) and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    deltas = [json.loads(e["data"]) for e in first if e["event"] == "thread.message.delta"]
    deltas += [json.loads(d) for _, name, d in rest if name == "thread.message.delta"]
    assert "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas) == text
    assert rest[-2][1] == "thread.run.completed" and rest[-1][1] == "done"
    again = _raw_events(live, f"/threads/{thread.id}/runs/{run_id}/events?after={first[-1]['id']}", None)
    assert [i for i, _, _ in again] == [i for i, _, _ in rest]


def test_100_concurrent_streams(live, client, assistant):
    live.fake.add_rule("concurrent", text="one two three four five six seven eight", token_delay=0.01)
    results, errors = [], []

    def one(i):
        try:
            c = live.client()
            thread = c.beta.threads.create(messages=[{"role": "user", "content": f"concurrent {i}"}])
            text = []
            with c.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
                for event in stream:
                    if event.event == "thread.message.delta":
                        text.append(event.data.delta.content[0].text.value)
                results.append((stream.get_final_run().status, "".join(text)))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert errors == []
    assert len(results) == 100
    assert all(status == "completed" and text == "one two three four five six seven eight"
               for status, text in results)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_sdk_streams_and_polls(live, client, assistant):
    live.fake.add_rule("node weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Quito"}}])
    live.fake.add_rule(lambda body: body["messages"][-1]["role"] == "tool", text="Quito is springlike.")
    live.fake.add_rule("node slow poll", text="Slowly.", first_token_delay=0.6)
    assert (ROOT / "node_modules" / "openai").exists(), "run `npm install` (make test does)"
    result = subprocess.run(["node", str(ROOT / "tests" / "node" / "stream.mjs")], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env={"PATH": "/usr/bin:/bin:/usr/local/bin",
                                                        "BASE_URL": live.base_url, "API_KEY": live.api_key,
                                                        "ASSISTANT_ID": assistant.id})
    assert result.returncode == 0, result.stderr + result.stdout
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["toolCallDeltaArgs"] == json.dumps({"city": "Quito"}) or json.loads(out["toolCallDeltaArgs"]) == {
        "city": "Quito"}
    assert out["firstStatus"] == "requires_action"
    assert out["text"] == "Quito is springlike." and out["finalStatus"] == "completed"
    # The Node SDK reads a held poll's chunked answer, and sees the end on its first poll.
    assert out["polledStatus"] == "completed" and out["polls"] == 1


def test_keepalive_comment_is_ignored_by_clients():
    # The SSE framing the relay uses, parsed the way both SDKs parse it (comment lines are skipped).
    body = b": keep-alive\n\nid: 1-0\nevent: thread.run.completed\ndata: {}\n\nevent: done\ndata: [DONE]\n\n"
    lines = [line for line in body.decode().split("\n") if line and not line.startswith(":")]
    assert lines[0] == "id: 1-0" and httpx is not None


def test_keep_alive_lines_do_not_break_the_sdks_decoder(live, client, assistant):
    """A provider slow to answer: the stream carries keep-alive lines (STREAM_KEEPALIVE_SECONDS is 0.3 s in the
    e2e stack) after events with ids, and the SDK still sees exactly the run's events."""
    live.fake.add_rule("think first", text="ready now", first_token_delay=1.2)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "think first"}])
    with live.http() as http, http.stream("POST", f"/threads/{thread.id}/runs",
                                          json={"assistant_id": assistant.id, "stream": True}) as response:
        raw = "".join(response.iter_text())
    assert ": keep-alive" in raw and raw.index(": keep-alive") > raw.index("id: ")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "think first"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        names = collapse(event.event for event in stream)
        text = stream.get_final_messages()[0].content[0].text.value
    assert names == TEXT_RUN and text == "ready now"
