from django.db import models

from tenancy.models import TenantModel


class File(TenantModel):
    """Metadata of an uploaded file; the bytes live in Django's default storage under ``storage_name``."""

    id_kind = "file"

    class Purpose(models.TextChoices):
        ASSISTANTS = "assistants"
        ASSISTANTS_OUTPUT = "assistants_output"
        VISION = "vision"
        BATCH = "batch"
        FINE_TUNE = "fine-tune"
        USER_DATA = "user_data"
        EVALS = "evals"

    filename = models.CharField(max_length=512)
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    bytes = models.BigIntegerField()
    content_type = models.CharField(max_length=200, default="application/octet-stream")
    storage_name = models.CharField(max_length=512)
    status = models.CharField(max_length=16, default="processed")
    status_details = models.TextField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "id"]),
            models.Index(fields=["project", "purpose", "id"]),
        ]
