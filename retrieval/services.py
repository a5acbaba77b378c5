"""Writes for vector stores, their files and file batches. Ingestion itself lives in ingestion.py.

Counts are never stored: ``file_counts`` aggregate the file rows (selectors.vector_store_stats), and every status
change of a file row is a compare-and-set, so a cancel racing a completion ends in exactly one state.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.utils import timezone

from assistants_project.api.errors import InvalidRequest, NotFoundError
from retrieval.chunking import ChunkingStrategyError, normalize_chunking_strategy
from retrieval.ingestion import enqueue_on_commit
from retrieval.models import Chunk, FileBatch, VectorStore, VectorStoreFile
from tenancy import credentials as provider_credentials
from tenancy.models import Project

TOUCH_EVERY = timedelta(seconds=60)  # last_active_at is refreshed at most this often


def chunking_strategy_resolve(strategy: dict | None, *, param_prefix: str = "") -> dict:
    try:
        return normalize_chunking_strategy(strategy)
    except ChunkingStrategyError as exc:
        raise InvalidRequest(exc.message, param=param_prefix + exc.param) from None


def _files_resolve(*, project: Project, file_ids: list[str], param: str) -> dict:
    """{public id: File} for the project; an unknown (or other tenant's) id is a 404 like any unknown id."""
    from files.selectors import file_list

    found = {f.public_id: f for f in file_list(project=project).filter(public_id__in=set(file_ids))}
    for index, file_id in enumerate(file_ids):
        if file_id not in found:
            raise NotFoundError(f"No such File object: {file_id}", param=f"{param}[{index}]" if param else "file_id")
    return found


def _expiry(days: int | None, anchor):
    return anchor + timedelta(days=days) if days else None


def _check_usable(vector_store: VectorStore) -> None:
    if vector_store.expired_at is not None:
        raise InvalidRequest(f"Vector store '{vector_store.public_id}' has expired and can no longer be used.",
                             param="vector_store_id")


# --- vector stores ------------------------------------------------------------------------------


def vector_store_create(*, project: Project, name: str | None = None, description: str | None = None,
                        file_ids: list[str] | None = None, chunking_strategy: dict | None = None,
                        expires_after: dict | None = None, metadata: dict | None = None) -> VectorStore:
    strategy = chunking_strategy_resolve(chunking_strategy)
    with transaction.atomic():
        file_ids = list(file_ids or [])
        files = _files_resolve(project=project, file_ids=file_ids, param="file_ids")
        now = timezone.now()
        days = (expires_after or {}).get("days")
        store = VectorStore.objects.create(
            project=project, name=name or "", description=description or "", metadata=metadata or {},
            expires_after_days=days, last_active_at=now, expires_at=_expiry(days, now))
        _attach(store=store, items=[(files[file_id], strategy, {}) for file_id in dict.fromkeys(file_ids)])
    return store


def vector_store_modify(*, vector_store: VectorStore, **fields) -> VectorStore:
    with transaction.atomic():
        store = VectorStore.objects.select_for_update().get(pk=vector_store.pk)
        if "name" in fields:
            store.name = fields["name"] or ""
        if "metadata" in fields:
            store.metadata = fields["metadata"] or {}
        if "expires_after" in fields:
            store.expires_after_days = (fields["expires_after"] or {}).get("days")
            store.expires_at = _expiry(store.expires_after_days, store.last_active_at or timezone.now())
        store.save()
    return store


def vector_store_delete(*, vector_store: VectorStore) -> None:
    with transaction.atomic():
        # Lock the file rows first: an ingestion finishing now either commits before us (its chunks are then
        # deleted below) or finds its row gone.
        list(VectorStoreFile.objects.select_for_update().filter(vector_store=vector_store)
             .order_by("pk").values_list("pk", flat=True))
        vector_store.delete()


def vector_stores_touch(*, store_pks: list[int]) -> int:
    """Mark stores as used now: last_active_at, and expires_at with it. One UPDATE, at most once a minute a store
    (searches call this on every request)."""
    return _touch(VectorStore.objects.filter(pk__in=store_pks))


def vector_stores_touch_by_id(*, project: Project, vector_store_ids: list[str]) -> int:
    """The same, for stores a search was just asked of (search itself is a pure read: its callers touch)."""
    return _touch(VectorStore.objects.filter(project=project, public_id__in=vector_store_ids))


def _touch(stores) -> int:
    now = timezone.now()
    return stores.filter(expired_at__isnull=True).filter(
        Q(last_active_at__isnull=True) | Q(last_active_at__lt=now - TOUCH_EVERY)).update(
        last_active_at=now,
        expires_at=ExpressionWrapper(Value(now) + F("expires_after_days") * Value(timedelta(days=1)),
                                     output_field=DateTimeField()))


def vector_stores_expire() -> int:
    """Beat task body: stores past expires_at become ``expired``."""
    now = timezone.now()
    return VectorStore.objects.filter(expired_at__isnull=True, expires_at__lte=now).update(expired_at=now)


# --- vector store files ---------------------------------------------------------------------------


def _attach(*, store: VectorStore, items: list[tuple], batch: FileBatch | None = None) -> list[VectorStoreFile]:
    """(Re)queue files on a store inside the caller's transaction. Attaching a file already on the store
    re-ingests it with the new strategy and attributes (a newer generation wins over a running ingestion)."""
    if not items:
        return []
    by_file = {f.pk: (f, strategy, attributes) for f, strategy, attributes in items}
    existing = {v.file_id: v for v in VectorStoreFile.objects.select_for_update()
                .filter(vector_store=store, file_id__in=list(by_file)).order_by("pk")}
    rows, new = [], []
    sealed = provider_credentials.sealed_request()  # the request's header credentials, for the worker
    for file_pk, (file, strategy, attributes) in by_file.items():
        vsf = existing.get(file_pk)
        if vsf is None:
            vsf = VectorStoreFile(project_id=store.project_id, vector_store=store, file=file, batch=batch,
                                  chunking_strategy=strategy, attributes=attributes or {}, sealed_credentials=sealed)
            new.append(vsf)
        else:  # re-ingest: its old chunks go now, so an in-progress file is never searchable
            vsf.status, vsf.last_error, vsf.batch = VectorStoreFile.Status.IN_PROGRESS, None, batch
            vsf.chunking_strategy, vsf.attributes, vsf.generation = strategy, attributes or {}, vsf.generation + 1
            vsf.chunk_count = vsf.usage_bytes = vsf.attempts = 0
            vsf.claimed_by, vsf.heartbeat_at = None, timezone.now()  # a running attempt loses its claim
            vsf.sealed_credentials = sealed
            vsf.save(update_fields=["status", "last_error", "batch", "chunking_strategy", "attributes",
                                    "generation", "chunk_count", "usage_bytes", "attempts", "claimed_by",
                                    "heartbeat_at", "sealed_credentials"])
            Chunk.objects.filter(vector_store_file=vsf).delete()
        vsf.file = file
        rows.append(vsf)
    VectorStoreFile.objects.bulk_create(new, batch_size=500)
    enqueue_on_commit([v.pk for v in rows])
    return rows


def vector_store_file_create(*, vector_store: VectorStore, file_id: str, chunking_strategy: dict | None = None,
                             attributes: dict | None = None) -> VectorStoreFile:
    _check_usable(vector_store)
    strategy = chunking_strategy_resolve(chunking_strategy)
    with transaction.atomic():
        file = _files_resolve(project=vector_store.project, file_ids=[file_id], param="")[file_id]
        (vsf,) = _attach(store=vector_store, items=[(file, strategy, attributes)])
    vsf.vector_store = vector_store
    return vsf


def vector_store_file_update(*, vector_store_file: VectorStoreFile, attributes: dict | None) -> VectorStoreFile:
    VectorStoreFile.objects.filter(pk=vector_store_file.pk).update(attributes=attributes or {})
    vector_store_file.attributes = attributes or {}
    return vector_store_file


def vector_store_file_delete(*, vector_store_file: VectorStoreFile) -> None:
    """Detach (chunks go with it); the File itself stays."""
    with transaction.atomic():
        locked = VectorStoreFile.objects.select_for_update().filter(pk=vector_store_file.pk).first()
        if locked is not None:
            locked.delete()


# --- file batches ---------------------------------------------------------------------------------


def file_batch_create(*, vector_store: VectorStore, file_ids: list[str] | None = None,
                      files: list[dict] | None = None, chunking_strategy: dict | None = None,
                      attributes: dict | None = None) -> FileBatch:
    _check_usable(vector_store)
    if files:
        specs = [(item["file_id"], chunking_strategy_resolve(item.get("chunking_strategy"),
                                                             param_prefix=f"files[{i}]."), item.get("attributes"))
                 for i, item in enumerate(files)]
        param = "files"
    else:
        strategy = chunking_strategy_resolve(chunking_strategy)
        specs = [(file_id, strategy, attributes) for file_id in file_ids or []]
        param = "file_ids"
    with transaction.atomic():
        found = _files_resolve(project=vector_store.project, file_ids=[s[0] for s in specs], param=param)
        batch = FileBatch.objects.create(project_id=vector_store.project_id, vector_store=vector_store)
        _attach(store=vector_store, batch=batch,
                items=[(found[file_id], strategy, attrs) for file_id, strategy, attrs in specs])
    return batch


def file_batch_cancel(*, batch: FileBatch) -> FileBatch:
    """Pending files become ``cancelled`` (compare-and-set: one that just completed stays completed)."""
    with transaction.atomic():
        cancelled = VectorStoreFile.objects.filter(batch=batch, status=VectorStoreFile.Status.IN_PROGRESS).update(
            status=VectorStoreFile.Status.CANCELLED, claimed_by=None, sealed_credentials=None)
        if cancelled and batch.cancelled_at is None:
            batch.cancelled_at = timezone.now()
            FileBatch.objects.filter(pk=batch.pk).update(cancelled_at=batch.cancelled_at)
    return batch
