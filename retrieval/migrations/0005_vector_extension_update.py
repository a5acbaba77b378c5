"""Bring the pgvector extension in the database up to the version the server has installed (the embedded server
moved from pgvector 0.6.2 to 0.8: faster HNSW inserts, iterative index scans). A database user that may not
alter the extension keeps the version it has: every code path works on 0.6 too."""

from django.db import migrations

UPDATE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
               WHERE e.extname = 'vector' AND e.extversion IS DISTINCT FROM a.default_version) THEN
        ALTER EXTENSION vector UPDATE;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'pgvector was not updated (%): run ALTER EXTENSION vector UPDATE as its owner', SQLERRM;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0004_chunk_tsv_storage_main")]
    operations = [migrations.RunSQL(UPDATE, migrations.RunSQL.noop)]
