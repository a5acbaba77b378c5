"""Runs end to end: the official SDK, a live server, a real Celery worker, and the fake LLM."""

import json

import httpx
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
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "sunny"},
                      {"tool_call_id": calls[1].id, "output": "rainy"}])
    assert run.status == "completed"
    assert client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == \
        "Paris is sunny and Rome is rainy."
    sent = live.fake.chat_requests()[-1]["messages"]
    assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "tool"]
    assert {m["content"] for m in sent[-2:]} == {"sunny", "rainy"}
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert [c.function.output for c in steps[0].step_details.tool_calls] == ["sunny", "rainy"]


def test_the_poll_helpers_see_each_stop_on_their_first_poll(assistant, live):
    """A poll helper's GET of an active run is held until the run stops where the helper stops (requires_action,
    completed), so each *_and_poll takes one poll, however long the model takes; a plain GET is answered at once."""
    polls: list[str | None] = []

    def count(request: httpx.Request) -> None:
        if request.method == "GET" and "/runs/run_" in request.url.path:
            polls.append(request.headers.get("X-Stainless-Poll-Helper"))

    sdk = live.client(http_client=httpx.Client(event_hooks={"request": [count]}))
    live.fake.add_rule("slow weather", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
                       first_token_delay=0.6)
    live.fake.add_rule(lambda body: body["messages"][-1]["role"] == "tool", text="Oslo is cold.",
                       first_token_delay=0.6)
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "slow weather in Oslo?"}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action" and polls == ["true"]
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    run = sdk.beta.threads.runs.submit_tool_outputs_and_poll(thread_id=thread.id, run_id=run.id,
                                                             tool_outputs=[{"tool_call_id": call.id, "output": "-5"}])
    assert run.status == "completed" and polls == ["true", "true"]
    assert sdk.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == "Oslo is cold."

    live.fake.add_rule("slow answer", text="Here.", first_token_delay=1.0)
    sdk.beta.threads.messages.create(thread_id=thread.id, role="user", content="slow answer please")
    run = sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert sdk.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status in ("queued", "in_progress")
    assert sdk.beta.threads.runs.poll(thread_id=thread.id, run_id=run.id).status == "completed"
    assert polls[2:] == [None, "true"]


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


def _wait(predicate, timeout=30.0, interval=0.1):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_two_round_tool_loop(client, assistant, live):
    def tool_messages(body):
        return sum(1 for m in body["messages"] if m["role"] == "tool")

    live.fake.add_rule(lambda b: tool_messages(b) == 0 and "plan my trip" in str(b["messages"][-1]),
                       tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    live.fake.add_rule(lambda b: tool_messages(b) == 1, tool_calls=[{"name": "get_weather",
                                                                     "arguments": {"city": "Bergen"}}])
    live.fake.add_rule(lambda b: tool_messages(b) == 2, text="Oslo cold, Bergen wet.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "plan my trip"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    first = run.required_action.submit_tool_outputs.tool_calls[0]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": first.id, "output": "cold"}])
    assert run.status == "requires_action"
    second = run.required_action.submit_tool_outputs.tool_calls[0]
    assert second.id != first.id and json.loads(second.function.arguments) == {"city": "Bergen"}
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": second.id, "output": "wet"}])
    assert run.status == "completed"
    assert client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == \
        "Oslo cold, Bergen wet."
    sent = live.fake.chat_requests()[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    assert all(s.status == "completed" and s.usage is not None for s in steps)
    assert run.usage.total_tokens == sum(s.usage.total_tokens for s in steps)


def test_cancel_a_slow_run(client, assistant, live):
    live.fake.add_rule("slow story", text=" ".join(["word"] * 200), token_delay=0.05)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "slow story please"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    _wait(lambda: client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data)  # mid-generation
    cancelling = client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)
    assert cancelling.status == "cancelling"
    run = client.beta.threads.runs.poll(thread_id=thread.id, run_id=run.id, poll_interval_ms=100)
    assert run.status == "cancelled" and run.cancelled_at
    message = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"
    step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[0]
    assert step.status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="Cannot cancel run with status 'cancelled'"):
        client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)


