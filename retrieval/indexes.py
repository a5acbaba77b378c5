"""The HNSW indexes on ``retrieval_chunkvector.embedding``: one partial expression index per embedding dimension.

``embedding`` is an untyped ``vector`` column; HNSW needs a fixed size, so each index casts to ``vector(D)`` and
covers only rows whose vectors have D dimensions. Queries must use the same expressions (see search.py).
``table`` is for migrations only: before 0006 the vectors (and their indexes) were on ``retrieval_chunk``.
"""

from __future__ import annotations

import logging

from django.db import connection

logger = logging.getLogger(__name__)

HNSW_MAX_DIMENSIONS = 2000  # pgvector's limit for the `vector` type
TABLE = "retrieval_chunkvector"


def index_name(dims: int, *, table: str = TABLE) -> str:
    return f"{table}_embedding_hnsw_{int(dims)}"


def ensure_hnsw_index(dims: int, *, using=None, table: str = TABLE) -> bool:
    """Create the index for ``dims`` unless it exists; False when pgvector cannot index that size."""
    dims = int(dims)
    if not 1 <= dims <= HNSW_MAX_DIMENSIONS:
        logger.warning("EMBEDDING_DIMENSIONS=%s exceeds HNSW's limit (%s); vector search will scan exactly.",
                       dims, HNSW_MAX_DIMENSIONS)
        return False
    with (using or connection).cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {index_name(dims, table=table)} ON {table} "
            f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE vector_dims(embedding) = {dims}"
        )
    return True


def existing_index_dimensions(*, using=None, table: str = TABLE) -> list[int]:
    with (using or connection).cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
                       [table, f"{table}_embedding_hnsw_%"])
        names = [row[0] for row in cursor.fetchall()]
    return sorted(int(name.rsplit("_", 1)[1]) for name in names)


def drop_hnsw_index(dims: int, *, using=None, table: str = TABLE) -> None:
    with (using or connection).cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {index_name(dims, table=table)}")
