from django.apps import AppConfig
from django.conf import settings


class RunsConfig(AppConfig):
    name = "runs"

    def ready(self) -> None:
        settings.CELERY_BEAT_SCHEDULE["runs-sweep"] = {
            "task": "runs.tasks.runs_sweep", "schedule": float(settings.RUN_SWEEP_INTERVAL_SECONDS)}
        # Runs sit above assistants and register what the lower layers ask of them; importing the tasks also
        # registers how the lifecycle sends a run to a worker (in the web process too, which never runs one).
        from assistants.selectors import register_active_run_lookup
        from runs import tasks  # noqa: F401
        from runs.selectors import active_run_of

        register_active_run_lookup(active_run_of)
