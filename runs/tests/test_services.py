"""Claim and compare-and-set logic, called directly (no eager Celery): redelivery, races, the sweeper."""

import contextlib
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from assistants.models import Assistant, Message, Thread
from assistants_project.api.errors import InvalidRequest
from runs import engine, lifecycle, services, sweeper
from runs.models import Run, RunStep

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(project):
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini")
    thread = Thread.objects.create(project=project)
    return services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)


@pytest.fixture
def no_model(monkeypatch):
    calls = []

    def fake_stream(**kwargs):
        calls.append(kwargs)
        raise AssertionError("the model must not be called")

    monkeypatch.setattr("runs.llm.stream_chat", fake_stream)
    return calls


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_the_task_is_sent_before_commit_and_its_claim_waits_for_the_commit(project, monkeypatch, outcome):
    """The worker starts while the run's transaction commits; it must never act on an uncommitted run."""
    sent, claimed = [], {}
    monkeypatch.setattr("runs.tasks.run_execute.apply_async", lambda **kw: sent.append(kw))
    assistant = Assistant.objects.create(project=project, model="gpt-4o-mini")
    thread = Thread.objects.create(project=project)

    def worker():
        try:
            claimed["run"] = lifecycle.run_claim(run_id=sent[0]["args"][0], task_id=sent[0]["task_id"])
            claimed["at"] = time.monotonic()
        finally:
            connection.close()

    with pytest.raises(RuntimeError) if outcome == "rollback" else contextlib.nullcontext():
        with transaction.atomic():
            run = services.run_create(project=project, thread_id=thread.public_id, assistant_id=assistant.public_id)
            assert sent == [{"args": [run.pk], "task_id": run.claimed_by}]  # sent already
            claimer = threading.Thread(target=worker)
            claimer.start()
            time.sleep(0.3)
            assert claimer.is_alive() and not claimed  # the claim waits for this transaction
            ended_at = time.monotonic()
            if outcome == "rollback":
                raise RuntimeError("the request failed after all")
    claimer.join(5)
    assert claimed["at"] >= ended_at
    if outcome == "commit":
        assert claimed["run"].status == Run.Status.IN_PROGRESS and claimed["run"].pk == run.pk
    else:
        assert claimed["run"] is None and not Run.objects.exists()


def test_claim_moves_queued_to_in_progress_once(run):
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    assert claimed.status == Run.Status.IN_PROGRESS and claimed.started_at and claimed.attempts == 1
    # the claim reads the run and its thread back from hand-written SQL: both as the ORM would load them
    assert claimed.thread == run.thread and claimed.thread.public_id == run.thread.public_id
    assert claimed.tools == run.tools and isinstance(claimed.tools, list) and claimed.include == []
    assert claimed.started_at == claimed.heartbeat_at  # what tells the engine there is nothing to resume
    assert lifecycle.run_claim(run_id=run.pk, task_id="another-delivery") is None


def test_redelivery_of_a_finished_run_is_a_noop(run, no_model):
    Run.objects.filter(pk=run.pk).update(status=Run.Status.COMPLETED, completed_at=timezone.now())
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)
    assert no_model == []
    assert Run.objects.get(pk=run.pk).status == Run.Status.COMPLETED
    assert not RunStep.objects.exists() and not Message.objects.filter(run_public_id=run.public_id).exists()


def test_queued_run_is_cancelled_without_calling_the_model(run, no_model):
    response_run = services.run_cancel(run=run)
    assert response_run.status == Run.Status.CANCELLING
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == Run.Status.CANCELLED and stored.cancelled_at
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)  # the queued task arrives later
    assert no_model == [] and Run.objects.get(pk=run.pk).status == Run.Status.CANCELLED


def test_cancel_racing_completion_cancel_first(run):
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    services.run_cancel(run=claimed)
    assert lifecycle.run_finish(run=claimed, status=Run.Status.COMPLETED) is False  # completion loses
    assert lifecycle.run_finish_cancel(run_id=run.pk) is True
    assert Run.objects.get(pk=run.pk).status == Run.Status.CANCELLED
    assert lifecycle.run_finish_cancel(run_id=run.pk) is False


def test_cancel_racing_completion_completion_first(run):
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    assert lifecycle.run_finish(run=claimed, status=Run.Status.COMPLETED) is True
    with pytest.raises(InvalidRequest, match="Cannot cancel run with status 'completed'"):
        services.run_cancel(run=claimed)
    assert Run.objects.get(pk=run.pk).status == Run.Status.COMPLETED


