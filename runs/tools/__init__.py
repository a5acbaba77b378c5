"""The tools a run offers its model, one module per kind, behind one small interface (``Tool``).

A kind says how requests naming it are validated (the tool object, ``tool_choice``, attachments, its
``tool_resources``), what the model is offered, how a call executes, and how its calls are shown (step details,
stream deltas, replay to the model). The vocabulary everywhere else (serializers, prompt, engine, renderer) comes
from ``REGISTRY``: adding a kind is one module and one line below.

This package sits low: assistants' serializers and services call into it, so it imports no runs module but the
models and the event model."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from runs.tools import code_interpreter, file_search, function
from runs.tools.base import ModelCall as ModelCall  # re-exported: what Tool.execute gets
from runs.tools.base import Tool, one_of

REGISTRY: dict[str, Tool] = {tool.type: tool for tool in (code_interpreter.TOOL, file_search.TOOL, function.TOOL)}


def get(kind: str) -> Tool:
    return REGISTRY[kind]


def for_call(name: str) -> Tool:
    """The kind a model's call by function ``name`` belongs to: a built-in's function, else the user's own."""
    for tool in REGISTRY.values():
        if tool.model_function and tool.model_function == name:
            return tool
    return REGISTRY["function"]


def validate(data: Any) -> dict:
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object.")
    kind = data.get("type")
    tool = REGISTRY.get(kind) if isinstance(kind, str) else None
    if tool is None:
        raise serializers.ValidationError(
            {"type": [f"Invalid value: {kind!r}. Supported values are: {one_of(list(REGISTRY))}."]})
    return tool.validate(data)


def validate_attachment_tool(data: Any) -> dict:
    if not isinstance(data, dict):
        raise serializers.ValidationError("Expected an object.")
    kinds = [kind for kind, tool in REGISTRY.items() if tool.attachable]
    kind = data.get("type")
    if kind not in kinds:
        raise serializers.ValidationError({"type": [f"Invalid value: {kind!r}. Supported values are: "
                                                    f"{one_of(kinds)}."]})
    extra = sorted(set(data) - {"type"})
    if extra:
        raise serializers.ValidationError({extra[0]: [f"Unrecognized request argument supplied: {extra[0]}"]})
    return {"type": kind}


def includes() -> list[str]:
    return [value for tool in REGISTRY.values() for value in tool.includes]


def resources_resolve(*, project, tool_resources: dict | None, param: str = "tool_resources") -> dict:
    """Validated ``tool_resources`` → stored shape. Unknown (or other projects') ids answer 404 like any unknown id."""
    resolved: dict = {}
    for kind, tool in REGISTRY.items():
        if tool_resources and tool_resources.get(kind) is not None:
            resolved[kind] = tool.resolve_resources(project=project, resources=tool_resources[kind],
                                                    param=f"{param}.{kind}")
    return resolved


def attachments_index(*, thread, attachments: list[dict]) -> None:
    """Give each kind the files attached for it (file_search indexes them into the thread's vector store)."""
    for kind, tool in REGISTRY.items():
        file_ids = list(dict.fromkeys(a["file_id"] for a in attachments
                                      if any(t.get("type") == kind for t in a.get("tools") or [])))
        if file_ids:
            tool.attach(thread=thread, file_ids=file_ids)
