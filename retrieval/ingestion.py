"""Ingestion of one vector-store file: read → parse → chunk → embed → store, status driven.

Lifecycle, like a run's: the task *claims* the file (compare-and-set on ``claimed_by``, counting ``attempts``), a
heartbeat thread stamps ``heartbeat_at`` while it works (heartbeat.py), and beat's sweeper
(``vector_store_files_sweep``) re-sends a file nobody is beating for (its worker died, or its task was never
delivered: the broker was down when it was attached) and fails it once it has used ``INGESTION_MAX_ATTEMPTS``. So a
file always ends ``completed``, ``failed`` or ``cancelled``.

The slow part (parsing in a child process, the embeddings call) runs with no transaction open. The result is written
in one short transaction that locks the file row, checks it is still the same claim of the same generation, replaces
the file's chunks (COPY; their vectors go to the pending table, which the indexer task moves into the HNSW index
afterwards) and marks it ``completed``. So a task delivered twice, an attempt that lost its claim, a cancelled batch
or a detached file can never leave duplicate or orphan chunks.
"""

from __future__ import annotations

import logging
import struct
import sys
import uuid
from array import array
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

from files import storage
from retrieval import embeddings, heartbeat, vector_index
from retrieval.extract import ExtractCrashed, Limits, extract_chunks, release_memory
from retrieval.models import Chunk, VectorStoreFile
from retrieval.parsing import ParseError
from tenancy import credentials as provider_credentials

logger = logging.getLogger(__name__)

TRIM_AFTER_BYTES = 256 * 1024  # malloc_trim walks the heap: worth it after a big file, not after every small one
CHUNKER_VERSION = 1  # bump when parsing/chunking changes in a way that should re-chunk stored files
Status = VectorStoreFile.Status


@dataclass
class Prepared:
    chunks: list
    vectors: list[array] | None
    config: embeddings.EmbeddingConfig | None

    @property
    def usage_bytes(self) -> int:
        return sum(len(c.text.encode()) for c in self.chunks)


def limits() -> Limits:
    return Limits(max_archive_bytes=settings.INGESTION_MAX_ARCHIVE_BYTES,
                  max_archive_xml_bytes=settings.INGESTION_MAX_ARCHIVE_XML_BYTES,
                  max_chunks=settings.INGESTION_MAX_CHUNKS, max_tokens=settings.INGESTION_MAX_TOKENS)


def prepare(vsf: VectorStoreFile, *, config: embeddings.EmbeddingConfig | None) -> Prepared:
    """Parse, chunk and embed. Raises ParseError for unusable files (or over a limit), ExtractCrashed if parsing
    died or ran out of time, OSError if the bytes cannot be read; embedding failures degrade to keyword-only."""
    static = vsf.chunking_strategy["static"]
    chunks = extract_chunks(storage.read_bytes(vsf.file.storage_name), vsf.file.filename, vsf.file.content_type,
                            max_chunk_tokens=static["max_chunk_size_tokens"],
                            overlap_tokens=static["chunk_overlap_tokens"], limits=limits(),
                            timeout=settings.INGESTION_TIMEOUT_SECONDS)
    vectors = None
    if config is not None:
        try:
            vectors = embeddings.embed([c.text for c in chunks], config=config,
                                       token_counts=[c.token_count for c in chunks])
        except embeddings.EmbeddingError as exc:
            logger.warning("Embedding %s failed, indexing it for keyword search only: %s", vsf.file_id, exc)
    return Prepared(chunks=chunks, vectors=vectors, config=config if vectors is not None else None)


