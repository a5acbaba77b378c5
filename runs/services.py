"""Writes for runs: create, modify, cancel, submit tool outputs, and the status transitions the engine
and the sweeper make. Every transition is a compare-and-set on ``status``, so racing writers (a cancel
and a completion, a redelivered task and the sweeper) end in exactly one state."""

from __future__ import annotations

import logging
import uuid
import zlib
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from assistants.models import Assistant, Message, Project, Thread
from assistants.selectors import thread_for_run
from assistants_project import rows
from assistants_project.api.errors import InvalidRequest, NotFoundError, OpenAIError
from runs import events, llm
from runs.models import Run, RunStep
from runs.serializers import run_out, step_out

logger = logging.getLogger(__name__)


def _enqueue(run: Run, *, task_id: str | None = None) -> None:
    """Enqueue after commit, under a fresh task id that the run records as its owner."""
    from runs.tasks import run_execute

    if task_id is None:
        task_id = str(uuid.uuid4())
        Run.objects.filter(pk=run.pk).update(claimed_by=task_id)
        run.claimed_by = task_id

    def send() -> None:
        try:
            run_execute.apply_async(args=[run.pk], task_id=task_id)
        except Exception:  # the broker is down: what was committed stands; the sweeper sends silent queued runs
            logger.exception("could not enqueue run %s; the sweeper will send it again", run.pk)

    transaction.on_commit(send)


def _active_run_error(thread: Thread, run_id: str) -> InvalidRequest:
    return InvalidRequest(f"Thread {thread.public_id} already has an active run {run_id}.")


def run_create(*, project: Project, thread_id: str, assistant_id: str, stream: bool | None = None,
               additional_messages: list[dict] | None = None, include: list[str] | None = None,
               lead_events: list[tuple[str, dict]] = (), **options) -> Run:
    """Write the run as ``queued`` (copying the effective model, instructions and tools) and enqueue it."""
    from assistants.services import message_create

    with transaction.atomic():
        # The thread's row lock serialises creators (a run, a message) on the thread.
        thread, assistant = thread_for_run(project=project, thread_id=thread_id, assistant_id=assistant_id)
        if thread.active_run_id is not None:
            raise _active_run_error(thread, thread.active_run_id)
        if assistant is None:
            raise NotFoundError(f"No assistant found with id '{assistant_id}'.")
        fields = _effective_options(assistant, options)
        for index, message in enumerate(additional_messages or []):
            try:
                message_create(thread=thread, **message)
            except OpenAIError as exc:
                exc.param = f"additional_messages[{index}].{exc.param}" if exc.param else "additional_messages"
                raise
        run_pk, task_id = _send_early()
        # The thread's row lock serialises creators, but the active-run subquery above may read the snapshot from
        # before the lock wait; the database's one-active-run constraint is the backstop, answered as OpenAI does.
        try:
            with transaction.atomic():
                run = Run.objects.create(
                    pk=run_pk, project=project, thread=thread, assistant=assistant,
                    assistant_public_id=assistant.public_id,
                    expires_at=timezone.now() + timedelta(seconds=settings.RUN_EXPIRES_SECONDS),
                    include=list(include or []), claimed_by=task_id, **fields)
        except IntegrityError as exc:
            if "one_active_run_per_thread" not in str(exc):
                raise
            active = Run.objects.filter(thread=thread, status__in=Run.ACTIVE).values_list("public_id", flat=True)
            raise _active_run_error(thread, active.first() or "") from exc
        body = run_out(run)
        # Before the commit, so before the worker can claim the run: these precede whatever it emits.
        events.emit_many(run.public_id, [*lead_events, ("thread.run.created", body), ("thread.run.queued", body)])
    return run


# Advisory-lock namespace: "a transaction is creating the run this task is for" (the second key is the task id's
# CRC32, an int4: a collision only makes a claim wait for another run's creation to commit).
RUN_CREATION_LOCK = 0x52554E


def _creation_lock_keys(task_id: str) -> list[int]:
    return [RUN_CREATION_LOCK, zlib.crc32(task_id.encode()) & 0x7FFFFFFF]


