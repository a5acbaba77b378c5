"""Cancel / submit / expire / create races: each ends in exactly one state, promptly, as the API said."""

from __future__ import annotations

import random
import threading
import time

import openai
import pytest

from tests.reliability.conftest import assert_no_duplicates, rounds, scenario_timeout, wait_terminal

pytestmark = pytest.mark.e2e

RACES = rounds(4, 50)


@pytest.mark.timeout(scenario_timeout(3, RACES))
def test_cancel_racing_completion_never_stays_cancelling(client, assistant, stack):
    stack.fake.add_rule("quick", text="quick answer here", token_delay=0.01)
    rng = random.Random(1)
    outcomes = set()
    warm = client.beta.threads.create(messages=[{"role": "user", "content": "quick"}])
    assert client.beta.threads.runs.create_and_poll(thread_id=warm.id, assistant_id=assistant.id).status == "completed"
    for _ in range(RACES):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "quick"}])
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        time.sleep(rng.uniform(0, 0.4))
        try:
            client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)
        except openai.BadRequestError:  # it had finished already
            pass
        # promptly terminal: not left `cancelling` for the sweeper (which would take HEARTBEAT_TIMEOUT = 6 s)
        try:
            run = wait_terminal(client, thread.id, run.id, timeout=5)
        except AssertionError:
            raise AssertionError(client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)) from None
        assert run.status in ("cancelled", "completed")
        outcomes.add(run.status)
        messages, _ = assert_no_duplicates(client, thread.id, run.id)
        assert len(messages) <= 1
    assert outcomes  # both orders are legitimate; which ones happened depends on timing


@pytest.mark.timeout(scenario_timeout(4, RACES))
def test_submit_racing_expiry_is_one_or_the_other(client, assistant, stack):
    stack.fake.add_rule("need a tool", tool_calls=[{"name": "lookup", "arguments": {}}])
    stack.fake.add_rule("tool says 42", text="The answer is 42.")
    rng = random.Random(2)
    for _ in range(RACES):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "need a tool"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                       poll_interval_ms=100)
        assert run.status == "requires_action"
        with stack.db() as db:  # due in a moment (RUN_EXPIRES_SECONDS is at least 10 s)
            db.execute("UPDATE runs_run SET expires_at = now() + make_interval(secs => %s) WHERE public_id = %s",
                       [rng.uniform(-0.3, 1.2), run.id])
        time.sleep(rng.uniform(0, 1.2))
        call = run.required_action.submit_tool_outputs.tool_calls[0]
        try:
            client.beta.threads.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=[
                {"tool_call_id": call.id, "output": "tool says 42"}])
            accepted = True
        except openai.BadRequestError:
            accepted = False
        run = wait_terminal(client, thread.id, run.id, timeout=20)
        # outputs accepted → the run goes on to complete; refused → it had expired
        assert run.status == ("completed" if accepted else "expired"), (accepted, run.status)


@pytest.mark.timeout(scenario_timeout(2, RACES))
def test_concurrent_run_creation_on_one_thread_has_one_winner(client, assistant, stack):
    stack.fake.add_rule("one at a time", text="only me")
    for _ in range(max(1, RACES // 2)):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "one at a time"}])
        results: list = []
        barrier = threading.Barrier(4)

        def create(results=results, thread=thread, barrier=barrier):
            barrier.wait()
            try:
                results.append(client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id))
            except openai.APIStatusError as exc:
                results.append(exc)

        racers = [threading.Thread(target=create) for _ in range(4)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(winners) == 1 and all(e.status_code == 400 for e in losers), [
            getattr(e, "status_code", None) for e in losers]
        run = wait_terminal(client, thread.id, winners[0].id)
        assert run.status == "completed"
        assert len(client.beta.threads.runs.list(thread_id=thread.id).data) == 1
