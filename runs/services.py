"""The web's writes for runs: create (with its thread), modify, cancel, submit tool outputs. The statuses they
move a run through, and the worker's and the sweeper's transitions, are in ``runs.lifecycle``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from assistants.models import Assistant, Thread
from assistants.services import message_create, thread_create
from assistants_project.api.errors import InvalidRequest, NotFoundError, OpenAIError
from runs import event_model as ev
from runs import events, lifecycle, llm, selectors, tools
from runs.lifecycle import creation_lock_keys, run_finish_cancel
from runs.models import Run, RunStep
from runs.selectors import thread_for_run
from tenancy import credentials as provider_credentials
from tenancy import limits
from tenancy.models import Project

logger = logging.getLogger(__name__)


def _active_run_error(thread_id: str, run_id: str) -> InvalidRequest:
    return InvalidRequest(f"Thread {thread_id} already has an active run {run_id}.")


def run_create(*, project: Project, thread_id: str, assistant_id: str, stream: bool | None = None,
               additional_messages: list[dict] | None = None, include: list[str] | None = None,
               lead_events: tuple = (), savepoint: bool = True, **options) -> Run:
    """Write the run as ``queued`` (copying the effective model, instructions and tools) and enqueue it.
    ``lead_events`` (``runs.event_model``) open its stream. ``savepoint=False``: as ``thread_create``'s."""
    limits.check_run_start(project, active_runs=lambda: selectors.active_run_count(project=project))
    try:
        with transaction.atomic(savepoint=savepoint):
            task_id = str(uuid.uuid4())
            # The thread's row lock serialises creators (a run, a message) on the thread.
            thread, assistant, run_pk = thread_for_run(project=project, thread_id=thread_id, assistant_id=assistant_id,
                                                       creation_lock=creation_lock_keys(task_id))
            if thread.active_run_id is not None:
                raise _active_run_error(thread_id, thread.active_run_id)
            if assistant is None:
                raise NotFoundError(f"No assistant found with id '{assistant_id}'.")
            fields = _effective_options(assistant, options)
            for index, message in enumerate(additional_messages or []):
                try:
                    message_create(thread=thread, **message)
                except OpenAIError as exc:
                    exc.param = f"additional_messages[{index}].{exc.param}" if exc.param else "additional_messages"
                    raise
            _send_early(run_pk, task_id)
            run = Run.objects.create(
                pk=run_pk, project=project, thread=thread, assistant=assistant,
                assistant_public_id=assistant.public_id,
                expires_at=timezone.now() + timedelta(seconds=settings.RUN_EXPIRES_SECONDS),
                include=list(include or []), claimed_by=task_id,
                sealed_credentials=provider_credentials.sealed_request(), **fields)
            # Before the commit, so before the worker can claim the run: these precede whatever it emits.
            events.publish(run.public_id, *lead_events, ev.RunCreated(run), ev.RunStatus(run))
    except IntegrityError as exc:
        # The thread's row lock serialises creators, but the active-run subquery above may read the snapshot from
        # before the lock wait; the database's one-active-run constraint is the backstop, answered as OpenAI does.
        # Caught here, once the transaction has rolled back (no savepoint around the insert: two round trips
        # fewer on the way to a stream's first token), so the run that won can be read and named.
        if "one_active_run_per_thread" not in str(exc) or connection.needs_rollback:
            raise  # a caller's transaction that must roll back first: the constraint's own 400 (api/errors.py)
        active = Run.objects.filter(thread__public_id=thread_id, thread__project=project, status__in=Run.ACTIVE)
        raise _active_run_error(thread_id, active.values_list("public_id", flat=True).first() or "") from exc
    return run


def _send_early(run_pk: int, task_id: str) -> None:
    """Send the new run's task at once, *before* its row is even written, so the worker gets going while this
    transaction finishes (the run's first token is that much sooner). The task's claim first waits for this
    transaction, which holds the task's creation lock (taken as the thread was read) to its end; on a rollback it
    finds no run."""
    try:
        lifecycle.send(run_pk, task_id)
    except Exception as exc:  # the broker is down: a prompt 503, and the rollback leaves nothing half-written
        logger.exception("could not enqueue run %s", run_pk)
        raise BrokerUnavailable("The server could not queue the run (its task broker is unavailable). "
                                "Nothing was created; try again.") from exc


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
    pick: Callable[[str], Any] = options.get  # explicit nulls fall back to the assistant, as on OpenAI
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
    thread_fields = dict(thread or {})
    if tool_resources is not None and thread_fields.get("tool_resources") is None:
        thread_fields["tool_resources"] = tool_resources
    with transaction.atomic():  # all or nothing, so its parts need no savepoints of their own
        new_thread = thread_create(project=project, savepoint=False, **thread_fields)
        run = run_create(project=project, thread_id=new_thread.public_id, savepoint=False,
                         lead_events=(ev.ThreadCreated(new_thread),), **run_options)
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
        if run.status not in lifecycle.RUN[Run.Status.CANCELLING].sources:
            raise InvalidRequest(f"Cannot cancel run with status '{run.status}'.")
        idle = run.status in (Run.Status.QUEUED, Run.Status.REQUIRES_ACTION)
        run.status = Run.Status.CANCELLING
        run.save(update_fields=["status"])
        events.publish_on_commit(run.public_id, ev.RunStatus(run))
        transaction.on_commit(lambda: events.request_cancel(run.public_id))
    if idle:
        run_finish_cancel(run_id=run.pk)
    run.status = Run.Status.CANCELLING
    return run


def run_submit_tool_outputs(*, run: Run, tool_outputs: list[dict]) -> tuple[Run, str]:
    """Record every pending call's output, complete the tool_calls step, re-queue the run.
    Returns the run and the id of the last stream event before this submission (a stream reads after it)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("thread").get(pk=run.pk)
        if run.status not in lifecycle.RUN[Run.Status.QUEUED].sources:  # paused for tool outputs
            raise InvalidRequest(
                f"Runs in status \"{run.status}\" do not accept tool outputs.", param="tool_outputs")
        required_action = cast(dict, run.required_action)  # set on every run paused for tool outputs
        pending = [c["id"] for c in required_action["submit_tool_outputs"]["tool_calls"]]
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
            step.step_details["tool_calls"] = [
                tools.get(call["type"]).with_output(call, outputs[call["id"]]) if call["id"] in outputs else call
                for call in step.step_details["tool_calls"]]
            fields = lifecycle.step_enter(step, RunStep.Status.COMPLETED, now)
            step.save(update_fields=["step_details", *fields])
            events.publish_on_commit(run.public_id, ev.StepStatus(step))
        # attempts counts the claims of one stretch of work: the recovery limit applies afresh to each
        timestamps = lifecycle.entering(Run.Status.QUEUED, now)
        for name, value in timestamps.items():
            setattr(run, name, value)
        run.status, run.attempts = Run.Status.QUEUED, 0
        update = ["status", "attempts", *timestamps]
        sealed = provider_credentials.sealed_request()
        if sealed:  # a continuation with header credentials uses them from here on (issue 16)
            run.sealed_credentials = sealed
            update.append("sealed_credentials")
        run.save(update_fields=update)
        events.publish_on_commit(run.public_id, ev.RunStatus(run))
        lifecycle.enqueue(run)
    return run, after
