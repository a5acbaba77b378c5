"""The run lifecycle: which status a run, step or message may enter from which, the timestamp each entry stamps,
and the writes that move a run through its statuses on the worker's side (claim, finish, fail, expire, the end of
a cancellation). Every transition is a compare-and-set on ``status``, so racing writers (a cancel and a
completion, a redelivered task and the sweeper) end in exactly one state.

Sending a run to a worker is the one thing this layer needs from a higher one: ``runs.tasks`` registers the
sender (``register_sender``), so nothing here imports the engine."""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from assistants.models import Message, Thread
from assistants_project import logs, metrics, rows
from runs import event_model as ev
from runs import events, prompt
from runs.models import Run, RunStep
from tenancy import credentials as provider_credentials
from tenancy import limits
from tenancy.selectors import project_name

logger = logging.getLogger(__name__)

S = Run.Status


@dataclass(frozen=True)
class Entry:
    sources: tuple[str, ...]  # the statuses the run may enter this one from
    stamp: str | None = None  # the timestamp entering it sets
    clears: tuple[str, ...] = ()  # fields entering it sets to None


# A run that ends forgets the provider credentials its request brought (issue 16).
_ENDED = ("sealed_credentials",)
# Keyed by status (a Status is a str: the rows' plain strings find their entries).
RUN: dict[str, Entry] = {
    S.QUEUED: Entry((S.REQUIRES_ACTION,), clears=("required_action",)),  # tool outputs in (a new run starts here)
    S.IN_PROGRESS: Entry((S.QUEUED,), stamp="started_at"),  # kept from the first start on later claims
    S.REQUIRES_ACTION: Entry((S.IN_PROGRESS,)),
    S.CANCELLING: Entry((S.QUEUED, S.IN_PROGRESS, S.REQUIRES_ACTION)),
    S.CANCELLED: Entry((S.CANCELLING,), stamp="cancelled_at", clears=("required_action", "expires_at", *_ENDED)),
    S.COMPLETED: Entry((S.IN_PROGRESS,), stamp="completed_at", clears=("expires_at", *_ENDED)),
    S.INCOMPLETE: Entry((S.IN_PROGRESS,), clears=("expires_at", *_ENDED)),
    S.FAILED: Entry((S.QUEUED, S.IN_PROGRESS, S.REQUIRES_ACTION), stamp="failed_at",
                    clears=("required_action", "expires_at", *_ENDED)),
    # only a paused run expires: one that got its tool outputs is queued again and must not expire then
    S.EXPIRED: Entry((S.REQUIRES_ACTION,), clears=("required_action", *_ENDED)),
}
STEP_STAMPS: dict[str, str] = {RunStep.Status.COMPLETED: "completed_at", RunStep.Status.CANCELLED: "cancelled_at",
                               RunStep.Status.FAILED: "failed_at", RunStep.Status.EXPIRED: "expired_at"}
MESSAGE_STAMPS: dict[str, str] = {Message.Status.COMPLETED: "completed_at", Message.Status.INCOMPLETE: "incomplete_at"}
# How a run that ends early leaves its open steps and messages.
ENDS_EARLY: dict[str, tuple[RunStep.Status, str]] = {
    S.CANCELLED: (RunStep.Status.CANCELLED, "run_cancelled"),
    S.FAILED: (RunStep.Status.FAILED, "run_failed"),
    S.EXPIRED: (RunStep.Status.EXPIRED, "run_expired")}


def entering(status: str, now) -> dict:
    """The fields a run's row gets as it enters ``status`` (besides the status itself)."""
    entry = RUN[status]
    fields = dict.fromkeys(entry.clears)
    if entry.stamp:
        fields[entry.stamp] = now
    return fields


def step_enter(step: RunStep, status: str, now) -> list[str]:
    """Set a step's status and its timestamp; returns the fields to save."""
    stamp = STEP_STAMPS[status]
    step.status = status
    setattr(step, stamp, now)
    return ["status", stamp]


def message_enter(message: Message, status: str, now, *, reason: str | None = None) -> list[str]:
    """Set a message's final status, its timestamp and (incomplete) its reason; returns the fields to save."""
    message.status = status
    setattr(message, MESSAGE_STAMPS[status], now)
    message.incomplete_details = {"reason": reason} if status == Message.Status.INCOMPLETE else None
    return ["status", MESSAGE_STAMPS[status], "incomplete_details"]


# --- sending a run to a worker ----------------------------------------------------------------------------

_sender: Callable[[int, str], None] | None = None


def register_sender(send: Callable[[int, str], None]) -> None:
    """``send(run_pk, task_id)`` hands a run to a worker (runs.tasks registers Celery's)."""
    global _sender
    _sender = send


def send(run_pk: int, task_id: str) -> None:
    if _sender is None:
        raise RuntimeError("no run sender registered (runs.tasks registers it; is the runs app installed?)")
    _sender(run_pk, task_id)