def _send_early() -> tuple[int, str]:
    """Draw the new run's id and send its task at once, *before* the row is even written, so the worker gets going
    while this transaction finishes (the run's first token is that much sooner). The task's claim first waits
    for this transaction, which holds the task's creation lock to its end; on a rollback it finds no run."""
    from runs.tasks import run_execute

    task_id = str(uuid.uuid4())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{Run._meta.db_table}', 'id')), "
                       "pg_advisory_xact_lock(%s, %s)", _creation_lock_keys(task_id))
        run_pk = cursor.fetchone()[0]
    try:
        run_execute.apply_async(args=[run_pk], task_id=task_id)
    except Exception as exc:  # the broker is down: a prompt 503, and the rollback leaves nothing half-written
        logger.exception("could not enqueue run %s", run_pk)
        raise BrokerUnavailable("The server could not queue the run (its task broker is unavailable). "
                                "Nothing was created; try again.") from exc
    return run_pk, task_id


class BrokerUnavailable(OpenAIError):
    status_code = 503
    error_type = "server_error"


def _effective_options(assistant: Assistant, options: dict) -> dict:
    model = options.get("model") or assistant.model
    problem = llm.check_model(model)
    if problem:
        raise InvalidRequest(f"The model '{model}' cannot be routed: {problem}", param="model",
                             code="model_not_found")
    tools = options.get("tools")
    pick = options.get  # explicit nulls fall back to the assistant, as on OpenAI
    return {
        "model": model,
        "instructions": pick("instructions") if pick("instructions") is not None else (assistant.instructions or ""),
        "additional_instructions": pick("additional_instructions"),
        "tools": tools if tools is not None else assistant.tools,
        "metadata": pick("metadata") or {},
        "temperature": pick("temperature") if pick("temperature") is not None else assistant.temperature,
        "top_p": pick("top_p") if pick("top_p") is not None else assistant.top_p,
        "max_prompt_tokens": pick("max_prompt_tokens"),
        "max_completion_tokens": pick("max_completion_tokens"),
        "truncation_strategy": dict(pick("truncation_strategy")) if pick("truncation_strategy") else None,
        "tool_choice": pick("tool_choice"),
        "parallel_tool_calls": True if pick("parallel_tool_calls") is None else pick("parallel_tool_calls"),
        "response_format": pick("response_format") or assistant.response_format,
        "reasoning_effort": pick("reasoning_effort") or assistant.reasoning_effort,
    }


def thread_and_run_create(*, project: Project, thread: dict | None, tool_resources: dict | None = None,
                          **run_options) -> tuple[Thread, Run]:
    """One transaction: the thread (with its messages), then its run; the stream opens with thread.created."""
    from assistants.serializers import thread_out
    from assistants.services import thread_create

    thread_fields = dict(thread or {})
    if tool_resources is not None and thread_fields.get("tool_resources") is None:
        thread_fields["tool_resources"] = tool_resources
    with transaction.atomic():
        new_thread = thread_create(project=project, **thread_fields)
        run = run_create(project=project, thread_id=new_thread.public_id,
                         lead_events=[("thread.created", thread_out(new_thread))], **run_options)
    return new_thread, run


def run_modify(*, run: Run, metadata: dict | None) -> Run:
    run.metadata = metadata or {}
    run.save(update_fields=["metadata"])
    return run


