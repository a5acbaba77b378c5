"""The HNSW index for settings.EMBEDDING_DIMENSIONS (other sizes: `manage.py reindex` creates them), on the table
the vectors were in until 0006 moved them (and their indexes) to retrieval_chunkvector."""

from django.conf import settings
from django.db import migrations

TABLE = "retrieval_chunk"


def create_index(apps, schema_editor):
    from retrieval.indexes import ensure_hnsw_index

    ensure_hnsw_index(settings.EMBEDDING_DIMENSIONS, using=schema_editor.connection, table=TABLE)


def drop_indexes(apps, schema_editor):
    from retrieval.indexes import drop_hnsw_index, existing_index_dimensions

    for dims in existing_index_dimensions(using=schema_editor.connection, table=TABLE):
        drop_hnsw_index(dims, using=schema_editor.connection, table=TABLE)


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0002_vector_stores")]
    operations = [migrations.RunPython(create_index, drop_indexes)]
