"""The HNSW index for settings.EMBEDDING_DIMENSIONS (other sizes: `manage.py reindex` creates them)."""

from django.conf import settings
from django.db import migrations


def create_index(apps, schema_editor):
    from retrieval.indexes import ensure_hnsw_index

    ensure_hnsw_index(settings.EMBEDDING_DIMENSIONS, using=schema_editor.connection)


def drop_indexes(apps, schema_editor):
    from retrieval.indexes import drop_hnsw_index, existing_index_dimensions

    for dims in existing_index_dimensions(using=schema_editor.connection):
        drop_hnsw_index(dims, using=schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0002_vector_stores")]
    operations = [migrations.RunPython(create_index, drop_indexes)]