def vector_store_file_claim(*, vsf_id: int, token: str) -> VectorStoreFile | None:
    """The task's entry: take an in-progress file nobody holds (or whose holder went silent, or that this very
    task held before a redelivery), counting the attempt. None: not ours (done, held by a live worker, or out of
    attempts, which the sweeper then fails)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.INGESTION_HEARTBEAT_TIMEOUT_SECONDS)
    won = (VectorStoreFile.objects
           .filter(pk=vsf_id, status=Status.IN_PROGRESS, attempts__lt=settings.INGESTION_MAX_ATTEMPTS)
           .filter(Q(claimed_by__isnull=True) | Q(claimed_by=token) | Q(heartbeat_at__lt=stale))
           .update(claimed_by=token, heartbeat_at=now, attempts=F("attempts") + 1))
    if not won:
        return None
    return VectorStoreFile.objects.select_related("file").filter(pk=vsf_id, claimed_by=token).first()


def vector_store_file_ingest(*, vsf_id: int, task_id: str | None = None) -> str:
    """Process a queued file. Returns the outcome: completed, failed or skipped (not ours any more)."""
    token = task_id or uuid.uuid4().hex
    vsf = vector_store_file_claim(vsf_id=vsf_id, token=token)
    if vsf is None:
        return "skipped"
    try:
        with heartbeat.beating(token, timeout=settings.INGESTION_TIMEOUT_SECONDS):
            try:
                # the attaching request's header credentials, else the project's (tenancy/credentials.py)
                with provider_credentials.scope(project_id=vsf.project_id, sealed=vsf.sealed_credentials):
                    prepared = prepare(vsf, config=embeddings.current_config())
            except ParseError as exc:
                return "failed" if _fail(vsf, code=exc.code, message=exc.message) else "skipped"
            except ExtractCrashed as exc:
                logger.warning("Parsing %s failed: %s", vsf.file_id, exc)
                return ("failed" if _fail(vsf, code="invalid_file", message=f"The file could not be processed: {exc}.")
                        else "skipped")
            except OSError as exc:
                logger.warning("Reading %s failed: %s", vsf.file.storage_name, exc)
                return ("failed" if _fail(vsf, code="server_error", message="The file's content could not be read.")
                        else "skipped")
            return "completed" if _store(vsf, prepared, expect=Status.IN_PROGRESS) else "skipped"
    finally:
        if vsf.file.bytes >= TRIM_AFTER_BYTES:
            release_memory()  # a big file's chunks and vectors are freed now: give their pages back


def vector_store_file_fail(*, vsf_id: int, task_id: str | None = None,
                           message: str = "An internal error occurred while processing the file.",
                           code: str = "server_error") -> bool:
    """Give up on a file (the task's failure hook, after its retries), unless another task holds it now."""
    return bool(VectorStoreFile.objects.filter(pk=vsf_id, status=Status.IN_PROGRESS)
                .filter(Q(claimed_by__isnull=True) | Q(claimed_by=task_id))
                .update(status=Status.FAILED, claimed_by=None, sealed_credentials=None,
                        last_error={"code": code, "message": message}))


def vector_store_files_sweep() -> dict:
    """Beat: every in-progress file nobody has beaten for INGESTION_HEARTBEAT_TIMEOUT_SECONDS (its worker died, its
    attempt ran past INGESTION_TIMEOUT_SECONDS, or its task was lost) is sent again, released from its old
    claim, or failed once it has used its attempts."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.INGESTION_HEARTBEAT_TIMEOUT_SECONDS)
    silent = Q(status=Status.IN_PROGRESS) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
    counts = {"resent": 0, "failed": 0}
    while True:
        with transaction.atomic():
            rows = list(VectorStoreFile.objects.select_for_update(skip_locked=True).filter(silent)
                        .order_by("pk").values_list("pk", "attempts")[:500])
            spent = [pk for pk, attempts in rows if attempts >= settings.INGESTION_MAX_ATTEMPTS]
            again = [pk for pk, attempts in rows if attempts < settings.INGESTION_MAX_ATTEMPTS]
            if spent:
                counts["failed"] += VectorStoreFile.objects.filter(pk__in=spent).update(
                    status=Status.FAILED, claimed_by=None, sealed_credentials=None, last_error={
                        "code": "server_error",
                        "message": "The worker processing this file stopped unexpectedly, and so did its retries."})
                logger.warning("ingestion gave up on %d file(s) after %d attempts", len(spent),
                               settings.INGESTION_MAX_ATTEMPTS)
            if again:
                counts["resent"] += VectorStoreFile.objects.filter(pk__in=again).update(claimed_by=None,
                                                                                        heartbeat_at=now)
                logger.warning("ingestion of %d file(s) went silent; sending them again", len(again))
                enqueue_on_commit(again)
        if len(rows) < 500:
            return counts


def enqueue_on_commit(vsf_ids: list[int]) -> None:
    """Send the files' tasks once the transaction commits. A broker that is down loses nothing: the rows are
    committed with a fresh ``heartbeat_at`` and the sweeper sends them when that goes stale."""
    from retrieval.tasks import vector_store_file_ingest as ingest_task

    def send() -> None:
        for vsf_id in vsf_ids:
            try:
                ingest_task.delay(vsf_id)
            except Exception:
                logger.exception("could not send the ingestion of %d file(s); the sweeper will", len(vsf_ids))
                return  # the broker is down: the rest would wait out the same retries

    if vsf_ids:
        transaction.on_commit(send)


def vector_store_file_reindex(*, vsf_id: int, config: embeddings.EmbeddingConfig | None) -> str:
    """Re-chunk and re-embed a completed file in place (manage.py reindex). Searches see the old chunks until the
    new ones replace them in one transaction."""
    vsf = VectorStoreFile.objects.select_related("file").filter(pk=vsf_id, status=Status.COMPLETED).first()
    if vsf is None:
        return "skipped"
    try:
        with provider_credentials.scope(project_id=vsf.project_id):
            prepared = prepare(vsf, config=config)
    except (ParseError, ExtractCrashed, OSError) as exc:
        logger.warning("Reindexing %s failed; keeping its chunks: %s", vsf.file_id, exc)
        return "failed"
    if config is not None and prepared.vectors is None:
        return "failed"  # the provider failed: keep the old vectors rather than degrade to keyword-only
    return "completed" if _store(vsf, prepared, expect=Status.COMPLETED) else "skipped"


def _ours(vsf: VectorStoreFile, *, status: str):
    """The file row still as this attempt claimed it (same status, generation and claim)."""
    return VectorStoreFile.objects.filter(pk=vsf.pk, status=status, generation=vsf.generation,
                                          claimed_by=vsf.claimed_by)


def _fail(vsf: VectorStoreFile, *, code: str, message: str) -> bool:
    return bool(_ours(vsf, status=Status.IN_PROGRESS).update(status=Status.FAILED, claimed_by=None,
                                                           sealed_credentials=None,
                                                           last_error={"code": code, "message": message}))


def _store(vsf: VectorStoreFile, prepared: Prepared, *, expect: str) -> bool:
    with transaction.atomic():
        locked = _ours(vsf, status=expect).select_for_update().first()
        if locked is None:
            return False  # cancelled, detached, re-queued or taken over meanwhile: drop this result
        Chunk.objects.filter(vector_store_file_id=vsf.pk).delete()
        _copy_chunks(vsf, prepared)
        config = prepared.config
        VectorStoreFile.objects.filter(pk=vsf.pk).update(
            status=Status.COMPLETED, last_error=None, claimed_by=None, sealed_credentials=None,
            usage_bytes=prepared.usage_bytes,
            chunk_count=len(prepared.chunks), keyword_only=config is None,
            embedding_model=config.model if config else "", embedding_dimensions=config.dimensions if config else None,
            chunker_version=CHUNKER_VERSION)
        from retrieval.services import vector_stores_touch

        vector_stores_touch(store_pks=[vsf.vector_store_id])
        if prepared.vectors is not None:
            transaction.on_commit(vector_index.schedule)
    return True


_CHUNK_COLUMNS = ("id", "project_id", "vector_store_id", "vector_store_file_id", "file_id", "position", "page",
                  "text", "token_count")
_CHUNK_TYPES = ["int8", "int8", "int8", "int8", "int8", "int4", "int4", "text", "int4"]
_VECTOR_COLUMNS = ("chunk_id", "vector_store_id", "vector_store_file_id", "embedding")
_VECTOR_TYPES = ["int8", "int8", "int8", "vector"]


class _Wire(bytes):
    """A vector already in pgvector's binary format."""


class _WireDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        return obj


def _wire(vector: array) -> _Wire:
    """pgvector's binary input: uint16 dim, uint16 unused, then big-endian float32s."""
    values = array("f", vector)
    if sys.byteorder == "little":
        values.byteswap()
    return _Wire(struct.pack(">HH", len(values), 0) + values.tobytes())


def _copy_chunks(vsf: VectorStoreFile, prepared: Prepared) -> None:
    """Binary COPY of the chunks, then of their vectors into the pending table (no HNSW work here: the indexer
    does it later, see vector_index.py). Vectors go over as float32 bytes, never formatted as text."""
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # the psycopg cursor
        cursor.execute("SELECT nextval(pg_get_serial_sequence('retrieval_chunk', 'id')) FROM generate_series(1, %s)",
                       [len(prepared.chunks)])
        ids = [row[0] for row in cursor.fetchall()]
        with cursor.copy(f"COPY retrieval_chunk ({', '.join(_CHUNK_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_CHUNK_TYPES)
            for chunk_id, chunk in zip(ids, prepared.chunks, strict=True):
                copy.write_row((chunk_id, vsf.project_id, vsf.vector_store_id, vsf.pk, vsf.file_id, chunk.position,
                                chunk.page, chunk.text, chunk.token_count))
        if prepared.vectors is None:
            return
        info = TypeInfo.fetch(cursor.connection, "vector")
        info.register(cursor)
        cursor.adapters.register_dumper(_Wire, type("", (_WireDumper,), {"oid": info.oid}))
        with cursor.copy(f"COPY retrieval_pendingchunkvector ({', '.join(_VECTOR_COLUMNS)}) "
                         "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_VECTOR_TYPES)
            for chunk_id, vector in zip(ids, prepared.vectors, strict=True):
                copy.write_row((chunk_id, vsf.vector_store_id, vsf.pk, _wire(vector)))
