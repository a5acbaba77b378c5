from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "files"

    def ready(self) -> None:
        from django.conf import settings

        settings.CELERY_BEAT_SCHEDULE["files-purge-expired"] = {
            "task": "files.tasks.file_purge_expired",
            "schedule": 3600.0,
        }
