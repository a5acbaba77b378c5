"""Every provider fault ends the run in the right terminal state, promptly, with nothing duplicated and no
credential in what the user (or the log) sees. Nothing faked: a bad ending is never `completed`."""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import LLM_TIMEOUT, assert_no_duplicates, wait_terminal

pytestmark = pytest.mark.e2e

ANSWER = "one two three four five six seven eight nine ten"
# fault → (Reply fields, run status, last_error code, the kept message's status)
FAULTS = {
    "429": ({"error": (429, "Rate limit reached for requests")}, "failed", "rate_limit_exceeded", None),
    "500": ({"error": (500, "The server had an error")}, "failed", "server_error", None),
    "non_json_200": ({"fault": "non_json"}, "failed", "server_error", None),
    "cut_without_finish": ({"fault": "cut", "text": ANSWER}, "failed", "server_error", "incomplete"),
    "cut_after_finish": ({"fault": "cut_after_finish", "text": ANSWER}, "completed", None, "completed"),
    "connection_reset": ({"fault": "reset", "text": ANSWER}, "failed", "server_error", "incomplete"),
    "hang": ({"hang": True, "text": ANSWER}, "failed", "server_error", "incomplete"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_provider_fault_ends_the_run_honestly(client, assistant, stack, fault):
    reply, status, code, message_status = FAULTS[fault]
    stack.fake.add_rule("fault please", **reply)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "fault please"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    run = wait_terminal(client, thread.id, run.id, timeout=LLM_TIMEOUT + 20)
    assert run.status == status, (run.status, run.last_error)
    assert (run.last_error.code if run.last_error else None) == code
    messages, _ = assert_no_duplicates(client, thread.id, run.id)
    assert [m.status for m in messages] == ([message_status] if message_status else [])
    if status == "completed":
        assert messages[0].content[0].text.value == ANSWER
    else:
        assert run.last_error.message


def test_a_rejected_credential_fails_at_once_clearly_and_without_the_key(client, assistant, stack):
    stack.fake.required_api_key = "sk-not-the-key-this-server-has-0000"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "who am I"}])
    started = time.monotonic()
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    run = wait_terminal(client, thread.id, run.id, timeout=30)
    assert run.status == "failed" and run.last_error.code == "server_error"
    assert "credentials" in run.last_error.message
    assert len([r for r in stack.fake.chat_requests()]) == 1  # not retried as if transient
    assert time.monotonic() - started < 10
    provider_key = "sk-fake-provider-key"  # what tests.live gives the server as OPENAI_API_KEY
    assert provider_key not in run.last_error.message and "[redacted]" in run.last_error.message
    assert provider_key not in stack.log()
