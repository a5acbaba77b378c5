"""``function``: the client's own functions. The model calls them by name; the run pauses in
``requires_action`` until the client submits every call's output."""

from __future__ import annotations

import re

from rest_framework import serializers

from assistants_project.api.validation import StrictSerializer
from runs.tools.base import ModelCall, Tool, nested, no_extra

FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class FunctionIn(StrictSerializer):
    name = serializers.RegexField(FUNCTION_NAME, error_messages={
        "invalid": "Function names may contain a-z, A-Z, 0-9, underscores and dashes, at most 64 characters."})
    description = serializers.CharField(required=False, allow_blank=True)
    parameters = serializers.DictField(required=False)
    strict = serializers.BooleanField(required=False, allow_null=True)


class FunctionTool(Tool):
    type = "function"

    def validate(self, data: dict) -> dict:
        no_extra(data, {"type", "function"})
        if "function" not in data:
            raise serializers.ValidationError({"function": ["This field is required."]})
        if not isinstance(data["function"], dict):
            raise serializers.ValidationError({"function": ["Expected an object."]})
        return {"type": "function", "function": nested(FunctionIn, data["function"], "function")}

    def out(self, tool: dict) -> dict:
        function = tool.get("function") or {}
        return {"type": "function", "function": {**function, "strict": bool(function.get("strict"))}}

    def validate_choice(self, data: dict) -> dict:
        function = data.get("function")
        if not isinstance(function, dict):
            raise serializers.ValidationError({"function": ["Expected an object with a 'name'."]})
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise serializers.ValidationError({"function": {"name": ["This field is required."]}})
        return {"type": "function", "function": {"name": name}}

    def offered(self, tool: dict) -> dict:
        return {"type": "function", "function": tool["function"]}

    def choice_for_model(self, choice: dict) -> dict:
        return choice

    def replay(self, call: dict, ordinal: int) -> tuple[dict, str]:
        function = call["function"]
        return ({"id": call["id"], "type": "function",
                 "function": {"name": function["name"], "arguments": function["arguments"]}}, function["output"] or "")

    def execute(self, run, call: ModelCall) -> tuple[dict, dict]:
        function = {"name": call.name, "arguments": call.arguments}
        return ({"id": call.id, "type": "function", "function": {**function, "output": None}},
                {"id": call.id, "type": "function", "function": function})

    def with_output(self, call: dict, output: str) -> dict:
        call["function"]["output"] = output
        return call

    def call_delta(self, delta) -> dict:
        if delta.started:
            return {"index": delta.index, "id": delta.call_id, "type": "function",
                    "function": {"name": delta.name or "", "arguments": "", "output": None}}
        return {"index": delta.index, "type": "function", "function": {"arguments": delta.arguments}}


TOOL = FunctionTool()
