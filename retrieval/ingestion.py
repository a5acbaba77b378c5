"""Ingestion of one vector-store file: read → parse → chunk → embed → store, status driven.

The slow part (parsing, the embeddings call) runs with no transaction open. The result is written in one short
transaction that locks the file row, checks it is still the same ``in_progress`` generation (compare-and-set),
replaces the file's chunks (COPY; their vectors go to the pending table, which the indexer task moves into the HNSW
index afterwards) and marks it ``completed``. So a task delivered twice, a cancelled batch or a
detached file can never leave duplicate or orphan chunks.
"""

from __future__ import annotations

import logging
import struct
import sys
from array import array
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import connection, transaction
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

from retrieval import embeddings, vector_index
from retrieval.chunking import chunk_pages
from retrieval.models import Chunk, VectorStoreFile
from retrieval.parsing import INVALID_FILE, ParseError, parse_document

logger = logging.getLogger(__name__)

CHUNKER_VERSION = 1  # bump when parsing/chunking changes in a way that should re-chunk stored files
MAX_FILE_CHARS = 20_000_000  # ~5M tokens: larger files fail with invalid_file instead of exhausting memory
Status = VectorStoreFile.Status


@dataclass
class Prepared:
    chunks: list
    vectors: list[array] | None
    config: embeddings.EmbeddingConfig | None

    @property
    def usage_bytes(self) -> int:
        return sum(len(c.text.encode()) for c in self.chunks)


def read_file_bytes(file) -> bytes:
    with default_storage.open(file.storage_name, "rb") as handle:
        return handle.read()


def prepare(vsf: VectorStoreFile, *, config: embeddings.EmbeddingConfig | None) -> Prepared:
    """Parse, chunk and embed. Raises ParseError for unusable files; embedding failures degrade to keyword-only."""
    pages = parse_document(read_file_bytes(vsf.file), vsf.file.filename, vsf.file.content_type)
    if sum(len(p.text) for p in pages) > MAX_FILE_CHARS:
        raise ParseError(INVALID_FILE, f"The file has more than {MAX_FILE_CHARS:,} characters of text.")
    static = vsf.chunking_strategy["static"]
    chunks = chunk_pages(pages, max_tokens=static["max_chunk_size_tokens"], overlap=static["chunk_overlap_tokens"])
    if not chunks:
        raise ParseError(INVALID_FILE, "No text could be extracted from the file.")
    vectors = None
    if config is not None:
        try:
            vectors = embeddings.embed([c.text for c in chunks], config=config,
                                       token_counts=[c.token_count for c in chunks])
        except embeddings.EmbeddingError as exc:
            logger.warning("Embedding %s failed, indexing it for keyword search only: %s", vsf.file_id, exc)
    return Prepared(chunks=chunks, vectors=vectors, config=config if vectors is not None else None)


def vector_store_file_ingest(*, vsf_id: int) -> str:
    """Process a queued file. Returns the outcome: completed, failed or skipped (not ours any more)."""
    vsf = VectorStoreFile.objects.select_related("file").filter(pk=vsf_id, status=Status.IN_PROGRESS).first()
    if vsf is None:
        return "skipped"
    try:
        prepared = prepare(vsf, config=embeddings.current_config())
    except ParseError as exc:
        return "failed" if _fail(vsf, code=exc.code, message=exc.message) else "skipped"
    except OSError as exc:
        logger.warning("Reading %s failed: %s", vsf.file.storage_name, exc)
        return ("failed" if _fail(vsf, code="server_error", message="The file's content could not be read.")
                else "skipped")
    return "completed" if _store(vsf, prepared, expect=Status.IN_PROGRESS) else "skipped"


def vector_store_file_fail(*, vsf_id: int, message: str = "An internal error occurred while processing the file.",
                           code: str = "server_error") -> bool:
    """Give up on a file (the task's failure hook, after its retries)."""
    return bool(VectorStoreFile.objects.filter(pk=vsf_id, status=Status.IN_PROGRESS).update(
        status=Status.FAILED, last_error={"code": code, "message": message}))


def vector_store_file_reindex(*, vsf_id: int, config: embeddings.EmbeddingConfig | None) -> str:
    """Re-chunk and re-embed a completed file in place (manage.py reindex). Searches see the old chunks until the
    new ones replace them in one transaction."""
    vsf = VectorStoreFile.objects.select_related("file").filter(pk=vsf_id, status=Status.COMPLETED).first()
    if vsf is None:
        return "skipped"
    try:
        prepared = prepare(vsf, config=config)
    except (ParseError, OSError) as exc:
        logger.warning("Reindexing %s failed; keeping its chunks: %s", vsf.file_id, exc)
        return "failed"
    if config is not None and prepared.vectors is None:
        return "failed"  # the provider failed: keep the old vectors rather than degrade to keyword-only
    return "completed" if _store(vsf, prepared, expect=Status.COMPLETED) else "skipped"


def _fail(vsf: VectorStoreFile, *, code: str, message: str) -> bool:
    return bool(VectorStoreFile.objects.filter(pk=vsf.pk, status=Status.IN_PROGRESS, generation=vsf.generation)
                .update(status=Status.FAILED, last_error={"code": code, "message": message}))


def _store(vsf: VectorStoreFile, prepared: Prepared, *, expect: str) -> bool:
    with transaction.atomic():
        locked = (VectorStoreFile.objects.select_for_update()
                  .filter(pk=vsf.pk, status=expect, generation=vsf.generation).first())
        if locked is None:
            return False  # cancelled, detached or re-queued meanwhile: drop this result
        Chunk.objects.filter(vector_store_file_id=vsf.pk).delete()
        _copy_chunks(vsf, prepared)
        config = prepared.config
        VectorStoreFile.objects.filter(pk=vsf.pk).update(
            status=Status.COMPLETED, last_error=None, usage_bytes=prepared.usage_bytes,
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
