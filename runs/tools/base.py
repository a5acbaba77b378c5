"""The base of a tool kind (``Tool``) and the helpers kinds share for validating requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from runs.event_model import ToolCallDelta


@dataclass
class ModelCall:
    """One call the model made, as ``Tool.execute`` gets it."""

    id: str
    name: str
    arguments: str
    step_id: str
    index: int  # the call's position in its step
    # Streams more of the call while it executes: ``stream(detail)`` publishes a ``ToolCallDelta`` carrying
    # ``detail``, which the kind's ``call_delta`` renders (say, outputs as they come).
    stream: Callable[[dict], None]
    # Whether the run was asked to stop: a long call checks it and gives up early.
    cancel_requested: Callable[[], bool]


class Tool:
    type: str = ""
    # The function name the model calls for a built-in tool (None: the model calls the user's own functions).
    model_function: str | None = None
    # ``include[]`` values this kind adds to step reads.
    includes: tuple[str, ...] = ()
    # Whether message attachments may name this kind.
    attachable: bool = False
    # shown in ``tool_resources`` when the kind is enabled and the request gave none (OpenAI's echo)
    default_resources: dict | None = None

    # --- requests ------------------------------------------------------------------------------------
    def validate(self, data: dict) -> dict:
        """A request's tool object → its stored shape (raise ``serializers.ValidationError``)."""
        no_extra(data, {"type"})
        return {"type": self.type}

    def out(self, tool: dict) -> dict:
        """The stored tool object as OpenAI echoes it, with the defaults it fills in (clients read them)."""
        return tool

    def validate_choice(self, data: dict) -> dict:
        """A ``tool_choice`` object naming this kind → its stored shape."""
        return {"type": self.type}

    def resolve_resources(self, *, project, resources: dict, param: str) -> dict:
        """This kind's part of validated ``tool_resources`` → its stored shape (unknown ids answer 404)."""
        return resources

    def attach(self, *, thread, file_ids: list[str]) -> None:
        """Files attached to a message of ``thread`` that name this kind."""

    # --- the model -----------------------------------------------------------------------------------
    def offered(self, tool: dict) -> dict | None:
        """The chat-completion tool offered for one of the run's tools (None: not offered)."""
        return None

    def choice_for_model(self, choice: dict) -> Any:
        """A ``tool_choice`` naming this kind, as the model is told (None: leave the choice to the model)."""
        return None

    def replay(self, call: dict, ordinal: int) -> tuple[dict, str]:
        """A finished call, for the next turn's prompt: (the assistant's tool call, the tool's output). ``ordinal``
        counts this kind's earlier calls in the run."""
        raise NotImplementedError

    def instructions(self, run) -> str | None:
        """What the system message tells the model about this tool for ``run`` (None: nothing)."""
        return None

    def annotations(self, run, text: str, calls: list[dict]) -> list[dict]:
        """Annotations this kind's calls of the run (oldest first) put on the final message's text."""
        return []

    def message_parts(self, run, calls: list[dict]) -> list[dict]:
        """Content parts this kind's calls of the run add to the final message, after its text."""
        return []

    # --- execution -----------------------------------------------------------------------------------
    def execute(self, run, call: ModelCall) -> tuple[dict, dict | None]:
        """Carry out one call the model made: (the call as the step records it, the call the client must answer
        through submit_tool_outputs, or None when it ran here)."""
        raise NotImplementedError

    def with_output(self, call: dict, output: str) -> dict:
        """A step's call once the client submitted its output."""
        return call

    # --- how calls are shown ------------------------------------------------------------------------
    def call_delta(self, delta: ToolCallDelta) -> dict | None:
        """The stream's view of a call the model is writing (None: nothing to show for this piece)."""
        raise NotImplementedError

    def step_call(self, call: dict, include: list[str] | tuple) -> dict:
        """A recorded call as step reads and events show it, given the request's ``include[]``."""
        return call


def no_extra(data: dict, allowed: set[str]) -> None:
    extra = set(data) - allowed
    if extra:
        raise serializers.ValidationError({sorted(extra)[0]: ["Unrecognized field."]})


def nested(serializer_class: type[serializers.Serializer], data: Any, key: str) -> dict:
    serializer = serializer_class(data=data, context={"json": True, "nested": True})
    if not serializer.is_valid():
        raise serializers.ValidationError({key: serializer.errors})
    return plain(serializer.validated_data)


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def one_of(names: list[str]) -> str:
    """'a' and 'b' / 'a', 'b', and 'c', as OpenAI's messages list supported values."""
    quoted = [f"'{name}'" for name in names]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]
