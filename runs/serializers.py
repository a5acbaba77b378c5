"""Run requests and the run / run step objects as OpenAI shows them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from assistants.serializers import (
    REASONING_EFFORTS,
    MessageIn,
    ResponseFormatField,
    ThreadIn,
    ToolResourcesIn,
    ToolsField,
    tools_out,
)
from assistants_project.api.models import epoch
from assistants_project.api.validation import MetadataField, StrictSerializer, validated
from runs import tools
from runs.models import Run, RunStep


class TruncationStrategyIn(StrictSerializer):
    type = serializers.ChoiceField(choices=["auto", "last_messages"])
    last_messages = serializers.IntegerField(min_value=1, required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        if attrs["type"] == "last_messages" and not attrs.get("last_messages"):
            raise serializers.ValidationError({"last_messages": ["Required when type is 'last_messages'."]})
        return attrs


class ToolChoiceField(serializers.Field):
    def to_internal_value(self, data: Any) -> Any:
        if data in ("none", "auto", "required"):
            return data
        if isinstance(data, dict) and isinstance(data.get("type"), str) and data["type"] in tools.REGISTRY:
            return tools.get(data["type"]).validate_choice(data)
        raise serializers.ValidationError(
            "Expected 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}.")

    def to_representation(self, value: Any) -> Any:
        return value


class RunOptionsIn(StrictSerializer):
    """What create-run and create-thread-and-run share."""

    assistant_id = serializers.CharField()
    model = serializers.CharField(max_length=256, required=False, allow_null=True)
    instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False,
                                         max_length=256_000)
    tools = ToolsField(max_length=20)
    metadata = MetadataField()
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, allow_null=True)
    max_prompt_tokens = serializers.IntegerField(min_value=256, required=False, allow_null=True)
    max_completion_tokens = serializers.IntegerField(min_value=256, required=False, allow_null=True)
    truncation_strategy = TruncationStrategyIn(required=False, allow_null=True)
    tool_choice = ToolChoiceField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    response_format = ResponseFormatField(required=False, allow_null=True)


class RunCreateIn(RunOptionsIn):
    additional_instructions = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                                    trim_whitespace=False)
    additional_messages = serializers.ListField(child=MessageIn(), required=False, allow_null=True)
    reasoning_effort = serializers.ChoiceField(choices=REASONING_EFFORTS, required=False, allow_null=True)


class ThreadAndRunIn(RunOptionsIn):
    thread = ThreadIn(required=False, allow_null=True, default=None)  # the SDK's create_and_run(assistant_id=…)
    tool_resources = ToolResourcesIn(required=False, allow_null=True)


class ToolOutputIn(StrictSerializer):
    tool_call_id = serializers.CharField()
    output = serializers.CharField(allow_blank=True, trim_whitespace=False)


class SubmitToolOutputsIn(StrictSerializer):
    tool_outputs = serializers.ListField(child=ToolOutputIn(), allow_empty=False)
    stream = serializers.BooleanField(required=False, allow_null=True)


class RunModifyIn(StrictSerializer):
    metadata = MetadataField()


class IncludeParams(serializers.Serializer):
    include = serializers.ListField(child=serializers.ChoiceField(choices=tools.includes()), required=False)


def include_from_query(query_params) -> list[str]:
    """``include[]=…`` as the SDKs send it, or plain ``include=…``."""
    values = query_params.getlist("include[]") + query_params.getlist("include")
    return list(validated(IncludeParams, {"include": values}).get("include", [])) if values else []


def run_out(run: Run) -> dict:
    return {
        "id": run.public_id,
        "object": "thread.run",
        "created_at": epoch(run.created_at),
        "thread_id": run.thread.public_id,
        "assistant_id": run.assistant_public_id,
        "status": run.status,
        "required_action": run.required_action,
        "last_error": run.last_error,
        "expires_at": epoch(run.expires_at),
        "started_at": epoch(run.started_at),
        "cancelled_at": epoch(run.cancelled_at),
        "failed_at": epoch(run.failed_at),
        "completed_at": epoch(run.completed_at),
        "incomplete_details": run.incomplete_details,
        "model": run.model,
        "instructions": run.instructions,
        "tools": tools_out(run.tools),
        "metadata": run.metadata or {},
        "usage": run.usage if run.status in Run.TERMINAL else None,
        "temperature": 1.0 if run.temperature is None else run.temperature,
        "top_p": 1.0 if run.top_p is None else run.top_p,
        "max_prompt_tokens": run.max_prompt_tokens,
        "max_completion_tokens": run.max_completion_tokens,
        "truncation_strategy": run.truncation_strategy or {"type": "auto", "last_messages": None},
        "tool_choice": run.tool_choice or "auto",
        "parallel_tool_calls": run.parallel_tool_calls,
        "response_format": run.response_format or "auto",
    }


def step_out(step: RunStep, *, include: list[str] | tuple = ()) -> dict:
    details = step.step_details
    if step.type == RunStep.Type.TOOL_CALLS:
        details = {**details, "tool_calls": [tools.get(call["type"]).step_call(call, include)
                                             for call in details.get("tool_calls", [])]}
    return {
        "id": step.public_id,
        "object": "thread.run.step",
        "created_at": epoch(step.created_at),
        "assistant_id": step.run.assistant_public_id,
        "thread_id": step.thread.public_id,
        "run_id": step.run.public_id,
        "type": step.type,
        "status": step.status,
        "step_details": details,
        "last_error": step.last_error,
        "expired_at": epoch(step.expired_at),
        "cancelled_at": epoch(step.cancelled_at),
        "failed_at": epoch(step.failed_at),
        "completed_at": epoch(step.completed_at),
        "metadata": step.metadata or {},
        "usage": None if step.status == RunStep.Status.IN_PROGRESS else step.usage,
    }