def enqueue(run: Run, *, task_id: str | None = None) -> None:
    """Send after commit, under a fresh task id that the run records as its owner."""
    if task_id is None:
        task_id = str(uuid.uuid4())
        Run.objects.filter(pk=run.pk).update(claimed_by=task_id)
        run.claimed_by = task_id

    def send_or_leave_to_sweeper() -> None:
        try:
            send(run.pk, task_id)
        except Exception:  # the broker is down: what was committed stands; the sweeper sends silent queued runs
            logger.exception("could not enqueue run %s; the sweeper will send it again", run.pk)

    transaction.on_commit(send_or_leave_to_sweeper)


# Advisory-lock namespace: "a transaction is creating the run this task is for" (the second key is the task id's
# CRC32, an int4: a collision only makes a claim wait for another run's creation to commit).
RUN_CREATION_LOCK = 0x52554E


def creation_lock_keys(task_id: str) -> list[int]:
    return [RUN_CREATION_LOCK, zlib.crc32(task_id.encode()) & 0x7FFFFFFF]


# --- the worker's transitions -------------------------------------------------------------------------------


def run_claim(*, run_id: int, task_id: str) -> Run | None:
    """The worker's entry: QUEUED → IN_PROGRESS for the task that owns the run. A redelivery of the owning
    task resumes an IN_PROGRESS run; any other delivery (duplicate, stale, finished run) is a no-op."""
    run = _claim_queued(run_id=run_id, task_id=task_id)
    if run is not None:  # the common case
        _claimed(run)
        events.publish(run.public_id, ev.RunStatus(run))
        return run
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.select_for_update(of=("self",)).select_related("thread").filter(pk=run_id).first()
        if run is None or run.status in Run.TERMINAL or run.status == S.REQUIRES_ACTION:
            return None
        if run.claimed_by not in (None, task_id):
            return None
        if run.status == S.CANCELLING:
            transaction.on_commit(lambda: run_finish_cancel(run_id=run_id))
            return None
        run.claimed_by, run.heartbeat_at, run.attempts = task_id, now, run.attempts + 1
        _claimed(run)
        fields = ["claimed_by", "heartbeat_at", "attempts"]
        if run.status in RUN[S.IN_PROGRESS].sources:
            run.status, run.started_at = S.IN_PROGRESS, run.started_at or now
            fields += ["status", "started_at"]
            events.publish_on_commit(run.public_id, ev.RunStatus(run))
        run.save(update_fields=fields)
        return run


def _claim_queued(*, run_id: int, task_id: str) -> Run | None:
    """A queued run taken by the task that owns it, with its thread, its project's stored provider credentials
    (``claimed_credentials``) and the thread's messages for its prompt (``prompt.keep_history``), in one round
    trip: first wait until no transaction is creating the run (a task is sent before its run's creation commits),
    then the UPDATE and the messages' SELECT, whose statements see that commit (read committed: each statement
    takes a new snapshot). None: not such a run."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(  # three statements in one message (Django's client-side binding cursor allows it)
            "SELECT pg_advisory_xact_lock_shared(%s, %s); "
            f"WITH r AS (UPDATE {Run._meta.db_table} SET status = %s, started_at = COALESCE(started_at, %s), "
            "heartbeat_at = %s, attempts = attempts + 1 WHERE id = %s AND status = %s AND claimed_by = %s "
            "RETURNING *) "
            f"SELECT {rows.columns(Run, 'r')}, {rows.columns(Thread, 't')}, "
            f"{provider_credentials.prefetch_sql('r.project_id')} "
            f"FROM r JOIN {Thread._meta.db_table} t ON t.id = r.thread_id; {prompt.history_sql()}",
            [*creation_lock_keys(task_id), S.IN_PROGRESS, now, now, run_id, S.QUEUED, task_id, run_id])
        cursor.nextset()
        row = cursor.fetchone()
        cursor.nextset()
        history = cursor.fetchall()
    if row is None:
        return None
    split, end = len(Run._meta.concrete_fields), len(Run._meta.concrete_fields) + len(Thread._meta.concrete_fields)
    run = rows.from_row(Run, row[:split])
    run.thread = rows.from_row(Thread, row[split:end])
    setattr(run, _CLAIMED_CREDENTIALS, provider_credentials.prefetched_from(row[end]))
    prompt.keep_history(run, history)
    return run


_CLAIMED_CREDENTIALS = "_claimed_credentials"


def claimed_credentials(run: Run) -> dict[str, str] | None:
    """The project's stored provider credentials (provider → sealed) as the claim read them, in its own round trip
    (for ``tenancy.credentials.scope(prefetched=…)``); None: this claim did not read them."""
    return getattr(run, _CLAIMED_CREDENTIALS, None)


def run_finish(*, run: Run, status: str, now=None, **fields) -> bool:
    """The engine's own IN_PROGRESS run → a terminal state (or requires_action). False if the run left
    IN_PROGRESS meanwhile (cancelled, expired, recovered): the caller then drops its result."""
    now = now or timezone.now()
    for name, value in entering(status, now).items():
        fields.setdefault(name, value)
    with transaction.atomic(savepoint=False):  # in the engine's transaction (its last turn), no savepoint
        won = Run.objects.filter(pk=run.pk, status=S.IN_PROGRESS, claimed_by=run.claimed_by).update(
            status=status, **fields)
        if not won:
            return False
        for name, value in fields.items():
            setattr(run, name, value)
        run.status = status
        if status in ENDS_EARLY:
            close_open_items(run, now=now, last_error=fields.get("last_error"))
        _entered(run, now)
    return True


def run_finish_cancel(*, run_id: int) -> bool:
    """CANCELLING → CANCELLED, closing open steps and messages. False when someone else finished it."""
    with transaction.atomic():
        now = timezone.now()
        won = Run.objects.filter(pk=run_id, status__in=RUN[S.CANCELLED].sources).update(
            status=S.CANCELLED, **entering(S.CANCELLED, now))
        if not won:
            return False
        run = Run.objects.select_related("thread").get(pk=run_id)
        close_open_items(run, now=now)
        _entered(run, now)
    return True


def run_fail(*, run_id: int, code: str, message: str) -> bool:
    """Fail an active run from outside the engine (task failure hook, sweeper)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("thread").filter(pk=run_id).first()
        if run is None or run.status in Run.TERMINAL:
            return False
        if run.status == S.CANCELLING:
            transaction.on_commit(lambda: run_finish_cancel(run_id=run_id))
            return False
        now = timezone.now()
        fields = {**entering(S.FAILED, now), "last_error": {"code": code, "message": message}}
        for name, value in fields.items():
            setattr(run, name, value)
        run.status = S.FAILED
        run.save(update_fields=["status", *fields])
        close_open_items(run, now=now, last_error=run.last_error)
        _entered(run, now)
    return True


