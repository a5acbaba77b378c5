"""The abstract base every stored API object shares: tenant, public id, creation time, metadata."""

from django.db import models

from assistants_project.api.ids import new_id


class TenantModel(models.Model):
    """``pk`` is internal (and the pagination key); ``public_id`` is what the API shows."""

    id_kind: str = ""

    id = models.BigAutoField(primary_key=True)
    public_id = models.CharField(max_length=64, unique=True, editable=False)
    project = models.ForeignKey("assistants.Project", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.public_id

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_id(self.id_kind)
        super().save(*args, **kwargs)


def epoch(value) -> int | None:
    """Datetime → Unix seconds, as every OpenAI timestamp is."""
    return int(value.timestamp()) if value else None
