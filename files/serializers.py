"""Request validation and the response shape for files."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from assistants_project.api.errors import InvalidRequest
from assistants_project.api.models import epoch
from assistants_project.api.validation import StrictSerializer
from files.models import File

UPLOAD_PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
_BRACKETED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([A-Za-z_][A-Za-z0-9_]*)\]$")


class ExpiresAfterIn(StrictSerializer):
    anchor = serializers.ChoiceField(choices=["created_at"], error_messages={
        "invalid_choice": "Invalid value: '{input}'. Supported values are: 'created_at'."})
    seconds = serializers.IntegerField(min_value=3600, max_value=2_592_000)


class FileCreateIn(StrictSerializer):
    file = serializers.FileField(max_length=512, allow_empty_file=False, error_messages={
        "empty": "The submitted file is empty.",
        "invalid": "Expected a file upload (multipart/form-data with a file part named 'file').",
    })
    purpose = serializers.ChoiceField(choices=UPLOAD_PURPOSES, error_messages={
        "invalid_choice": "Invalid value: '{input}'. Supported values are: 'assistants', 'batch', 'fine-tune', "
                          "'vision', 'user_data', and 'evals'."})
    expires_after = ExpiresAfterIn(required=False)


class FileListParams(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=10_000, default=10_000)
    order = serializers.ChoiceField(choices=["asc", "desc"], default="desc")
    after = serializers.CharField(required=False, allow_blank=False)
    purpose = serializers.CharField(required=False, allow_blank=False)


def multipart_fields(data: Any) -> dict:
    """A parsed multipart body (QueryDict with files) → a plain dict; ``a[b]`` keys nest as ``{"a": {"b"}}``.
    A field given twice is an error, not a silent pick."""
    fields: dict = {}
    # An empty body parses to a plain dict (whatever its declared type): "file" is then simply missing.
    pairs = data.lists() if hasattr(data, "lists") else ((key, [value]) for key, value in data.items())
    for key, values in pairs:
        if len(values) != 1:
            raise InvalidRequest(f"Invalid '{key}': expected a single value, got {len(values)}.", param=key)
        match = _BRACKETED.match(key)
        if match:
            outer, inner = match.groups()
            nested = fields.setdefault(outer, {})
            if not isinstance(nested, dict):
                raise InvalidRequest(f"Invalid '{outer}': given both as a value and as an object.", param=outer)
            nested[inner] = values[0]
        else:
            if key in fields:
                raise InvalidRequest(f"Invalid '{key}': given both as a value and as an object.", param=key)
            fields[key] = values[0]
    return fields


def file_out(file: File) -> dict:
    return {
        "id": file.public_id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": epoch(file.created_at),
        "expires_at": epoch(file.expires_at),
        "filename": file.filename,
        "purpose": file.purpose,
        "status": file.status,
        "status_details": file.status_details,
    }
