from django.apps import AppConfig
from django.conf import settings

EXPIRE_EVERY_SECONDS = 300.0


class RetrievalConfig(AppConfig):
    name = "retrieval"

    def ready(self) -> None:
        settings.CELERY_BEAT_SCHEDULE.setdefault("retrieval-expire-vector-stores", {
            "task": "retrieval.tasks.vector_stores_expire",
            "schedule": EXPIRE_EVERY_SECONDS,
        })
