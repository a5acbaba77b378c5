"""Redis (broker and event streams) SIGKILLed with run streams open, then restarted: every run still ends in a
terminal state within bounds, nothing is duplicated, and new runs complete afterwards."""

from __future__ import annotations

import threading
import time

import openai
import pytest

from tests.reliability.conftest import TERMINAL_BOUND, assert_no_duplicates, rounds, scenario_timeout, wait_terminal

pytestmark = pytest.mark.e2e

ROUNDS = rounds(1, 5)
ANSWER = " ".join(f"tok{i}" for i in range(120))


def _drain(client, thread_id: str, assistant_id: str, out: dict) -> None:
    """Read a run's stream as a client would; the stream may break when Redis dies (that is allowed)."""
    try:
        with client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id, stream=True) as stream:
            for event in stream:
                out["last_event"] = event.event
    except Exception as exc:
        out["error"] = exc


@pytest.mark.timeout(scenario_timeout(90, ROUNDS))
def test_redis_killed_and_restarted_with_streams_open(client, assistant, stack):
    stack.fake.add_rule("through the outage", text=ANSWER, token_delay=0.02)
    for number in range(ROUNDS):
        threads = [client.beta.threads.create(messages=[{"role": "user", "content": "through the outage"}])
                   for _ in range(4)]
        outs = [{} for _ in threads]
        readers = [threading.Thread(target=_drain, args=(client, t.id, assistant.id, out))
                   for t, out in zip(threads, outs, strict=True)]
        for reader in readers:
            reader.start()
        time.sleep(1.0)  # the streams are open and the runs mid-answer
        stack.kill_redis()
        time.sleep(2.0)
        stack.start_redis()
        for reader in readers:
            reader.join(timeout=TERMINAL_BOUND + 30)
            assert not reader.is_alive(), "a stream stayed open after its run ended"
        for thread, out in zip(threads, outs, strict=True):
            runs = client.beta.threads.runs.list(thread_id=thread.id).data
            assert len(runs) == 1, (number, out)
            run = wait_terminal(client, thread.id, runs[0].id, timeout=TERMINAL_BOUND + 30)
            assert run.status in ("completed", "failed"), (number, run.status)
            messages, _ = assert_no_duplicates(client, thread.id, run.id)
            if run.status == "completed":
                assert [m.content[0].text.value for m in messages] == [ANSWER]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "after the outage"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=200)
    assert run.status == "completed"


def test_with_redis_down_creation_is_a_prompt_503_and_submitted_outputs_stand(client, assistant, stack):
    stack.fake.add_rule("need a tool", tool_calls=[{"name": "lookup", "arguments": {}}])
    stack.fake.add_rule("looked up", text="Found it.")
    paused = client.beta.threads.create(messages=[{"role": "user", "content": "need a tool"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=paused.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "requires_action"
    other = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    stack.kill_redis()
    try:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            client.beta.threads.runs.create(thread_id=other.id, assistant_id=assistant.id)
        assert caught.value.status_code == 503 and time.monotonic() - started < 10
        call = run.required_action.submit_tool_outputs.tool_calls[0]
        submitted = client.beta.threads.runs.submit_tool_outputs(thread_id=paused.id, run_id=run.id, tool_outputs=[
            {"tool_call_id": call.id, "output": "looked up"}])
        assert submitted.status == "queued"
    finally:
        stack.start_redis()
    assert client.beta.threads.runs.list(thread_id=other.id).data == []  # nothing half-written
    run = wait_terminal(client, paused.id, run.id)
    assert run.status == "completed"  # the sweeper sent it once the broker was back
    messages, _ = assert_no_duplicates(client, paused.id, run.id)
    assert [m.content[0].text.value for m in messages] == ["Found it."]
