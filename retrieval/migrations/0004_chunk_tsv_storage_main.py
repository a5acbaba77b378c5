"""Keep each chunk's tsvector inline in the heap row (compressed) instead of in the TOAST table: ranking reads it
for every full-text candidate, and a TOAST lookup per candidate was most of the full-text query's time."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0003_embedding_hnsw_index")]
    operations = [migrations.RunSQL(
        "ALTER TABLE retrieval_chunk ALTER COLUMN tsv SET STORAGE MAIN",
        "ALTER TABLE retrieval_chunk ALTER COLUMN tsv SET STORAGE EXTENDED",
    )]