def run_cancel(*, run: Run) -> Run:
    """``cancelling`` at once. A queued or paused run has no worker on it, so it ends ``cancelled`` right
    here; a running one is flagged and its worker ends it within one streamed chunk."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("thread").get(pk=run.pk)
        if run.status not in Run.ACTIVE or run.status == Run.Status.CANCELLING:
            raise InvalidRequest(f"Cannot cancel run with status '{run.status}'.")
        idle = run.status in (Run.Status.QUEUED, Run.Status.REQUIRES_ACTION)
        run.status = Run.Status.CANCELLING
        run.save(update_fields=["status"])
        snapshot = run_out(run)
        events.emit_on_commit(run.public_id, "thread.run.cancelling", snapshot)
        transaction.on_commit(lambda: events.request_cancel(run.public_id))
    if idle:
        run_finish_cancel(run_id=run.pk)
    run.status = Run.Status.CANCELLING
    return run


def run_finish_cancel(*, run_id: int) -> bool:
    """CANCELLING → CANCELLED, closing open steps and messages. False when someone else finished it."""
    with transaction.atomic():
        now = timezone.now()
        won = Run.objects.filter(pk=run_id, status=Run.Status.CANCELLING).update(
            status=Run.Status.CANCELLED, cancelled_at=now, required_action=None, expires_at=None)
        if not won:
            return False
        run = Run.objects.select_related("thread").get(pk=run_id)
        _close_open_items(run, step_status=RunStep.Status.CANCELLED, message_reason="run_cancelled", now=now)
        events.emit_on_commit(run.public_id, "thread.run.cancelled", run_out(run))
    return True


def _close_open_items(run: Run, *, step_status: str, message_reason: str, now, last_error: dict | None = None) -> None:
    """Open steps and messages of a run that ends early get the matching terminal state (and events)."""
    from assistants.serializers import message_out

    stamp = {RunStep.Status.CANCELLED: "cancelled_at", RunStep.Status.FAILED: "failed_at",
             RunStep.Status.EXPIRED: "expired_at"}[step_status]
    for message in Message.objects.filter(thread=run.thread, run_public_id=run.public_id,
                                          status=Message.Status.IN_PROGRESS):
        message.status = Message.Status.INCOMPLETE
        message.incomplete_at = now
        message.incomplete_details = {"reason": message_reason}
        # Streamed text lives in the worker until the message closes; a stream consumer that saw deltas
        # needs a text part at their index.
        message.content = message.content or [{"type": "text", "text": {"value": "", "annotations": []}}]
        message.save(update_fields=["status", "incomplete_at", "incomplete_details", "content"])
        events.emit_on_commit(run.public_id, "thread.message.incomplete", message_out(message))
    for step in RunStep.objects.filter(run=run, status=RunStep.Status.IN_PROGRESS).select_related("run", "thread"):
        step.status = step_status
        setattr(step, stamp, now)
        step.last_error = _step_error(last_error) if step_status == RunStep.Status.FAILED else None
        step.save(update_fields=["status", stamp, "last_error"])
        events.emit_on_commit(run.public_id, f"thread.run.step.{step_status}", step_out(step))


def _step_error(error: dict | None) -> dict | None:
    """A step's last_error allows only server_error and rate_limit_exceeded."""
    if error is None:
        return None
    code = error["code"] if error["code"] in ("server_error", "rate_limit_exceeded") else "server_error"
    return {"code": code, "message": error["message"]}


