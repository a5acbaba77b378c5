from django.apps import AppConfig
from django.conf import settings


class RunsConfig(AppConfig):
    name = "runs"

    def ready(self) -> None:
        settings.CELERY_BEAT_SCHEDULE["runs-sweep"] = {
            "task": "runs.tasks.runs_sweep", "schedule": float(settings.RUN_SWEEP_INTERVAL_SECONDS)}
