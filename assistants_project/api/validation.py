"""Shared request validation: serializer helper, metadata, list parameters."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from assistants_project.api.errors import InvalidRequest

logger = logging.getLogger(__name__)


def validated(serializer_class: type[serializers.Serializer], data: Any, **context: Any) -> dict:
    """The validated request. A value of an unexpected type deep inside (an object where a string belongs) that a
    field's own checks did not foresee is still the request's fault: 400, never 500 (the traceback is logged, so
    the field can be taught a better message)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidRequest("The request body must be a JSON object.")
    serializer = serializer_class(data=data, context=context)
    try:
        serializer.is_valid(raise_exception=True)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError):
        logger.warning("unforeseen input reached %s", serializer_class.__name__, exc_info=True)
        raise InvalidRequest("The request body has a value of the wrong type.") from None
    result = dict(serializer.validated_data)
    if isinstance(serializer, StrictSerializer):
        serializer.recycle_fields()
    return result


def reject_unknown_fields(data: dict, allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidRequest(f"Unrecognized request argument supplied: {key}", param=key)


def _nulls_omitted(data: dict, fields: Mapping) -> dict:
    """``null`` for an optional field that takes no null means "not given", as on OpenAI's API (LiteLLM's and
    other clients send explicit nulls for every unset argument)."""
    def omitted(key: str, value: Any) -> bool:
        field = fields.get(key)
        return value is None and field is not None and not field.required and not field.allow_null
    return {key: value for key, value in data.items() if not omitted(key, value)}


def _json_type_error(field: serializers.Field, value: Any) -> str | None:
    """DRF coerces (``123`` → ``"123"``, ``"true"`` → True); OpenAI answers 400 for a JSON value of the wrong type."""
    if value is None:
        return None
    if isinstance(field, serializers.ChoiceField):
        return None if isinstance(value, str) else "Expected a string."
    if isinstance(field, serializers.CharField):
        return None if isinstance(value, str) else "Expected a string."
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Expected a boolean."
    if isinstance(field, serializers.IntegerField):
        ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return None if ok and not isinstance(value, bool) else "Expected an integer."
    if isinstance(field, serializers.FloatField):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "Expected a number."
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return "Expected an array."
        for item in value:
            problem = _json_type_error(field.child, item)
            if problem:
                return problem
    return None


class StrictSerializer(serializers.Serializer):
    """Unknown fields are an error, as on OpenAI's API. Nested (or run with ``context={"nested": True}``), the
    error names the field's full path (``messages[2].foo``)."""

    # DRF deep-copies every declared field (nested serializers included) for each instance: 0.65 ms of CPU to
    # validate a run's two-key body, most of what validating costs. A serializer that validated a request gives
    # its bound fields back (``recycle_fields``) and the next instance of its class takes them, re-pointed at
    # itself: our fields keep no per-request state (values and errors live in what validation returns and
    # raises), and one set serves one request at a time.
    _spare_fields: defaultdict[type, list[BindingDict]] = defaultdict(list)

    @cached_property
    def fields(self) -> BindingDict:
        try:
            bound = self._spare_fields[type(self)].pop()
        except IndexError:
            fresh: BindingDict = super().fields
            return fresh
        bound.serializer = self
        for field in bound.values():
            field.parent = self
        return bound

    def recycle_fields(self) -> None:
        self._spare_fields[type(self)].append(self.fields)
        del self.fields

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            data = _nulls_omitted(data, self.fields)
            if self.root.context.get("json", self.context.get("nested", False)):
                for key, value in data.items():
                    field = self.fields.get(key)
                    problem = field is not None and _json_type_error(field, value)
                    if problem:
                        raise serializers.ValidationError({key: [problem]})
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


class ListParams(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    order = serializers.ChoiceField(choices=["asc", "desc"], default="desc")
    after = serializers.CharField(required=False, allow_blank=False)
    before = serializers.CharField(required=False, allow_blank=False)

    def validate(self, attrs: dict) -> dict:
        if "after" in attrs and "before" in attrs:
            raise InvalidRequest("Only one of 'after' and 'before' may be given.", param="before")
        return attrs
