"""Helpers shared by the API's serializers (the tenant base model is ``tenancy.models.TenantModel``)."""


def epoch(value) -> int | None:
    """Datetime → Unix seconds, as every OpenAI timestamp is."""
    return int(value.timestamp()) if value else None