def run_submit_tool_outputs(*, run: Run, tool_outputs: list[dict]) -> tuple[Run, str]:
    """Record every pending call's output, complete the tool_calls step, re-queue the run.
    Returns the run and the id of the last stream event before this submission (a stream reads after it)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("thread").get(pk=run.pk)
        if run.status != Run.Status.REQUIRES_ACTION:
            raise InvalidRequest(
                f"Runs in status \"{run.status}\" do not accept tool outputs.", param="tool_outputs")
        pending = [c["id"] for c in run.required_action["submit_tool_outputs"]["tool_calls"]]
        outputs: dict[str, str] = {}
        for index, item in enumerate(tool_outputs):
            call_id = item["tool_call_id"]
            if call_id not in pending:
                raise InvalidRequest(f"No tool call found with id '{call_id}' in this run's required action.",
                                     param=f"tool_outputs[{index}].tool_call_id")
            if call_id in outputs:
                raise InvalidRequest(f"Duplicate tool output for tool call '{call_id}'.",
                                     param=f"tool_outputs[{index}].tool_call_id")
            outputs[call_id] = item["output"]
        missing = [call_id for call_id in pending if call_id not in outputs]
        if missing:
            raise InvalidRequest(f"Expected tool outputs for call_ids {pending}, got {list(outputs)}: missing "
                                 f"{missing}.", param="tool_outputs")
        after = events.last_event_id(run.public_id)
        now = timezone.now()
        for step in RunStep.objects.filter(run=run, type=RunStep.Type.TOOL_CALLS,
                                           status=RunStep.Status.IN_PROGRESS).select_related("run", "thread"):
            for call in step.step_details["tool_calls"]:
                if call["type"] == "function" and call["id"] in outputs:
                    call["function"]["output"] = outputs[call["id"]]
            step.status, step.completed_at = RunStep.Status.COMPLETED, now
            step.save(update_fields=["step_details", "status", "completed_at"])
            events.emit_on_commit(run.public_id, "thread.run.step.completed", step_out(step))
        # attempts counts the claims of one stretch of work: the recovery limit applies afresh to each
        run.status, run.required_action, run.attempts = Run.Status.QUEUED, None, 0
        run.save(update_fields=["status", "required_action", "attempts"])
        events.emit_on_commit(run.public_id, "thread.run.queued", run_out(run))
        _enqueue(run)
    return run, after


# --- transitions made by the engine and the sweeper ------------------------------------------------------


def run_claim(*, run_id: int, task_id: str) -> Run | None:
    """The worker's entry: QUEUED → IN_PROGRESS for the task that owns the run. A redelivery of the owning
    task resumes an IN_PROGRESS run; any other delivery (duplicate, stale, finished run) is a no-op."""
    run = _claim_queued(run_id=run_id, task_id=task_id)
    if run is not None:  # the common case
        events.emit(run.public_id, "thread.run.in_progress", run_out(run))
        return run
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.select_for_update(of=("self",)).select_related("thread").filter(pk=run_id).first()
        if run is None or run.status in Run.TERMINAL or run.status == Run.Status.REQUIRES_ACTION:
            return None
        if run.claimed_by not in (None, task_id):
            return None
        if run.status == Run.Status.CANCELLING:
            transaction.on_commit(lambda: run_finish_cancel(run_id=run_id))
            return None
        run.claimed_by, run.heartbeat_at, run.attempts = task_id, now, run.attempts + 1
        fields = ["claimed_by", "heartbeat_at", "attempts"]
        if run.status == Run.Status.QUEUED:
            run.status, run.started_at = Run.Status.IN_PROGRESS, run.started_at or now
            fields += ["status", "started_at"]
            events.emit_on_commit(run.public_id, "thread.run.in_progress", run_out(run))
        run.save(update_fields=fields)
        return run


def _claim_queued(*, run_id: int, task_id: str) -> Run | None:
    """A queued run taken by the task that owns it, with its thread, in one round trip: first wait until no
    transaction is creating the run (a task is sent before its run's creation commits), then the UPDATE, whose
    statement sees that commit (read committed: each statement takes a new snapshot). None: not such a run."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(  # two statements in one message (Django's client-side binding cursor allows it)
            "SELECT pg_advisory_xact_lock_shared(%s, %s); "
            f"WITH r AS (UPDATE {Run._meta.db_table} SET status = %s, started_at = COALESCE(started_at, %s), "
            "heartbeat_at = %s, attempts = attempts + 1 WHERE id = %s AND status = %s AND claimed_by = %s "
            "RETURNING *) "
            f"SELECT {rows.columns(Run, 'r')}, {rows.columns(Thread, 't')} "
            f"FROM r JOIN {Thread._meta.db_table} t ON t.id = r.thread_id",
            [*_creation_lock_keys(task_id), Run.Status.IN_PROGRESS, now, now, run_id, Run.Status.QUEUED, task_id])
        cursor.nextset()
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(Run._meta.concrete_fields)
    run = rows.from_row(Run, row[:split])
    run.thread = rows.from_row(Thread, row[split:])
    return run


def run_finish(*, run: Run, status: str, now=None, **fields) -> bool:
    """IN_PROGRESS → a terminal state (or requires_action). False if the run left IN_PROGRESS meanwhile
    (cancelled, expired, recovered): the caller then drops its result."""
    now = now or timezone.now()
    stamp = {Run.Status.COMPLETED: "completed_at", Run.Status.FAILED: "failed_at",
             Run.Status.INCOMPLETE: None, Run.Status.REQUIRES_ACTION: None}[status]
    if stamp:
        fields[stamp] = now
    if status != Run.Status.REQUIRES_ACTION:
        fields.setdefault("expires_at", None)
    with transaction.atomic():
        won = Run.objects.filter(pk=run.pk, status=Run.Status.IN_PROGRESS, claimed_by=run.claimed_by).update(
            status=status, **fields)
        if not won:
            return False
        for name, value in fields.items():
            setattr(run, name, value)
        run.status = status
        if status == Run.Status.FAILED:
            _close_open_items(run, step_status=RunStep.Status.FAILED, message_reason="run_failed", now=now,
                              last_error=fields.get("last_error"))
        events.emit_on_commit(run.public_id, f"thread.run.{status}", run_out(run))
    return True