def test_active_run_blocks_new_runs_and_messages(client, assistant, live):
    live.fake.add_rule("take your time", text="ok " * 40, token_delay=0.05)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "take your time"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert info.value.body["message"] == f"Thread {thread.id} already has an active run {run.id}."
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="hi")
    assert info.value.body["message"] == f"Can't add messages to {thread.id} while a run {run.id} is active."
    assert client.beta.threads.runs.poll(thread_id=thread.id, run_id=run.id).status == "completed"
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="now it works")


def test_incomplete_on_max_completion_tokens(client, assistant, live):
    live.fake.add_rule("long answer", text=" ".join(["token"] * 400))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "long answer please"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   max_completion_tokens=256)
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert live.fake.chat_requests()[-1]["max_tokens"] == 256
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"
    assert len(message.content[0].text.value.split()) == 256


def test_last_messages_truncation_reaches_the_model(client, assistant, live):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"message {i}"} for i in range(6)])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   truncation_strategy={"type": "last_messages", "last_messages": 2})
    assert run.status == "completed"
    assert run.truncation_strategy.type == "last_messages" and run.truncation_strategy.last_messages == 2
    sent = live.fake.chat_requests()[-1]["messages"]
    assert sent == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "message 4"},
                    {"role": "user", "content": "message 5"}]


def test_run_overrides_are_copied_and_sent(client, assistant, live):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, instructions="Override.", additional_instructions="Extra.",
        temperature=0.2, top_p=0.5, tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False, response_format={"type": "json_object"},
        additional_messages=[{"role": "user", "content": "and more"}])
    assert run.instructions == "Override." and run.temperature == 0.2 and run.parallel_tool_calls is False
    sent = live.fake.chat_requests()[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Override.\n\nExtra."}
    assert sent["messages"][-1]["content"] == "and more"
    assert sent["temperature"] == 0.2 and sent["top_p"] == 0.5 and sent["parallel_tool_calls"] is False
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["response_format"] == {"type": "json_object"}


def test_provider_500_fails_the_run_after_our_retry(client, assistant, live):
    live.fake.add_rule("explode", error=(500, "upstream exploded", "server_error"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "explode now"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "failed" and run.failed_at
    assert run.last_error.code == "server_error" and "upstream exploded" in run.last_error.message
    assert len(live.fake.chat_requests()) == 2  # LLM_NUM_RETRIES=1 in this stack: one retry, no hidden ones


def test_provider_errors_map_to_openai_codes(client, assistant, live):
    live.fake.add_rule("too long", error=(400, "This model's maximum context length is 10 tokens",
                                          "context_length_exceeded"))
    live.fake.add_rule("slow down", error=(429, "Rate limit reached", "rate_limit_error"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "too long"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "failed" and run.last_error.code == "invalid_prompt"
    assert len(live.fake.chat_requests()) == 1  # not transient: no retry
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "slow down"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "failed" and run.last_error.code == "rate_limit_exceeded"


def test_unknown_model_is_a_400_at_create(client, assistant):
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, model="no-such-provider/x")
    assert info.value.param == "model"
    assert client.beta.threads.runs.list(thread_id=thread.id).data == []


def test_worker_killed_mid_run_recovers_without_duplicates(client, assistant, live):
    import os
    import signal

    live.fake.add_rule("survive", text=" ".join(["steady"] * 60), token_delay=0.05)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "survive this"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    _wait(lambda: client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data)
    for pid in live.child_pids("worker"):
        os.kill(pid, signal.SIGKILL)
    run = _wait(lambda: (r := client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)).status
                not in ("queued", "in_progress") and r, timeout=60, interval=0.5)
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data
    assert len(messages) == 1 and messages[0].content[0].text.value == " ".join(["steady"] * 60)
    assert len(client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data) == 1


def test_model_alias_maps_to_a_litellm_target_and_is_echoed(client, live):
    assistant = client.beta.assistants.create(model="house-model")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "alias?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed" and run.model == "house-model" and assistant.model == "house-model"
    sent = live.fake.chat_requests()[-1]
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.25
