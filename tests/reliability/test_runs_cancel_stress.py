"""Long streamed runs cancelled mid-answer while short runs start, round after round (the stress under which a
cancelled run's unclosed provider stream used to wedge its worker): every cancel ends `cancelled`, every short run
completes, and the worker still runs new work afterwards."""

from __future__ import annotations

import random
import threading

import pytest

from tests.reliability.conftest import assert_no_duplicates, rounds, scenario_timeout, wait_terminal

pytestmark = pytest.mark.e2e

ROUNDS = rounds(2, 30)
LONG = " ".join(f"long{i}" for i in range(400))


def _cancel_mid_answer(client, thread_id: str, assistant_id: str, delay: float, out: list) -> None:
    try:
        stream = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id, stream=True)
        run_id, cancelled = None, False
        with stream:
            for event in stream:
                if event.event == "thread.run.created":
                    run_id = event.data.id
                if event.event == "thread.message.delta" and not cancelled:
                    threading.Timer(delay, client.beta.threads.runs.cancel,
                                    kwargs={"thread_id": thread_id, "run_id": run_id}).start()
                    cancelled = True
        out.append(run_id)
    except Exception as exc:
        out.append(exc)


@pytest.mark.timeout(scenario_timeout(20, ROUNDS))
def test_cancelled_streams_never_wedge_the_worker(client, assistant, stack):
    stack.fake.add_rule("long one", text=LONG, token_delay=0.005)
    stack.fake.add_rule("short one", text="short and done")
    rng = random.Random(4)
    for number in range(ROUNDS):
        long_threads = [client.beta.threads.create(messages=[{"role": "user", "content": "long one"}])
                        for _ in range(4)]
        outs: list[list] = [[] for _ in long_threads]
        readers = [threading.Thread(target=_cancel_mid_answer,
                                    args=(client, t.id, assistant.id, rng.uniform(0, 0.5), out))
                   for t, out in zip(long_threads, outs, strict=True)]
        for reader in readers:
            reader.start()
        short = []
        for _ in range(4):
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "short one"}])
            run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
            short.append((thread.id, run.id))
        for reader in readers:
            reader.join(timeout=60)
        for thread, out in zip(long_threads, outs, strict=True):
            assert out and isinstance(out[0], str), (number, out)
            run = wait_terminal(client, thread.id, out[0])
            assert run.status == "cancelled", (number, run.status, run.last_error)
            messages, _ = assert_no_duplicates(client, thread.id, out[0])
            assert [m.status for m in messages] == ["incomplete"]
        for thread_id, run_id in short:
            run = wait_terminal(client, thread_id, run_id)
            assert run.status == "completed", (number, run.status, run.last_error)
    # afterwards the worker still takes every kind of new work
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "short one"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=200)
    assert run.status == "completed"
