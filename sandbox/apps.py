from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"

    def ready(self) -> None:
        from django.conf import settings

        settings.CELERY_BEAT_SCHEDULE["sandbox-containers-expire"] = {
            "task": "sandbox.tasks.containers_expire",
            "schedule": 300.0,
        }
