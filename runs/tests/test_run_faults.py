"""Run transitions under faults and races (issue 12): expiry vs submitted outputs, a cancel racing completion,
the broker down, a crashed attempt's streamed text not repeated by the recovery."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from assistants.models import Assistant, Message, Thread
from assistants_project.redis import redis_client
from runs import engine, events, lifecycle, llm, services, sweeper
from runs import event_model as ev
from runs.models import Run, RunStep

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(project):
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini")
    thread = Thread.objects.create(project=project)
    return services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)


def _model(monkeypatch, *deltas, during=None):
    """stream_chat answering ``deltas``; ``during(kwargs)`` runs just before the finish (a racing request)."""
    def stream(**kwargs):
        yield from deltas
        if during:
            during(kwargs)
        yield llm.Finish("stop", {"prompt_tokens": 3, "completion_tokens": 2})

    monkeypatch.setattr("runs.llm.stream_chat", stream)
    monkeypatch.setattr("runs.prompt.llm.context_window", lambda model: None)


def _paused(run, monkeypatch) -> Run:
    lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)

    def calls(**kwargs):
        yield llm.ToolCallDelta(index=0, id="c", name="f", arguments="{}")
        yield llm.Finish("tool_calls", {"prompt_tokens": 3, "completion_tokens": 2})

    monkeypatch.setattr("runs.llm.stream_chat", calls)
    monkeypatch.setattr("runs.prompt.llm.context_window", lambda model: None)
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
    paused = Run.objects.get(pk=run.pk)
    assert paused.status == Run.Status.REQUIRES_ACTION
    return paused


def test_submitted_outputs_are_not_expired_afterwards(run, monkeypatch):
    paused = _paused(run, monkeypatch)
    Run.objects.filter(pk=run.pk).update(expires_at=timezone.now() - timedelta(seconds=1))  # due, not yet swept
    call_id = paused.required_action["submit_tool_outputs"]["tool_calls"][0]["id"]
    monkeypatch.setattr("runs.tasks.run_execute.apply_async", lambda **kw: None)
    services.run_submit_tool_outputs(run=paused, tool_outputs=[{"tool_call_id": call_id, "output": "42"}])
    # the sweeper listed the run while it was requires_action, and expires it now
    assert lifecycle.run_expire(run_id=run.pk) is False
    assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED


def test_a_paused_run_past_its_expiry_still_expires(run, monkeypatch):
    _paused(run, monkeypatch)
    Run.objects.filter(pk=run.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sweeper.runs_sweep()["expired"] == 1
    assert Run.objects.get(pk=run.pk).status == Run.Status.EXPIRED


def test_a_cancel_racing_completion_ends_cancelled_at_once(run, monkeypatch):
    """The cancel arrives after the engine's last cancel check: the completion loses its compare-and-set, and the
    run must not stay `cancelling` until the sweeper."""
    _model(monkeypatch, llm.TextDelta("done"),
           during=lambda kw: services.run_cancel(run=Run.objects.get(pk=run.pk)))
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == Run.Status.CANCELLED and stored.cancelled_at


def test_submit_with_the_broker_down_succeeds_and_the_sweeper_sends_the_run(run, monkeypatch, settings,
                                                                             django_capture_on_commit_callbacks):
    paused = _paused(run, monkeypatch)
    call_id = paused.required_action["submit_tool_outputs"]["tool_calls"][0]["id"]

    def down(**kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("runs.tasks.run_execute.apply_async", down)
    with django_capture_on_commit_callbacks(execute=True):
        services.run_submit_tool_outputs(run=paused, tool_outputs=[{"tool_call_id": call_id, "output": "42"}])
    step = RunStep.objects.get(run=run, type=RunStep.Type.TOOL_CALLS)
    assert step.status == RunStep.Status.COMPLETED and step.step_details["tool_calls"][0]["function"]["output"] == "42"
    assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED
    sent = []
    monkeypatch.setattr("runs.tasks.run_execute.apply_async", lambda **kw: sent.append(kw))
    stale = timezone.now() - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.runs_sweep()["requeued"] == 1
    assert sent and sent[0]["args"] == [run.pk]


def test_run_creation_with_the_broker_down_is_a_prompt_503_with_nothing_written(api, monkeypatch):
    assistant = api.post("/v1/assistants", {"model": "gpt-4o-mini"}, format="json").json()
    thread = api.post("/v1/threads", {}, format="json").json()

    def down(**kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("runs.tasks.run_execute.apply_async", down)
    response = api.post(f"/v1/threads/{thread['id']}/runs", {
        "assistant_id": assistant["id"], "additional_messages": [{"role": "user", "content": "hi"}]}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error" and "broker" in response.json()["error"]["message"]
    assert not Run.objects.exists() and not Message.objects.exists()
    response = api.post("/v1/threads/runs", {"assistant_id": assistant["id"], "thread": {}}, format="json")
    assert response.status_code == 503 and Thread.objects.count() == 1


def _streamed_deltas(run) -> str:
    text = []
    for _, fields in redis_client().xrange(events.stream_key(run.public_id)):
        if fields[b"event"] == b"thread.message.delta":
            text += [p["text"]["value"] for p in json.loads(fields[b"data"])["delta"]["content"]]
    return "".join(text)


def test_a_recovered_attempt_continues_the_crashed_message_without_repeating_it(run, monkeypatch):
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    half = engine.Turn(run=claimed, number=1)
    for piece in ("Hello", ",", " wor"):
        half.add_text(piece)  # the worker died here
    message_id = half.message.public_id
    _model(monkeypatch, llm.TextDelta("Hello"), llm.TextDelta(", world"), llm.TextDelta("!"))
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)  # the redelivery
    assert Run.objects.get(pk=run.pk).status == Run.Status.COMPLETED
    messages = list(Message.objects.filter(run_public_id=run.public_id))
    assert [(m.public_id, m.content[0]["text"]["value"], m.status) for m in messages] == [
        (message_id, "Hello, world!", "completed")]
    assert _streamed_deltas(run) == "Hello, world!"  # what the SDKs' text_deltas join to
    assert RunStep.objects.filter(run=run).count() == 1


def test_a_recovered_attempt_that_answers_differently_closes_the_shown_message(run, monkeypatch):
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    half = engine.Turn(run=claimed, number=1)
    half.add_text("Bonjour")
    shown = half.message.public_id
    _model(monkeypatch, llm.TextDelta("Hello"))
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
    closed = [json.loads(f[b"data"]) for _, f in redis_client().xrange(events.stream_key(run.public_id))
              if f[b"event"] == b"thread.message.incomplete"]
    assert [(m["id"], m["content"][0]["text"]["value"]) for m in closed] == [(shown, "Bonjour")]
    assert [m.content[0]["text"]["value"] for m in Message.objects.filter(run_public_id=run.public_id)] == ["Hello"]


def test_an_attempt_ended_by_a_database_outage_is_left_to_the_sweeper(run):
    """Postgres going away mid-run is transient: the task's failure hook leaves the run to the sweeper (which
    re-sends it once the heartbeat lapses) instead of failing it; any other error still fails the run."""
    from django.db import OperationalError

    from runs import tasks

    lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    try:
        raise OperationalError("couldn't get a connection after 5.00 sec")
    except OperationalError as exc:
        tasks._on_failure(None, exc, "task", [run.pk], {}, None)
    assert Run.objects.get(pk=run.pk).status == Run.Status.IN_PROGRESS
    tasks._on_failure(None, ValueError("a bug"), "task", [run.pk], {}, None)
    failed = Run.objects.get(pk=run.pk)
    assert failed.status == Run.Status.FAILED and failed.last_error["code"] == "server_error"


def test_a_worker_killed_as_it_opens_its_message_does_not_stream_the_first_token_twice(run, monkeypatch):
    """The kill lands while the turn's first text is being opened (the reliability suite's worker-kill scenario hit
    it): what the stream shows must be what the recovery can find, so the redelivered attempt continues it rather
    than streaming the first token a second time (``word0word0 word1 …``)."""
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    half = engine.Turn(run=claimed, number=1)

    class Killed(BaseException):
        pass

    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(engine, "_insert_together", die)  # the worker dies as the rows are written (one statement)
        with pytest.raises(Killed):
            half.add_text("Hello")
    _model(monkeypatch, llm.TextDelta("Hello"), llm.TextDelta(", world!"))
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)  # the redelivery
    assert Run.objects.get(pk=run.pk).status == Run.Status.COMPLETED
    assert _streamed_deltas(run) == "Hello, world!"
    assert [m.content[0]["text"]["value"] for m in Message.objects.filter(run_public_id=run.public_id)] == [
        "Hello, world!"]


def _stream_events(run) -> list[str]:
    return [fields[b"event"].decode() for _, fields in redis_client().xrange(events.stream_key(run.public_id))]


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_as_the_run_ends_shows_no_closed_message_and_the_redelivery_ends_it_once(run, monkeypatch):
    """The last turn's message and step close and the run ends in one transaction, whose events go out at its
    commit: a worker killed inside it leaves no completed message or step beside a run still in progress, in the
    rows or on the stream, and the redelivered attempt completes each once."""
    _model(monkeypatch, llm.TextDelta("Hello"), llm.TextDelta(", world!"))

    class Killed(BaseException):
        pass

    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(lifecycle, "_entered", die)  # after the run's finishing UPDATE, before the commit
        with pytest.raises(Killed):
            engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
    assert Run.objects.get(pk=run.pk).status == Run.Status.IN_PROGRESS
    assert [m.status for m in Message.objects.filter(run_public_id=run.public_id)] == ["in_progress"]
    assert [s.status for s in RunStep.objects.filter(run=run)] == ["in_progress"]
    shown = _stream_events(run)
    assert "thread.message.delta" in shown
    assert not {"thread.message.completed", "thread.run.step.completed", "thread.run.completed"} & set(shown)

    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)  # the redelivery
    assert Run.objects.get(pk=run.pk).status == Run.Status.COMPLETED
    assert [(m.content[0]["text"]["value"], m.status) for m in Message.objects.filter(run_public_id=run.public_id)
            ] == [("Hello, world!", "completed")]
    ends = [e for e in _stream_events(run) if e.endswith((".completed", ".incomplete", ".failed"))]
    assert ends == ["thread.message.completed", "thread.run.step.completed", "thread.run.completed"]
    assert _streamed_deltas(run) == "Hello, world!"


@pytest.mark.django_db(transaction=True)
def test_events_published_in_a_transaction_go_out_at_its_commit_without_those_of_a_rolled_back_savepoint(run):
    def publish(status):
        run.status = status
        events.publish_on_commit(run.public_id, ev.RunStatus(run))

    before = _stream_events(run)  # the run's creation
    with transaction.atomic():
        publish(Run.Status.IN_PROGRESS)
        with pytest.raises(RuntimeError), transaction.atomic():
            publish(Run.Status.CANCELLING)
            raise RuntimeError
        publish(Run.Status.COMPLETED)
        assert _stream_events(run) == before  # not before the commit
    assert _stream_events(run) == [*before, "thread.run.in_progress", "thread.run.completed"]
    assert 0 < redis_client().ttl(events.stream_key(run.public_id)) <= events.STREAM_TTL_SECONDS  # ended: expires
