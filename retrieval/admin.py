"""Operators' view of vector stores: file counts per store, failed files with their errors, and retrying a failed
file's ingestion through ``retrieval.services`` (the same path as the API's attach)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet, Sum
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from assistants.admin import ReadOnlyMixin, TenantAdmin, pretty_json
from assistants_project.api.errors import OpenAIError
from retrieval.models import FileBatch, VectorStore, VectorStoreFile

Status = VectorStoreFile.Status


class _FileCounts(TypedDict):
    """What ``_file_counts()`` annotates on each store or batch row of the changelists."""

    n_total: int
    n_in_progress: int
    n_completed: int
    n_failed: int
    n_cancelled: int


if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    CountedStore = WithAnnotations[VectorStore, _FileCounts]
    CountedBatch = WithAnnotations[FileBatch, _FileCounts]
    Counted = CountedStore | CountedBatch


def _file_counts() -> dict:
    counts = {f"n_{s}": Count("files", filter=Q(files__status=s)) for s in Status.values}
    counts["n_total"] = Count("files")
    return counts


def _files_url(**filters) -> str:
    return reverse("admin:retrieval_vectorstorefile_changelist") + "?" + "&".join(f"{k}={v}" for k, v in
                                                                                   filters.items())


class _FileCountsAdmin(admin.ModelAdmin):
    """The file-count columns of a store's or a batch's changelist, counted once per page by annotation;
    ``files_filter`` is the files changelist's filter on this row."""

    files_filter: str

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**_file_counts()).order_by("-pk")

    @admin.display(description="failed", ordering="n_failed")
    def files_failed(self, obj: Counted) -> str:
        if not obj.n_failed:
            return "0"
        return format_html('<a class="ops-error" href="{}">{}</a>',
                           _files_url(**{self.files_filter: obj.pk}, status__exact=Status.FAILED), obj.n_failed)

    @admin.display(description="in progress", ordering="n_in_progress")
    def files_in_progress(self, obj: Counted) -> int:
        return obj.n_in_progress

    @admin.display(description="file counts")
    def counts(self, obj: Counted) -> str:
        return ", ".join(f"{getattr(obj, f'n_{s}')} {s}" for s in Status.values) + f" ({obj.n_total} in all)"


def _store_link(obj: VectorStoreFile | FileBatch) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:retrieval_vectorstore_change", args=[obj.vector_store_id]),
                       obj.vector_store.public_id)


