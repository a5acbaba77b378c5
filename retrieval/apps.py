from django.apps import AppConfig
from django.conf import settings

EXPIRE_EVERY_SECONDS = 300.0
INDEX_EVERY_SECONDS = 30.0  # the indexer is also sent after each stored file; this is the safety net


class RetrievalConfig(AppConfig):
    name = "retrieval"

    def ready(self) -> None:
        settings.CELERY_BEAT_SCHEDULE.setdefault("retrieval-expire-vector-stores", {
            "task": "retrieval.tasks.vector_stores_expire",
            "schedule": EXPIRE_EVERY_SECONDS,
        })
        settings.CELERY_BEAT_SCHEDULE.setdefault("retrieval-sweep-ingestions", {
            "task": "retrieval.tasks.vector_store_files_sweep",
            "schedule": float(settings.INGESTION_SWEEP_INTERVAL_SECONDS),
        })
        settings.CELERY_BEAT_SCHEDULE.setdefault("retrieval-index-pending-vectors", {
            "task": "retrieval.tasks.chunk_vectors_index_sweep",
            "schedule": INDEX_EVERY_SECONDS,
        })
