"""The Assistants API's stream events (``thread.run.*``, ``thread.run.step.*``, ``thread.message.*``), rendered
from the run's internal events. Every event name the Assistants stream carries is spelled here."""

from __future__ import annotations

from functools import singledispatch

from assistants.serializers import message_out, thread_out
from runs import event_model as ev
from runs import tools
from runs.models import Run
from runs.serializers import run_out, step_out

THREAD_CREATED = "thread.created"
RUN_CREATED = "thread.run.created"
STEP_CREATED = "thread.run.step.created"
STEP_DELTA = "thread.run.step.delta"
MESSAGE_CREATED = "thread.message.created"
MESSAGE_DELTA = "thread.message.delta"


def run_event(status: str) -> str:
    return f"thread.run.{status}"


def step_event(status: str) -> str:
    return f"thread.run.step.{status}"


def message_event(status: str) -> str:
    return f"thread.message.{status}"


# A stream response ends after one of these (then ``event: done``); a terminal one also starts the stream's expiry.
TERMINAL_RUN_EVENTS = frozenset(run_event(status) for status in Run.TERMINAL)
END_EVENTS = TERMINAL_RUN_EVENTS | {run_event(Run.Status.REQUIRES_ACTION)}


@singledispatch
def render(event) -> list[tuple[str, dict]]:
    raise TypeError(f"no Assistants rendering for {type(event).__name__}")


@render.register
def _(event: ev.ThreadCreated) -> list[tuple[str, dict]]:
    return [(THREAD_CREATED, thread_out(event.thread))]


@render.register
def _(event: ev.RunCreated) -> list[tuple[str, dict]]:
    return [(RUN_CREATED, run_out(event.run))]


@render.register
def _(event: ev.RunStatus) -> list[tuple[str, dict]]:
    return [(run_event(event.run.status), run_out(event.run))]


@render.register
def _(event: ev.StepCreated) -> list[tuple[str, dict]]:
    return [(STEP_CREATED, step_out(event.step, include=event.include))]


@render.register
def _(event: ev.StepStatus) -> list[tuple[str, dict]]:
    return [(step_event(event.step.status), step_out(event.step, include=event.include))]


@render.register
def _(event: ev.MessageCreated) -> list[tuple[str, dict]]:
    return [(MESSAGE_CREATED, message_out(event.message))]


@render.register
def _(event: ev.MessageStatus) -> list[tuple[str, dict]]:
    return [(message_event(event.message.status), message_out(event.message))]


@render.register
def _(event: ev.TextDelta) -> list[tuple[str, dict]]:
    text = {"value": event.text, "annotations": []} if event.first else {"value": event.text}
    return [(MESSAGE_DELTA, {"id": event.message_id, "object": "thread.message.delta",
                             "delta": {"content": [{"index": 0, "type": "text", "text": text}]}})]


@render.register
def _(event: ev.PartsAdded) -> list[tuple[str, dict]]:
    content = [{"index": event.index + i, **part} for i, part in enumerate(event.parts)]
    return [(MESSAGE_DELTA, {"id": event.message_id, "object": "thread.message.delta", "delta": {"content": content}})]


@render.register
def _(event: ev.ToolCallDelta) -> list[tuple[str, dict]]:
    call = tools.get(event.tool_type).call_delta(event)
    if call is None:  # nothing this tool shows for that piece
        return []
    return [(STEP_DELTA, {"id": event.step_id, "object": "thread.run.step.delta",
                          "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}}})]
