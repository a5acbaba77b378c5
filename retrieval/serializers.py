"""Request validation and response shapes for vector stores, their files, batches and search."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from assistants_project.api.errors import InvalidRequest
from assistants_project.api.models import epoch
from assistants_project.api.validation import ListParams, MetadataField, StrictSerializer
from retrieval.chunking import ChunkingStrategyError, normalize_chunking_strategy
from retrieval.filters import validate_filter
from retrieval.models import FileBatch, VectorStore, VectorStoreFile

FILE_STATUSES = [s.value for s in VectorStoreFile.Status]


class ChunkingStrategyField(serializers.Field):
    """``auto`` or ``static`` (100–4096 tokens, overlap ≤ half); stored in its resolved static form."""

    def to_internal_value(self, data: Any) -> dict:
        try:
            return normalize_chunking_strategy(data)
        except ChunkingStrategyError as exc:
            path = exc.param.split(".")[1:]  # relative to this field
            detail: Any = [exc.message]
            for key in reversed(path):
                detail = {key: detail}
            raise serializers.ValidationError(detail) from None

    def to_representation(self, value: Any) -> Any:
        return value


class AttributesField(serializers.Field):
    """Up to 16 pairs; keys ≤ 64 chars; values a string (≤ 512 chars), a number or a boolean."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object.")
        if len(data) > 16:
            raise serializers.ValidationError(f"Expected an object with at most 16 properties, got {len(data)}.")
        for key, value in data.items():
            if len(key) > 64:
                raise serializers.ValidationError(f"Attribute key '{key[:20]}…' is longer than 64 characters.")
            if isinstance(value, str):
                if len(value) > 512:
                    raise serializers.ValidationError(f"Attribute '{key}' is longer than 512 characters.")
            elif not isinstance(value, bool | int | float):
                raise serializers.ValidationError(f"Attribute '{key}' must be a string, a number or a boolean.")
        return data

    def to_representation(self, value: Any) -> Any:
        return value or {}


class FilterField(serializers.Field):
    def to_internal_value(self, data: Any) -> dict:
        return validate_filter(data, param=self.field_name or "")  # field_name: set once bound

    def to_representation(self, value: Any) -> Any:
        return value


class ExpiresAfterIn(StrictSerializer):
    anchor = serializers.ChoiceField(choices=["last_active_at"])
    days = serializers.IntegerField(min_value=1, max_value=365)


class VectorStoreIn(StrictSerializer):
    name = serializers.CharField(max_length=256, required=False, allow_blank=True, allow_null=True)
    description = serializers.CharField(max_length=512, required=False, allow_blank=True, allow_null=True)
    file_ids = serializers.ListField(child=serializers.CharField(), max_length=500, required=False)
    chunking_strategy = ChunkingStrategyField(required=False, allow_null=True)
    expires_after = ExpiresAfterIn(required=False, allow_null=True)
    metadata = MetadataField()


class VectorStoreModifyIn(StrictSerializer):
    name = serializers.CharField(max_length=256, required=False, allow_blank=True, allow_null=True)
    expires_after = ExpiresAfterIn(required=False, allow_null=True)
    metadata = MetadataField()


class VectorStoreFileIn(StrictSerializer):
    file_id = serializers.CharField()
    chunking_strategy = ChunkingStrategyField(required=False, allow_null=True)
    attributes = AttributesField()


class VectorStoreFileModifyIn(StrictSerializer):
    attributes = AttributesField(required=True)


class FileBatchIn(StrictSerializer):
    file_ids = serializers.ListField(child=serializers.CharField(), min_length=1, max_length=2000, required=False)
    files = serializers.ListField(child=VectorStoreFileIn(), min_length=1, max_length=2000, required=False)
    chunking_strategy = ChunkingStrategyField(required=False, allow_null=True)
    attributes = AttributesField()

    def validate(self, attrs: dict) -> dict:
        if "file_ids" in attrs and "files" in attrs:
            raise InvalidRequest("Only one of 'file_ids' and 'files' may be given.", param="files")
        if "file_ids" not in attrs and "files" not in attrs:
            raise InvalidRequest("Missing required parameter: 'file_ids' (or 'files').", param="file_ids")
        return attrs


class RankingOptionsIn(StrictSerializer):
    ranker = serializers.ChoiceField(choices=["none", "auto", "default-2024-11-15"], required=False)
    score_threshold = serializers.FloatField(min_value=0, max_value=1, required=False)


class QueryField(serializers.Field):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and data.strip():
            return data
        if isinstance(data, list) and data and all(isinstance(q, str) for q in data) and any(q.strip() for q in data):
            return data
        raise serializers.ValidationError("Expected a non-empty string or a non-empty array of strings.")

    def to_representation(self, value: Any) -> Any:
        return value


class SearchIn(StrictSerializer):
    query = QueryField()
    rewrite_query = serializers.BooleanField(required=False, default=False)
    max_num_results = serializers.IntegerField(min_value=1, max_value=50, required=False, default=10)
    filters = FilterField(required=False, allow_null=True)
    ranking_options = RankingOptionsIn(required=False)


class FileListParams(ListParams):
    filter = serializers.ChoiceField(choices=FILE_STATUSES, required=False)


# --- output ---------------------------------------------------------------------------------------


def vector_store_status(store: VectorStore, file_counts: dict) -> str:
    if store.expired_at is not None:
        return "expired"
    return "in_progress" if file_counts["in_progress"] else "completed"


def vector_store_out(store: VectorStore, stats: dict) -> dict:
    body = {
        "id": store.public_id,
        "object": "vector_store",
        "created_at": epoch(store.created_at),
        "name": store.name or "",
        "usage_bytes": stats["usage_bytes"],
        "file_counts": stats["file_counts"],
        "status": vector_store_status(store, stats["file_counts"]),
        "expires_at": epoch(store.expires_at),
        "last_active_at": epoch(store.last_active_at),
        "metadata": store.metadata or {},
    }
    if store.expires_after_days:  # the schema has no null here: absent when there is no policy
        body["expires_after"] = {"anchor": "last_active_at", "days": store.expires_after_days}
    return body


def vector_store_file_out(vsf: VectorStoreFile) -> dict:
    return {
        "id": vsf.file.public_id,
        "object": "vector_store.file",
        "usage_bytes": vsf.usage_bytes,
        "created_at": epoch(vsf.created_at),
        "vector_store_id": vsf.vector_store.public_id,
        "status": vsf.status,
        "last_error": vsf.last_error,
        "chunking_strategy": vsf.chunking_strategy,
        "attributes": vsf.attributes or {},
    }


def file_batch_status(batch: FileBatch, file_counts: dict) -> str:
    """Terminal exactly when no file is in progress (the Python SDK polls on counts, Node on status)."""
    if file_counts["in_progress"]:
        return "in_progress"
    if batch.cancelled_at is not None:
        return "cancelled"
    if file_counts["total"] and file_counts["failed"] == file_counts["total"]:
        return "failed"
    return "completed"


def file_batch_out(batch: FileBatch, stats: dict) -> dict:
    return {
        "id": batch.public_id,
        "object": "vector_store.files_batch",
        "created_at": epoch(batch.created_at),
        "vector_store_id": batch.vector_store.public_id,
        "status": file_batch_status(batch, stats["file_counts"]),
        "file_counts": stats["file_counts"],
    }
