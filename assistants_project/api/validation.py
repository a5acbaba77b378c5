"""Shared request validation: serializer helper, metadata, list parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from assistants_project.api.errors import InvalidRequest


def validated(serializer_class: type[serializers.Serializer], data: Any, **context: Any) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidRequest("The request body must be a JSON object.")
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def reject_unknown_fields(data: dict, allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidRequest(f"Unrecognized request argument supplied: {key}", param=key)


class StrictSerializer(serializers.Serializer):
    """Unknown fields are an error, as on OpenAI's API. Nested (or run with ``context={"nested": True}``), the
    error names the field's full path (``messages[2].foo``)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            if self.parent is not None or self.context.get("nested"):
                unknown = next((key for key in data if key not in self.fields), None)
                if unknown is not None:
                    raise serializers.ValidationError(
                        {unknown: [f"Unrecognized request argument supplied: {unknown}"]})
            else:
                reject_unknown_fields(data, set(self.fields))
        return super().to_internal_value(data)


class MetadataField(serializers.Field):
    """Up to 16 string pairs; keys ≤ 64 chars, values ≤ 512 chars."""

    default_error_messages = {"invalid": "Expected an object of string keys and values."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.fail("invalid")
        if len(data) > 16:
            raise serializers.ValidationError(f"Array too long. Expected an object with maximum 16 properties, "
                                              f"but got {len(data)} instead.")
        for key, value in data.items():
            if len(key) > 64:
                raise serializers.ValidationError(
                    f"Metadata key '{key[:20]}…' is too long; keys are limited to 64 characters.")
            if value is None:
                continue
            if not isinstance(value, str):
                raise serializers.ValidationError(f"Metadata value for '{key}' must be a string.")
            if len(value) > 512:
                raise serializers.ValidationError(
                    f"Metadata value for '{key}' is too long; values are limited to 512 characters.")
        return {k: v for k, v in data.items() if v is not None}

    def to_representation(self, value: Any) -> dict:
        return value or {}


class JSONObjectField(serializers.Field):
    """Any JSON object (dict); deeper checks are the caller's."""

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object.")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class ListParams(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    order = serializers.ChoiceField(choices=["asc", "desc"], default="desc")
    after = serializers.CharField(required=False, allow_blank=False)
    before = serializers.CharField(required=False, allow_blank=False)

    def validate(self, attrs: dict) -> dict:
        if "after" in attrs and "before" in attrs:
            raise InvalidRequest("Only one of 'after' and 'before' may be given.", param="before")
        return attrs
