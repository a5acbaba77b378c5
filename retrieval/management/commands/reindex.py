"""Re-chunk and re-embed vector-store files, e.g. after changing EMBEDDING_MODEL or EMBEDDING_DIMENSIONS.

Resumable: each file is swapped in its own transaction, and by default only files not yet indexed with the
target model, dimension and chunker are processed, so running the command again continues where it stopped.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from tqdm import tqdm

from retrieval import embeddings, indexes
from retrieval.ingestion import CHUNKER_VERSION, vector_store_file_reindex
from retrieval.models import VectorStore, VectorStoreFile
from retrieval.vector_index import index_pending, pending_count

PENDING_MAX = 5_000


class Command(BaseCommand):
    help = "Re-chunk and re-embed vector-store files (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("--vector-store", action="append", dest="stores", metavar="VS_ID",
                            help="only this vector store (repeatable)")
        parser.add_argument("--embedding-model", help="default: EMBEDDING_MODEL ('' = keyword-only)")
        parser.add_argument("--dimensions", type=int, help="default: EMBEDDING_DIMENSIONS")
        parser.add_argument("--all", action="store_true",
                            help="also files already indexed with the target (not resumable: redoes them all)")

    def handle(self, *args, stores, embedding_model, dimensions, all, verbosity, **options):
        model = settings.EMBEDDING_MODEL if embedding_model is None else embedding_model.strip()
        dims = dimensions or settings.EMBEDDING_DIMENSIONS
        config = embeddings.EmbeddingConfig(model=model, dimensions=dims) if model else None
        if (model, dims) != (settings.EMBEDDING_MODEL, settings.EMBEDDING_DIMENSIONS):
            self.stderr.write(f"Note: searches use EMBEDDING_MODEL={settings.EMBEDDING_MODEL!r} / "
                              f"EMBEDDING_DIMENSIONS={settings.EMBEDDING_DIMENSIONS}; files reindexed with "
                              f"{model!r}/{dims} are found by keywords only until you switch the settings.")
        qs = VectorStoreFile.objects.filter(status=VectorStoreFile.Status.COMPLETED)
        if stores:
            known = set(VectorStore.objects.filter(public_id__in=stores).values_list("public_id", flat=True))
            if missing := sorted(set(stores) - known):
                raise CommandError(f"No vector store with id {', '.join(missing)}.")
            qs = qs.filter(vector_store__public_id__in=stores)
        if not all:
            stale = ~Q(chunker_version=CHUNKER_VERSION)
            stale |= (Q(keyword_only=True) | ~Q(embedding_model=model) | ~Q(embedding_dimensions=dims)
                      if config else Q(keyword_only=False))
            qs = qs.filter(stale)
        if config:
            indexes.ensure_hnsw_index(dims)
        pks = list(qs.order_by("pk").values_list("pk", flat=True))
        target = f"{model}/{dims}" if config else "keyword-only"
        self.stdout.write(f"Reindexing {len(pks)} file(s) with {target}.")
        outcomes = {"completed": 0, "failed": 0, "skipped": 0}
        try:
            with tqdm(total=len(pks), unit="file", disable=verbosity == 0) as bar:
                for pk in pks:
                    outcomes[vector_store_file_reindex(vsf_id=pk, config=config)] += 1
                    if pending_count(at_most=PENDING_MAX) >= PENDING_MAX:  # searches scan them: keep them few
                        index_pending(defer=False)
                    bar.update(1)
                    bar.set_postfix(outcomes, refresh=False)
        except KeyboardInterrupt:
            raise CommandError("Interrupted. Run the same command again to resume.") from None
        self._drop_unused_indexes()
        # The new vectors wait in the pending table for the worker's indexer; do its work now instead, so the
        # command ends with everything in the HNSW index even when no worker runs.
        moved = index_pending(defer=False).moved
        self.stdout.write(f"Done: {outcomes['completed']} reindexed, {outcomes['failed']} failed (kept as they "
                          f"were; run again to retry), {outcomes['skipped']} changed meanwhile; {moved} vector(s) "
                          "moved into the HNSW index.")
        if outcomes["failed"]:
            raise CommandError(f"{outcomes['failed']} file(s) could not be reindexed.")

    def _drop_unused_indexes(self) -> None:
        used = set(VectorStoreFile.objects.exclude(embedding_dimensions=None)
                   .values_list("embedding_dimensions", flat=True).distinct())
        for dims in indexes.existing_index_dimensions():
            if dims not in used and dims != settings.EMBEDDING_DIMENSIONS:
                indexes.drop_hnsw_index(dims)
                self.stdout.write(f"Dropped the unused HNSW index for {dims} dimensions.")
