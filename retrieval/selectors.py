"""Reads. Every entry point is scoped to a project (stores) or to an already scoped store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Aggregate, Count, Q, QuerySet, Sum

from assistants_project.api.errors import NotFoundError
from retrieval.models import Chunk, FileBatch, VectorStore, VectorStoreFile
from tenancy.models import Project

STATUSES = [s.value for s in VectorStoreFile.Status]


def vector_store_list(*, project: Project) -> QuerySet[VectorStore]:
    return VectorStore.objects.filter(project=project)


def vector_store_get(*, project: Project, vector_store_id: str, for_update: bool = False) -> VectorStore:
    qs = VectorStore.objects.filter(project=project, public_id=vector_store_id)
    if for_update:
        qs = qs.select_for_update()
    store = qs.first()
    if store is None:
        raise NotFoundError(f"No vector store found with id '{vector_store_id}'.", param="vector_store_id")
    return store


def vector_store_file_list(*, vector_store: VectorStore, status: str | None = None,
                           batch: FileBatch | None = None) -> QuerySet[VectorStoreFile]:
    qs = VectorStoreFile.objects.filter(vector_store=vector_store).select_related("file")
    if batch is not None:
        qs = qs.filter(batch=batch)
    if status:
        qs = qs.filter(status=status)
    return qs


def vector_store_file_get(*, vector_store: VectorStore, file_id: str) -> VectorStoreFile:
    vsf = vector_store_file_list(vector_store=vector_store).filter(file__public_id=file_id).first()
    if vsf is None:
        raise NotFoundError(f"No file found with id '{file_id}' in vector store '{vector_store.public_id}'.",
                            param="file_id")
    return vsf


def file_batch_get(*, vector_store: VectorStore, batch_id: str) -> FileBatch:
    batch = FileBatch.objects.filter(vector_store=vector_store, public_id=batch_id).first()
    if batch is None:
        raise NotFoundError(f"No file batch found with id '{batch_id}' in vector store "
                            f"'{vector_store.public_id}'.", param="batch_id")
    return batch


def _counts_aggregate() -> dict[str, Aggregate]:
    aggregates: dict[str, Aggregate] = {s: Count("id", filter=Q(status=s)) for s in STATUSES}
    aggregates["total"] = Count("id")
    aggregates["usage_bytes"] = Sum("usage_bytes")
    return aggregates


def _shape(row: Mapping[str, Any] | None) -> dict:
    row = row or {}
    counts = {s: row.get(s) or 0 for s in STATUSES}
    counts["total"] = row.get("total") or 0
    return {"file_counts": counts, "usage_bytes": row.get("usage_bytes") or 0}


def vector_store_stats(*, store_ids: list[int]) -> dict[int, dict]:
    """{store pk: {"file_counts": {...}, "usage_bytes": n}}, computed from the file rows in one query: the counts
    are exact at every moment because nothing else keeps them."""
    rows = (VectorStoreFile.objects.filter(vector_store_id__in=store_ids).values("vector_store_id")
            .annotate(**_counts_aggregate()))
    by_store = {row["vector_store_id"]: row for row in rows}
    return {pk: _shape(by_store.get(pk)) for pk in store_ids}


def file_batch_stats(*, batch: FileBatch) -> dict:
    return _shape(VectorStoreFile.objects.filter(batch=batch).aggregate(**_counts_aggregate()))


def vector_store_file_chunks(*, vector_store_file: VectorStoreFile) -> list[str]:
    return list(Chunk.objects.filter(vector_store_file=vector_store_file).order_by("position")
                .values_list("text", flat=True))


def vector_store_files_pending(*, project: Project, vector_store_ids: list[str]) -> bool:
    """Whether any file of these stores is still being ingested."""
    return VectorStoreFile.objects.filter(project=project, vector_store__public_id__in=vector_store_ids,
                                          status=VectorStoreFile.Status.IN_PROGRESS).exists()


def vector_store_file_ids(*, vector_store: VectorStore) -> set[str]:
    """The public ids of the files in a store."""
    return set(VectorStoreFile.objects.filter(vector_store=vector_store).values_list("file__public_id", flat=True))
