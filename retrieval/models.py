"""Vector stores, their files and batches, and the searchable chunks.

Where vectors live: ingestion writes each chunk's embedding to ``PendingChunkVector`` (no vector index, so storing
a file costs no graph inserts); the indexer task (vector_index.py) later moves it to ``ChunkVector``, the table
with the HNSW index. A vector is in exactly one of the two; search reads both (the pending one exactly). Postgres
deletes a chunk's vector with the chunk (ON DELETE CASCADE, migration 0006).

Embedding dimension: ``embedding`` is an *untyped* pgvector column, so vectors of any size can be stored. The
HNSW index is a partial expression index per dimension D,
``USING hnsw ((embedding::vector(D)) vector_cosine_ops) WHERE vector_dims(embedding) = D``, created for
``settings.EMBEDDING_DIMENSIONS`` by migrations and by ``manage.py reindex`` (see ``retrieval/indexes.py``).
Changing EMBEDDING_DIMENSIONS (or EMBEDDING_MODEL) therefore needs no schema migration: ``reindex`` creates the
index for the new size, re-embeds file by file, then drops the index nobody uses any more. Until a file is
re-embedded, vector search skips it (its model/dimension differ from the configuration) and keyword search
still finds it.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models.functions import Now
from pgvector.django import VectorField

from tenancy.models import TenantModel

TEXT_SEARCH_CONFIG = "english"


class VectorStore(TenantModel):
    id_kind = "vector_store"

    name = models.CharField(max_length=256, default="", blank=True)
    description = models.TextField(default="", blank=True)
    metadata = models.JSONField(default=dict)
    expires_after_days = models.PositiveSmallIntegerField(null=True)
    expires_at = models.DateTimeField(null=True)
    last_active_at = models.DateTimeField(null=True)
    expired_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "id"]),
            models.Index(fields=["expires_at"], condition=models.Q(expired_at__isnull=True),
                         name="retrieval_vs_expiring_idx"),
        ]


class FileBatch(TenantModel):
    id_kind = "file_batch"

    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="batches")
    cancelled_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["vector_store", "id"])]


class VectorStoreFile(models.Model):
    """A File attached to a store. Its API id is the File's id; ``pk`` is internal and the pagination key."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey("tenancy.Project", on_delete=models.CASCADE, related_name="+", db_index=False)
    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="files", db_index=False)
    file = models.ForeignKey("files.File", on_delete=models.CASCADE, related_name="+")
    batch = models.ForeignKey(FileBatch, on_delete=models.SET_NULL, null=True, related_name="files", db_index=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_PROGRESS)
    last_error = models.JSONField(null=True)
    chunking_strategy = models.JSONField()
    attributes = models.JSONField(default=dict)
    usage_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped whenever the file is (re)queued: a stale ingestion can never overwrite a newer one.
    generation = models.PositiveIntegerField(default=0)
    # The ingestion lifecycle (ingestion.py): the worker that claimed the file, its last heartbeat (or when the
    # file was last sent to the queue, while nobody holds it) and how many claims it took. The sweeper re-sends a
    # silent file (bounded by INGESTION_MAX_ATTEMPTS), then fails it.
    claimed_by = models.CharField(max_length=64, null=True)
    heartbeat_at = models.DateTimeField(null=True, db_default=Now())
    attempts = models.PositiveSmallIntegerField(default=0)
    # How the stored chunks were made (what reindex compares against the configuration).
    chunk_count = models.PositiveIntegerField(default=0)
    keyword_only = models.BooleanField(default=False)  # no embeddings: found by full-text search only
    embedding_model = models.CharField(max_length=256, blank=True, default="")
    embedding_dimensions = models.PositiveIntegerField(null=True)
    chunker_version = models.PositiveSmallIntegerField(default=0)
    # The provider credentials the attaching request brought in headers, as a Fernet token for the worker
    # (tenancy/credentials.py); cleared when the ingestion ends.
    sealed_credentials = models.TextField(null=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["vector_store", "file"], name="retrieval_vsf_unique")]
        indexes = [
            models.Index(fields=["vector_store", "status", "id"]),
            models.Index(fields=["batch", "status"]),
            models.Index(fields=["project", "vector_store"]),
            # the indexer asks "is anything being ingested?" (vector_index.py)
            models.Index(fields=["status"], condition=models.Q(status="in_progress"), name="retrieval_vsf_busy_idx"),
        ]


class Chunk(models.Model):
    """One token window of a file. ``tsv`` is generated by Postgres; the embedding is a ChunkVector row."""

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey("tenancy.Project", on_delete=models.CASCADE, related_name="+", db_index=False)
    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="+")
    vector_store_file = models.ForeignKey(VectorStoreFile, on_delete=models.CASCADE, related_name="chunks",
                                          db_index=False)
    file = models.ForeignKey("files.File", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True)
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    tsv = models.GeneratedField(
        expression=SearchVector("text", config=TEXT_SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        indexes = [
            models.Index(fields=["vector_store_file", "position"]),
            GinIndex(fields=["tsv"], name="retrieval_chunk_tsv_gin"),
        ]


class _Vector(models.Model):
    """A chunk's embedding, with the chunk's store and file so that searches filter without a join. The foreign
    key to the chunk is Postgres' own (ON DELETE CASCADE, migration 0006): deleting chunks needs no ORM cascade."""

    chunk = models.OneToOneField(Chunk, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False,
                                 related_name="+")
    vector_store_id = models.BigIntegerField()
    vector_store_file_id = models.BigIntegerField()
    embedding = VectorField()

    class Meta:
        abstract = True


class ChunkVector(_Vector):
    """An indexed vector: the HNSW indexes (indexes.py) are on this table."""

    class Meta:
        indexes = [models.Index(fields=["vector_store_id"]), models.Index(fields=["vector_store_file_id"])]


class PendingChunkVector(_Vector):
    """A vector not yet in the HNSW index; searches scan these exactly."""

    queued_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["vector_store_id"]), models.Index(fields=["vector_store_file_id"])]
