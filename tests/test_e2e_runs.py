"""Runs end to end: the official SDK, a live server, a real Celery worker, and the fake LLM."""

import json

import openai
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(live):
    return live.client()


@pytest.fixture
def assistant(client):
    return client.beta.assistants.create(model="gpt-4o-mini", instructions="You are terse.", tools=[{
        "type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}])


def test_create_and_poll_completes_with_reply_in_thread(client, assistant, live):
    live.fake.add_rule("capital of France", text="Paris is the capital of France.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the capital of France?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    assert run.usage.completion_tokens > 0 and run.usage.total_tokens == (run.usage.prompt_tokens
                                                                           + run.usage.completion_tokens)
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    reply = messages[1]
    assert reply.content[0].text.value == "Paris is the capital of France."
    assert reply.run_id == run.id and reply.assistant_id == assistant.id and reply.status == "completed"
    sent = live.fake.chat_requests()[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["messages"][-1]["content"] == "What is the capital of France?"
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
    assert len(steps) == 1 and steps[0].type == "message_creation" and steps[0].status == "completed"
    assert steps[0].step_details.message_creation.message_id == reply.id
    assert steps[0].usage.completion_tokens == run.usage.completion_tokens


def test_create_thread_and_run_poll(client, assistant, live):
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hello there"}]})
    assert run.status == "completed"
    reply = client.beta.threads.messages.list(thread_id=run.thread_id).data[0]
    assert reply.content[0].text.value == "Echo: hello there"


def test_function_calling_round_trip_with_two_parallel_calls(client, assistant, live):
    live.fake.add_rule("weather in Paris and Rome", tool_calls=[
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Rome"}}])
    live.fake.add_rule(lambda body: body["messages"][-1]["role"] == "tool",
                       text="Paris is sunny and Rome is rainy.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Paris and Rome?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 2 and len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert run.expires_at - run.created_at >= 590

    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "sunny"}, {"tool_call_id": calls[1].id, "output": "rainy"}])
    assert run.status == "completed"
    assert client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == \
        "Paris is sunny and Rome is rainy."
    sent = live.fake.chat_requests()[-1]["messages"]
    assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "tool"]
    assert {m["content"] for m in sent[-2:]} == {"sunny", "rainy"}
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert [c.function.output for c in steps[0].step_details.tool_calls] == ["sunny", "rainy"]


def test_submit_tool_outputs_must_cover_every_call(client, assistant, live):
    live.fake.add_rule("two calls please", tool_calls=[{"name": "get_weather", "arguments": {"city": "A"}},
                                                       {"name": "get_weather", "arguments": {"city": "B"}}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "two calls please"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    calls = run.required_action.submit_tool_outputs.tool_calls
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id,
                                                     tool_outputs=[{"tool_call_id": calls[0].id, "output": "x"}])
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=[
            {"tool_call_id": calls[0].id, "output": "x"}, {"tool_call_id": "call_unknown", "output": "y"}])
    assert info.value.param == "tool_outputs[1].tool_call_id"
    assert client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status == "requires_action"