def run_expire(*, run_id: int) -> bool:
    with transaction.atomic():
        now = timezone.now()
        won = Run.objects.filter(pk=run_id, status__in=RUN[S.EXPIRED].sources, expires_at__lt=now).update(
            status=S.EXPIRED, **entering(S.EXPIRED, now))
        if not won:
            return False
        run = Run.objects.select_related("thread").get(pk=run_id)
        close_open_items(run, now=now)
        _entered(run, now)
    return True


def _claimed(run: Run) -> None:
    """A worker took the run: its log lines and its time to first token are about this run from here on."""
    logs.bind(run_id=run.public_id, thread_id=run.thread.public_id, project=project_name(run.project_id))
    metrics.run_started(run)


def _entered(run: Run, now) -> None:
    """The one place a worker-side transition lands (finish, fail, cancel, expire): the event, and once the status
    is committed, the metrics, the project's token count and the log line."""
    events.publish_on_commit(run.public_id, ev.RunStatus(run))
    transaction.on_commit(lambda: _observe(run, now))


def _observe(run: Run, now) -> None:
    project = project_name(run.project_id)
    metrics.run_entered(run, run.status, now, project=project or "")
    usage = run.usage or {}
    if run.status in Run.TERMINAL and usage.get("total_tokens"):
        limits.tokens_add(run.project_id, usage["total_tokens"])
    with logs.bound(run_id=run.public_id, project=project):
        logger.info("run %s", run.status, extra={"status": run.status, "model": run.model})


def close_open_items(run: Run, *, now, last_error: dict | None = None) -> None:
    """Open steps and messages of a run that ends early (``run.status``) get the matching terminal state (and
    events)."""
    step_status, message_reason = ENDS_EARLY[run.status]
    for message in Message.objects.filter(thread=run.thread, run_public_id=run.public_id,
                                          status=Message.Status.IN_PROGRESS):
        fields = message_enter(message, Message.Status.INCOMPLETE, now, reason=message_reason)
        # Streamed text lives in the worker until the message closes; a stream consumer that saw deltas
        # needs a text part at their index.
        message.content = message.content or [{"type": "text", "text": {"value": "", "annotations": []}}]
        message.save(update_fields=[*fields, "content"])
        events.publish_on_commit(run.public_id, ev.MessageStatus(message))
    for step in RunStep.objects.filter(run=run, status=RunStep.Status.IN_PROGRESS).select_related("run", "thread"):
        fields = step_enter(step, step_status, now)
        step.last_error = _step_error(last_error) if step_status == RunStep.Status.FAILED else None
        step.save(update_fields=[*fields, "last_error"])
        events.publish_on_commit(run.public_id, ev.StepStatus(step))


def _step_error(error: dict | None) -> dict | None:
    """A step's last_error allows only server_error and rate_limit_exceeded."""
    if error is None:
        return None
    code = error["code"] if error["code"] in ("server_error", "rate_limit_exceeded") else "server_error"
    return {"code": code, "message": error["message"]}
