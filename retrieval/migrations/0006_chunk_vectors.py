"""Vectors move out of retrieval_chunk: indexed ones to retrieval_chunkvector (which gets the HNSW indexes), new
ones to retrieval_pendingchunkvector until the indexer moves them (see models.py). Existing vectors are copied
to retrieval_chunkvector before the old column goes; its HNSW indexes are rebuilt there (one bulk build)."""

import django.db.models.deletion
import django.db.models.functions.datetime
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models

VECTOR_TABLES = ("retrieval_chunkvector", "retrieval_pendingchunkvector")


def move_vectors(apps, schema_editor):
    from retrieval import indexes

    using = schema_editor.connection
    with using.cursor() as cursor:
        # The copy is one pass over the vectors; the index build after it is the long part on a big database, and
        # far faster when the graph fits in memory (pgvector warns when it does not).
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        cursor.execute("INSERT INTO retrieval_chunkvector (chunk_id, vector_store_id, vector_store_file_id, embedding) "
                       "SELECT id, vector_store_id, vector_store_file_id, embedding FROM retrieval_chunk "
                       "WHERE embedding IS NOT NULL")
    old = indexes.existing_index_dimensions(using=using, table="retrieval_chunk")
    for dims in old:
        indexes.drop_hnsw_index(dims, using=using, table="retrieval_chunk")
    for dims in sorted({*old, settings.EMBEDDING_DIMENSIONS}):
        indexes.ensure_hnsw_index(dims, using=using)


def move_vectors_back(apps, schema_editor):
    from retrieval import indexes

    using = schema_editor.connection
    with using.cursor() as cursor:
        cursor.execute("UPDATE retrieval_chunk c SET embedding = v.embedding FROM (SELECT chunk_id, embedding FROM "
                       "retrieval_chunkvector UNION ALL SELECT chunk_id, embedding FROM retrieval_pendingchunkvector) v "
                       "WHERE v.chunk_id = c.id")
    for dims in indexes.existing_index_dimensions(using=using):
        indexes.ensure_hnsw_index(dims, using=using, table="retrieval_chunk")


class Migration(migrations.Migration):

    dependencies = [
        ('assistants', '0001_initial'),
        ('files', '0002_file_project_id_index'),
        ('retrieval', '0005_vector_extension_update'),
    ]

    operations = [
        migrations.CreateModel(
            name='ChunkVector',
            fields=[
                ('chunk', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='retrieval.chunk')),
                ('vector_store_id', models.BigIntegerField()),
                ('vector_store_file_id', models.BigIntegerField()),
                ('embedding', pgvector.django.vector.VectorField()),
            ],
        ),
        migrations.CreateModel(
            name='PendingChunkVector',
            fields=[
                ('chunk', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='retrieval.chunk')),
                ('vector_store_id', models.BigIntegerField()),
                ('vector_store_file_id', models.BigIntegerField()),
                ('embedding', pgvector.django.vector.VectorField()),
                ('queued_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
        ),
        migrations.AddIndex(
            model_name='vectorstorefile',
            index=models.Index(condition=models.Q(('status', 'in_progress')), fields=['status'], name='retrieval_vsf_busy_idx'),
        ),
        migrations.AddIndex(
            model_name='chunkvector',
            index=models.Index(fields=['vector_store_id'], name='retrieval_c_vector__edbe2e_idx'),
        ),
        migrations.AddIndex(
            model_name='chunkvector',
            index=models.Index(fields=['vector_store_file_id'], name='retrieval_c_vector__e16c65_idx'),
        ),
        migrations.AddIndex(
            model_name='pendingchunkvector',
            index=models.Index(fields=['vector_store_id'], name='retrieval_p_vector__40eb12_idx'),
        ),
        migrations.AddIndex(
            model_name='pendingchunkvector',
            index=models.Index(fields=['vector_store_file_id'], name='retrieval_p_vector__d0975a_idx'),
        ),
        migrations.RunSQL(
            [f"ALTER TABLE {t} ADD CONSTRAINT {t}_chunk_fk FOREIGN KEY (chunk_id) REFERENCES retrieval_chunk (id) "
             "ON DELETE CASCADE" for t in VECTOR_TABLES],
            [f"ALTER TABLE {t} DROP CONSTRAINT {t}_chunk_fk" for t in VECTOR_TABLES],
        ),
        migrations.RunPython(move_vectors, move_vectors_back),
        migrations.RemoveField(
            model_name='chunk',
            name='embedding',
        ),
    ]