def run_fail(*, run_id: int, code: str, message: str) -> bool:
    """Fail an active run from outside the engine (task failure hook, sweeper)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("thread").filter(pk=run_id).first()
        if run is None or run.status in Run.TERMINAL:
            return False
        if run.status == Run.Status.CANCELLING:
            transaction.on_commit(lambda: run_finish_cancel(run_id=run_id))
            return False
        now = timezone.now()
        run.status, run.failed_at, run.expires_at = Run.Status.FAILED, now, None
        run.last_error, run.required_action = {"code": code, "message": message}, None
        run.save(update_fields=["status", "failed_at", "expires_at", "last_error", "required_action"])
        _close_open_items(run, step_status=RunStep.Status.FAILED, message_reason="run_failed", now=now,
                          last_error=run.last_error)
        events.emit_on_commit(run.public_id, "thread.run.failed", run_out(run))
    return True


def run_expire(*, run_id: int) -> bool:
    with transaction.atomic():
        now = timezone.now()
        # requires_action only: a run that got its tool outputs is queued again, and must not expire then
        won = Run.objects.filter(pk=run_id, status=Run.Status.REQUIRES_ACTION, expires_at__lt=now).update(
            status=Run.Status.EXPIRED, required_action=None)
        if not won:
            return False
        run = Run.objects.select_related("thread").get(pk=run_id)
        _close_open_items(run, step_status=RunStep.Status.EXPIRED, message_reason="run_expired", now=now)
        events.emit_on_commit(run.public_id, "thread.run.expired", run_out(run))
    return True


def runs_sweep() -> dict:
    """The safety net (beat): expire paused runs past ``expires_at``; recover runs whose worker died
    (re-enqueued once, then failed); finish cancellations nobody is working on; re-enqueue lost
    queued runs."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS)

    def ids(*conditions, **filters) -> list[int]:
        return list(Run.objects.filter(*conditions, **filters).values_list("pk", flat=True))

    silent = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, created_at__lt=stale)
    counts = {"expired": 0, "recovered": 0, "failed": 0, "cancelled": 0, "requeued": 0}
    for run_id in ids(status=Run.Status.REQUIRES_ACTION, expires_at__lt=now):
        counts["expired"] += run_expire(run_id=run_id)
    for run_id in ids(silent, status=Run.Status.CANCELLING):
        counts["cancelled"] += run_finish_cancel(run_id=run_id)
    for run_id in ids(status=Run.Status.IN_PROGRESS, heartbeat_at__lt=stale):
        outcome = run_recover(run_id=run_id, stale_before=stale)
        if outcome:
            counts[outcome] += 1
    # Queued and silent (never claimed, or back in the queue after a tool round): its task may be lost. A new task
    # takes over the run (the old one, if it turns up, is then a no-op), once per stale window while it waits.
    for run_id in ids(silent, status=Run.Status.QUEUED):
        with transaction.atomic():
            run = Run.objects.select_for_update().filter(silent, pk=run_id, status=Run.Status.QUEUED).first()
            if run is not None:
                run.heartbeat_at = now
                run.save(update_fields=["heartbeat_at"])
                _enqueue(run)
                counts["requeued"] += 1
    return counts


RECOVERY_ATTEMPTS = 2


def run_recover(*, run_id: int, stale_before) -> str | None:
    """A run whose worker stopped heartbeating: hand it to a new task once, or fail it."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id, status=Run.Status.IN_PROGRESS,
                                                     heartbeat_at__lt=stale_before).first()
        if run is None:
            return None
        if run.attempts >= RECOVERY_ATTEMPTS:
            transaction.on_commit(lambda: run_fail(
                run_id=run_id, code="server_error",
                message="The worker executing this run stopped unexpectedly, and so did its retry."))
            return "failed"
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["heartbeat_at"])
        logger.warning("run %s lost its worker; re-enqueueing", run.public_id)
        _enqueue(run)
        return "recovered"
