"""Reads: which project a bearer key belongs to."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Count, Max, Sum

from assistants_project.api import keycache
from tenancy.models import ApiKey, Project, hash_key


def api_key_for_raw(raw: str) -> ApiKey | None:
    return (
        ApiKey.objects.select_related("project")
        .filter(key_hash=hash_key(raw), revoked_at__isnull=True)
        .first()
    )


def api_keys_generation() -> tuple:
    """Changes whenever any key is created, revoked, deleted or moved (see assistants_project/api/keycache.py)."""
    row = ApiKey.objects.aggregate(n=Count("id"), top=Max("id"), revoked=Max("revoked_at"), projects=Sum("project_id"))
    return row["n"], row["top"], row["revoked"], row["projects"]


def api_key_project(raw: str) -> tuple[Project, int] | None:
    """(project, API key id) of a valid key, or None; cached per process (keycache), never for unknown keys."""

    def load() -> tuple[int, int, str] | None:
        key = api_key_for_raw(raw)
        return None if key is None else (key.pk, key.project_id, key.project.name)

    found = keycache.cached_key(hash_key(raw), load=load, generation=api_keys_generation)
    if found is None:
        return None
    key_pk, project_pk, name = found
    return Project.from_db(DEFAULT_DB_ALIAS, ["id", "name"], [project_pk, name]), key_pk