def test_stale_task_cannot_finish_a_recovered_run(run):
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    Run.objects.filter(pk=run.pk).update(claimed_by="the-new-owner")
    assert lifecycle.run_finish(run=claimed, status=Run.Status.COMPLETED) is False


def test_sweeper_expires_paused_runs(run):
    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    lifecycle.run_finish(run=claimed, status=Run.Status.REQUIRES_ACTION, required_action={
        "type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": []}},
        expires_at=timezone.now() - timedelta(seconds=1))
    RunStep.objects.create(project=run.project, run=run, thread=run.thread, type=RunStep.Type.TOOL_CALLS,
                           step_details={"type": "tool_calls", "tool_calls": []})
    assert sweeper.runs_sweep()["expired"] == 1
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == Run.Status.EXPIRED and stored.required_action is None
    assert RunStep.objects.get().status == RunStep.Status.EXPIRED


def test_sweeper_recovers_a_dead_worker_once_then_fails(run, settings, django_capture_on_commit_callbacks,
                                                        monkeypatch):
    sent = []
    monkeypatch.setattr("runs.tasks.run_execute.apply_async", lambda **kw: sent.append(kw))
    lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    long_ago = timezone.now() - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 5)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.runs_sweep()["recovered"] == 1
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == Run.Status.IN_PROGRESS and sent == [{"args": [run.pk], "task_id": stored.claimed_by}]
    assert lifecycle.run_claim(run_id=run.pk, task_id=stored.claimed_by).attempts == 2  # the new task resumes

    Run.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.runs_sweep()["failed"] == 1
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == Run.Status.FAILED and stored.last_error["code"] == "server_error"
    assert "stopped unexpectedly" in stored.last_error["message"]


@pytest.mark.parametrize("when", ["never claimed", "after a tool round"])
def test_sweeper_resends_a_queued_run_whose_task_was_lost_every_stale_window(
        run, settings, django_capture_on_commit_callbacks, monkeypatch, when):
    sent = []
    monkeypatch.setattr("runs.tasks.run_execute.apply_async", lambda **kw: sent.append(kw))
    long_ago = timezone.now() - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 5)
    if when == "never claimed":
        Run.objects.filter(pk=run.pk).update(created_at=long_ago)
    else:  # claimed and beating once, then queued again by submit_tool_outputs, whose task never arrived
        Run.objects.filter(pk=run.pk).update(created_at=long_ago, heartbeat_at=long_ago, attempts=0,
                                              started_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.runs_sweep()["requeued"] == 1
        assert sweeper.runs_sweep()["requeued"] == 0  # not again within the window
    first = Run.objects.get(pk=run.pk)
    assert sent == [{"args": [run.pk], "task_id": first.claimed_by}] and first.claimed_by != run.claimed_by
    assert lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by) is None  # the lost task, if it turns up

    Run.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)  # still nobody took it
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.runs_sweep()["requeued"] == 1
    second = Run.objects.get(pk=run.pk)
    assert len(sent) == 2 and second.claimed_by not in (run.claimed_by, first.claimed_by)
    assert lifecycle.run_claim(run_id=run.pk, task_id=second.claimed_by).status == Run.Status.IN_PROGRESS


def test_resumed_run_discards_the_interrupted_turn(run, monkeypatch):
    from runs import llm

    claimed = lifecycle.run_claim(run_id=run.pk, task_id=run.claimed_by)
    half = engine.Turn(run=claimed, number=1)
    half.add_text("half a rep")  # the worker died here: an in-progress step and message remain
    monkeypatch.setattr("runs.llm.stream_chat", lambda **kw: iter([llm.TextDelta("whole"), llm.Finish("stop", {
        "prompt_tokens": 3, "completion_tokens": 1})]))
    monkeypatch.setattr("runs.prompt.llm.context_window", lambda model: None)
    engine.run_execute(run_id=run.pk, task_id=run.claimed_by)  # redelivery under the same task id
    assert Run.objects.get(pk=run.pk).status == Run.Status.COMPLETED
    messages = Message.objects.filter(run_public_id=run.public_id)
    assert [m.content[0]["text"]["value"] for m in messages] == ["whole"]
    assert RunStep.objects.filter(run=run).count() == 1


def test_one_active_run_per_thread_is_enforced_by_the_database(run):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(project=run.project, thread=run.thread, assistant_public_id="asst_x", model="m")
