"""Request validation and response shapes for assistants (tools and friends are shared with runs)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from assistants.models import Assistant, Message, Thread
from assistants_project.api.models import epoch
from assistants_project.api.validation import ListParams, MetadataField, StrictSerializer
from runs import tools
from runs.tools.base import nested, plain
from runs.tools.function import FUNCTION_NAME

REASONING_EFFORTS = ["none", "minimal", "low", "medium", "high", "xhigh", "max"]


def _part_error(index: int, detail: Any) -> serializers.ValidationError:
    # Keyed by the part's index: the error envelope renders int keys as ``content[index]``. DRF keeps any key; its
    # stubs allow str keys only.
    return serializers.ValidationError({index: detail})  # type: ignore[dict-item]


class ToolField(serializers.Field):
    """One tool, as its kind in ``runs.tools`` validates it."""

    def to_internal_value(self, data: Any) -> dict:
        return tools.validate(data)

    def to_representation(self, value: Any) -> Any:
        return value


def ToolsField(max_length: int) -> serializers.ListField:
    return serializers.ListField(child=ToolField(), max_length=max_length, required=False, allow_null=True)


class JsonSchemaIn(StrictSerializer):
    """``response_format.json_schema`` as the spec has it (and as it is echoed back)."""

    name = serializers.RegexField(FUNCTION_NAME, error_messages={
        "invalid": "Names may contain a-z, A-Z, 0-9, underscores and dashes, at most 64 characters."})
    description = serializers.CharField(required=False, allow_blank=True)
    schema = serializers.DictField(required=False)
    strict = serializers.BooleanField(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> Any:
        attrs = super().to_internal_value(data)
        attrs["strict"] = bool(attrs.get("strict"))  # OpenAI's default, echoed
        return attrs


class ResponseFormatField(serializers.Field):
    def to_internal_value(self, data: Any) -> Any:
        if data == "auto" or data is None:
            return data
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected 'auto' or an object with a 'type'.")
        kind = data.get("type")
        if kind in ("text", "json_object"):
            return {"type": kind}
        if kind == "json_schema":
            extra = sorted(set(data) - {"type", "json_schema"})
            if extra:
                raise serializers.ValidationError({extra[0]: [f"Unrecognized request argument supplied: {extra[0]}"]})
            if not isinstance(data.get("json_schema"), dict):
                raise serializers.ValidationError({"json_schema": ["Expected an object."]})
            return {"type": "json_schema", "json_schema": nested(JsonSchemaIn, data["json_schema"], "json_schema")}
        raise serializers.ValidationError(
            {"type": [f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'."]})

    def to_representation(self, value: Any) -> Any:
        return value


class FileIdsField(serializers.ListField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.CharField(), required=False, **kwargs)


class CodeInterpreterResourcesIn(StrictSerializer):
    file_ids = FileIdsField(max_length=20)


class VectorStoreHelperIn(StrictSerializer):
    file_ids = FileIdsField(max_length=10000)
    chunking_strategy = serializers.DictField(required=False)
    metadata = MetadataField()


class FileSearchResourcesIn(StrictSerializer):
    vector_store_ids = serializers.ListField(child=serializers.CharField(), max_length=1, required=False)
    vector_stores = serializers.ListField(child=VectorStoreHelperIn(), max_length=1, required=False)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("vector_store_ids") and attrs.get("vector_stores"):
            raise serializers.ValidationError(
                {"vector_stores": ["Only one of 'vector_store_ids' and 'vector_stores' may be given."]})
        return attrs


class ToolResourcesIn(StrictSerializer):
    code_interpreter = CodeInterpreterResourcesIn(required=False)
    file_search = FileSearchResourcesIn(required=False)


class AssistantIn(StrictSerializer):
    model = serializers.CharField(max_length=256)
    name = serializers.CharField(max_length=256, required=False, allow_null=True, allow_blank=True)
    description = serializers.CharField(max_length=512, required=False, allow_null=True, allow_blank=True)
    instructions = serializers.CharField(max_length=256_000, required=False, allow_null=True, allow_blank=True,
                                         trim_whitespace=False)
    tools = ToolsField(max_length=128)
    tool_resources = ToolResourcesIn(required=False, allow_null=True)
    metadata = MetadataField()
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    response_format = ResponseFormatField(required=False, allow_null=True)
    reasoning_effort = serializers.ChoiceField(choices=REASONING_EFFORTS, required=False, allow_null=True)


class AssistantModifyIn(AssistantIn):
    model = serializers.CharField(max_length=256, required=False)


def tools_out(stored: list[dict] | None) -> list[dict]:
    """Tools as OpenAI echoes them: each kind fills in its defaults (clients read them)."""
    return [tools.get(tool["type"]).out(tool) if tool.get("type") in tools.REGISTRY else tool for tool in stored or []]


def tool_resources_out(tool_resources: dict | None, stored: list[dict] | None) -> dict:
    """``tool_resources`` with an empty resource for each enabled kind that has one (code_interpreter's
    ``file_ids: []``), as OpenAI shows them."""
    resources = dict(tool_resources or {})
    for tool in stored or []:
        default = tools.get(tool["type"]).default_resources if tool.get("type") in tools.REGISTRY else None
        if default is not None:
            resources[tool["type"]] = {**default, **(resources.get(tool["type"]) or {})}
    return resources


def assistant_out(assistant: Assistant) -> dict:
    return {
        "id": assistant.public_id,
        "object": "assistant",
        "created_at": epoch(assistant.created_at),
        "name": assistant.name,
        "description": assistant.description,
        "model": assistant.model,
        "instructions": assistant.instructions,
        "tools": tools_out(assistant.tools),
        "tool_resources": tool_resources_out(assistant.tool_resources, assistant.tools),
        "metadata": assistant.metadata or {},
        "temperature": 1.0 if assistant.temperature is None else assistant.temperature,
        "top_p": 1.0 if assistant.top_p is None else assistant.top_p,
        "response_format": assistant.response_format or "auto",
    }


# --- Threads and messages ----------------------------------------------------------------------------

MESSAGE_TEXT_MAX = 256_000
IMAGE_DETAILS = ["auto", "low", "high"]


class ImageUrlIn(StrictSerializer):
    url = serializers.CharField(max_length=MESSAGE_TEXT_MAX)
    detail = serializers.ChoiceField(choices=IMAGE_DETAILS, required=False)

    def validate_url(self, value: str) -> str:
        if value.startswith("data:image/"):
            return value
        from django.core.exceptions import ValidationError as DjangoValidationError
        from django.core.validators import URLValidator

        try:
            URLValidator(schemes=["http", "https"])(value)
        except DjangoValidationError:
            raise serializers.ValidationError("Expected an http(s) URL or a data:image/ URL.") from None
        return value


class ImageFileIn(StrictSerializer):
    file_id = serializers.CharField()
    detail = serializers.ChoiceField(choices=IMAGE_DETAILS, required=False)


class TextPartIn(StrictSerializer):
    type = serializers.CharField()
    text = serializers.CharField(max_length=MESSAGE_TEXT_MAX, trim_whitespace=False)


class ImageUrlPartIn(StrictSerializer):
    type = serializers.CharField()
    image_url = ImageUrlIn()


class ImageFilePartIn(StrictSerializer):
    type = serializers.CharField()
    image_file = ImageFileIn()


CONTENT_PARTS = {"text": TextPartIn, "image_url": ImageUrlPartIn, "image_file": ImageFilePartIn}


class MessageContentField(serializers.Field):
    """A string, or an array (≥1) of ``text`` / ``image_url`` / ``image_file`` request parts."""

    def to_internal_value(self, data: Any) -> str | list[dict]:
        if isinstance(data, str):
            if not data:
                raise serializers.ValidationError("Message content must be non-empty.")
            if len(data) > MESSAGE_TEXT_MAX:
                raise serializers.ValidationError(
                    f"String too long. Expected a string with maximum length {MESSAGE_TEXT_MAX}, "
                    f"but got a string with length {len(data)} instead.")
            return data
        if not isinstance(data, list):
            raise serializers.ValidationError("Expected a string or an array of content parts.")
        if not data:
            raise serializers.ValidationError(
                "Expected an array with minimum length 1, but got an empty array instead.")
        parts = []
        for index, part in enumerate(data):
            if not isinstance(part, dict):
                raise _part_error(index, ["Expected an object."])
            kind = part.get("type")
            if not isinstance(kind, str) or kind not in CONTENT_PARTS:
                raise _part_error(index, {"type": [
                    f"Invalid value: {kind!r}. Supported values are: 'text', 'image_url', and 'image_file'."]})
            serializer = CONTENT_PARTS[kind](data=part, context={"nested": True})
            if not serializer.is_valid():
                raise _part_error(index, serializer.errors)
            parts.append(plain(serializer.validated_data))
        return parts

    def to_representation(self, value: Any) -> Any:
        return value


class AttachmentToolField(serializers.Field):
    def to_internal_value(self, data: Any) -> dict:
        return tools.validate_attachment_tool(data)

    def to_representation(self, value: Any) -> Any:
        return value


class AttachmentIn(StrictSerializer):
    file_id = serializers.CharField()
    tools = serializers.ListField(child=AttachmentToolField(), required=False, default=list)


class MessageIn(StrictSerializer):
    role = serializers.ChoiceField(choices=["user", "assistant"], error_messages={
        "invalid_choice": "Invalid value: '{input}'. Supported values are: 'user' and 'assistant'."})
    content = MessageContentField()
    attachments = serializers.ListField(child=AttachmentIn(), required=False, allow_null=True)
    metadata = MetadataField()

    def to_internal_value(self, data: Any) -> Any:
        attrs = super().to_internal_value(data)
        if attrs.get("attachments"):
            attrs["attachments"] = plain(attrs["attachments"])
        return attrs


class MessageModifyIn(StrictSerializer):
    metadata = MetadataField()


class ThreadIn(StrictSerializer):
    messages = serializers.ListField(child=MessageIn(), required=False, allow_null=True)
    tool_resources = ToolResourcesIn(required=False, allow_null=True)
    metadata = MetadataField()


class ThreadFileSearchModifyIn(StrictSerializer):
    vector_store_ids = serializers.ListField(child=serializers.CharField(), max_length=1, required=False)


class ThreadToolResourcesModifyIn(StrictSerializer):
    code_interpreter = CodeInterpreterResourcesIn(required=False)
    file_search = ThreadFileSearchModifyIn(required=False)


class ThreadModifyIn(StrictSerializer):
    tool_resources = ThreadToolResourcesModifyIn(required=False, allow_null=True)
    metadata = MetadataField()


class MessageListParams(ListParams):
    run_id = serializers.CharField(required=False, allow_blank=False)


def thread_out(thread: Thread) -> dict:
    return {
        "id": thread.public_id,
        "object": "thread",
        "created_at": epoch(thread.created_at),
        "tool_resources": thread.tool_resources or {},
        "metadata": thread.metadata or {},
    }


def message_out(message: Message, *, thread_id: str | None = None) -> dict:
    """``thread_id`` saves a query per row when listing one thread's messages."""
    return {
        "id": message.public_id,
        "object": "thread.message",
        "created_at": epoch(message.created_at),
        "thread_id": thread_id or message.thread.public_id,
        "status": message.status,
        "incomplete_details": message.incomplete_details,
        "completed_at": epoch(message.completed_at),
        "incomplete_at": epoch(message.incomplete_at),
        "role": message.role,
        "content": message.content,
        "assistant_id": message.assistant_public_id,
        "run_id": message.run_public_id,
        "attachments": message.attachments or [],
        "metadata": message.metadata or {},
    }