@admin.register(VectorStore)
class VectorStoreAdmin(_FileCountsAdmin, ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "name", "project", "files_total", "files_completed", "files_in_progress",
                    "files_failed", "files_cancelled", "created_at", "last_active_at", "expired_at"]
    list_filter = ["project", ("expired_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["public_id", "name", "metadata"]
    fields = ("public_id", "name", "description", "project", "created_at", "counts", "usage", "failed_files", "batches",
              "metadata_json", "expires_after_days", "expires_at", "last_active_at", "expired_at")
    readonly_fields = fields
    files_filter = "vector_store__id__exact"

    @admin.display(description="files", ordering="n_total")
    def files_total(self, obj: CountedStore) -> str:
        return format_html('<a href="{}">{}</a>', _files_url(vector_store__id__exact=obj.pk), obj.n_total)

    @admin.display(description="completed", ordering="n_completed")
    def files_completed(self, obj: CountedStore) -> int:
        return obj.n_completed

    @admin.display(description="cancelled", ordering="n_cancelled")
    def files_cancelled(self, obj: CountedStore) -> int:
        return obj.n_cancelled

    @admin.display(description="usage")
    def usage(self, obj: VectorStore) -> str:
        row = obj.files.aggregate(bytes=Sum("usage_bytes"), chunks=Sum("chunk_count"))
        return f"{row['bytes'] or 0} bytes in {row['chunks'] or 0} chunks"

    @admin.display(description="failed files")
    def failed_files(self, obj: VectorStore) -> str:
        failed = list(obj.files.filter(status=Status.FAILED).select_related("file").order_by("pk")[:50])
        if not failed:
            return "-"
        rows = [format_html("<tr><td><a href='{}'>{}</a></td><td>{}</td><td class='ops-error'>{}</td></tr>",
                            reverse("admin:retrieval_vectorstorefile_change", args=[vsf.pk]), vsf.file.public_id,
                            vsf.file.filename, _error(vsf)) for vsf in failed]
        return format_html("<table class='ops-table'>{}</table><a href='{}'>every failed file of this store "
                           "(retry them there)</a>", mark_safe("".join(rows)),
                           _files_url(vector_store__id__exact=obj.pk, status__exact=Status.FAILED))

    @admin.display(description="batches")
    def batches(self, obj: VectorStore) -> str:
        url = reverse("admin:retrieval_filebatch_changelist") + f"?vector_store__id__exact={obj.pk}"
        return format_html('<a href="{}">batches of this store</a>', url)

    @admin.display(description="metadata")
    def metadata_json(self, obj: VectorStore) -> str:
        return pretty_json(obj.metadata)


def _error(vsf: VectorStoreFile) -> str:
    error = vsf.last_error or {}
    return f"{error.get('code')}: {error.get('message')}" if error else ""


@admin.register(VectorStoreFile)
class VectorStoreFileAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["file_public_id", "filename", "store", "status", "error", "chunk_count", "usage_bytes", "project",
                    "created_at"]
    list_filter = ["status", "project", "keyword_only", "created_at"]
    search_fields = ["=file__public_id", "=vector_store__public_id", "file__filename"]
    date_hierarchy = "created_at"
    list_select_related = ["project", "file", "vector_store"]
    show_full_result_count = False
    raw_id_fields = ["file", "vector_store", "batch"]
    actions = ["retry_ingestion"]
    fields = ("file_public_id", "filename", "store", "batch", "project", "status", "error", "created_at", "chunk_count",
              "usage_bytes", "keyword_only", "embedding_model", "embedding_dimensions", "chunking_json",
              "attributes_json", "generation")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-pk")

    @admin.display(description="file", ordering="file__public_id")
    def file_public_id(self, obj: VectorStoreFile) -> str:
        return obj.file.public_id

    @admin.display(description="filename")
    def filename(self, obj: VectorStoreFile) -> str:
        return obj.file.filename

    @admin.display(description="vector store", ordering="vector_store")
    def store(self, obj: VectorStoreFile) -> str:
        return _store_link(obj)

    @admin.display(description="last error")
    def error(self, obj: VectorStoreFile) -> str:
        return format_html("<span class='ops-error'>{}</span>", _error(obj)) if obj.last_error else "-"

    @admin.display(description="chunking strategy")
    def chunking_json(self, obj: VectorStoreFile) -> str:
        return pretty_json(obj.chunking_strategy)

    @admin.display(description="attributes")
    def attributes_json(self, obj: VectorStoreFile) -> str:
        return pretty_json(obj.attributes)

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("retrieval.change_vectorstorefile")

    @admin.action(description="Retry the ingestion of the selected failed files", permissions=["retry"])
    def retry_ingestion(self, request, queryset: QuerySet[VectorStoreFile]) -> None:
        """Re-attach each failed file with its own strategy and attributes, as the API's attach does: the row goes
        back to in_progress (a new generation) and its ingestion task is queued."""
        from retrieval import services

        retried, skipped = [], []
        for vsf in queryset.select_related("file", "vector_store__project"):
            if vsf.status != Status.FAILED:
                skipped.append(vsf.file.public_id)
                continue
            try:
                services.vector_store_file_create(vector_store=vsf.vector_store, file_id=vsf.file.public_id,
                                                  chunking_strategy=vsf.chunking_strategy, attributes=vsf.attributes)
            except OpenAIError as exc:
                self.message_user(request, f"{vsf.file.public_id}: {exc.detail}", messages.ERROR)
                continue
            retried.append(vsf.file.public_id)
        if retried:
            self.message_user(request, f"Ingestion queued again for {len(retried)} file(s): {', '.join(retried)}.")
        if skipped:
            self.message_user(request, f"Not failed, left alone: {', '.join(skipped)}.", messages.WARNING)


@admin.register(FileBatch)
class FileBatchAdmin(_FileCountsAdmin, ReadOnlyMixin, TenantAdmin):
    list_display = ["public_id", "store", "project", "files_total", "files_failed", "files_in_progress",
                    "created_at", "cancelled_at"]
    list_filter = ["project", "created_at"]
    search_fields = ["public_id", "vector_store__public_id"]
    list_select_related = ["project", "vector_store"]
    fields = ("public_id", "store", "project", "created_at", "cancelled_at", "counts")
    readonly_fields = fields
    files_filter = "batch__id__exact"

    @admin.display(description="vector store")
    def store(self, obj: FileBatch) -> str:
        return _store_link(obj)

    @admin.display(description="files", ordering="n_total")
    def files_total(self, obj: CountedBatch) -> int:
        return obj.n_total
