"""Migration 0006 moves the vectors of an existing database out of retrieval_chunk, and back when reversed."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from retrieval import indexes
from retrieval.models import Chunk, ChunkVector, VectorStoreFile
from retrieval.services import vector_store_create

BEFORE = [("retrieval", "0005_vector_extension_update")]
AFTER = [("retrieval", "0006_chunk_vectors")]
VECTOR = "[" + ",".join(str(i / 1536) for i in range(1536)) + "]"


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def chunk_columns() -> set[str]:
    with connection.cursor() as cursor:
        return {c.name for c in connection.introspection.get_table_description(cursor, "retrieval_chunk")}


@pytest.mark.django_db(transaction=True)
def test_existing_vectors_move_to_the_indexed_table_and_back(project, make_file):
    store = vector_store_create(project=project, file_ids=[make_file(project, "a.txt", "old vectors").public_id])
    vsf = VectorStoreFile.objects.get(vector_store=store)
    try:
        migrate(BEFORE)
        assert "embedding" in chunk_columns()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO retrieval_chunk (project_id, vector_store_id, vector_store_file_id, file_id, position, "
                "text, token_count, embedding) VALUES (%s, %s, %s, %s, 0, 'old', 1, %s::vector), "
                "(%s, %s, %s, %s, 1, 'keyword only', 2, NULL) RETURNING id",
                [project.pk, store.pk, vsf.pk, vsf.file_id, VECTOR, project.pk, store.pk, vsf.pk, vsf.file_id])
            with_vector = cursor.fetchone()[0]
        assert indexes.existing_index_dimensions(table="retrieval_chunk") == [1536]

        migrate(AFTER)
        assert "embedding" not in chunk_columns()
        assert Chunk.objects.filter(vector_store_file=vsf).count() == 2
        [moved] = ChunkVector.objects.all()
        assert moved.chunk_id == with_vector and (moved.vector_store_id, moved.vector_store_file_id) == (
            store.pk, vsf.pk)
        assert [round(x * 1536) for x in moved.embedding] == list(range(1536))
        assert indexes.existing_index_dimensions() == [1536]
        assert indexes.existing_index_dimensions(table="retrieval_chunk") == []

        migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, embedding IS NOT NULL FROM retrieval_chunk ORDER BY id")
            assert cursor.fetchall() == [(with_vector, True), (with_vector + 1, False)]
        assert indexes.existing_index_dimensions(table="retrieval_chunk") == [1536]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
