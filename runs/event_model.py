"""What happens in a run, independent of any API's shape. The lifecycle and the engine say what happened with
these; a renderer (``runs.renderers.assistants`` today, a Responses renderer later) turns each into the events
its clients read. The objects are rendered when published, so they describe the state at that moment."""

from __future__ import annotations

from dataclasses import dataclass

from assistants.models import Message, Thread
from runs.models import Run, RunStep


@dataclass(frozen=True)
class ThreadCreated:
    thread: Thread


@dataclass(frozen=True)
class RunCreated:
    run: Run


@dataclass(frozen=True)
class RunStatus:
    """The run entered ``run.status`` (queued, in_progress, requires_action, cancelling or a terminal one)."""

    run: Run


@dataclass(frozen=True)
class StepCreated:
    step: RunStep
    include: tuple = ()


@dataclass(frozen=True)
class StepStatus:
    """The step entered ``step.status`` (in_progress, or how it ended)."""

    step: RunStep
    include: tuple = ()


@dataclass(frozen=True)
class MessageCreated:
    message: Message


@dataclass(frozen=True)
class MessageStatus:
    """The message entered ``message.status`` (in_progress, completed or incomplete)."""

    message: Message


@dataclass(frozen=True)
class TextDelta:
    """More text of the message's (only) text part; ``first`` for the piece that opens it."""

    message_id: str
    text: str
    first: bool = False


@dataclass(frozen=True)
class PartsAdded:
    """Whole content parts (an ``image_file``) added to the message after its text, from position ``index`` on."""

    message_id: str
    index: int
    parts: tuple


@dataclass(frozen=True)
class ToolCallDelta:
    """A tool call of a tool_calls step as the model writes it: ``started`` once (with the call's id and name),
    then pieces of its ``arguments``; then, while it executes, whatever ``detail`` its kind streams. ``index`` is
    the call's position in the step."""

    step_id: str
    index: int
    tool_type: str
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    written: str = ""  # all of the call's arguments so far, this piece included
    started: bool = False
    detail: dict | None = None  # what the kind streams while the call executes (``ModelCall.stream``)


RunEvent = (ThreadCreated | RunCreated | RunStatus | StepCreated | StepStatus | MessageCreated | MessageStatus
            | TextDelta | PartsAdded | ToolCallDelta)
