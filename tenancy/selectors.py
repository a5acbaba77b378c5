"""Reads: which project a bearer key belongs to."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from tenancy.models import ApiKey, Project, hash_key

API_KEY_CACHE_SECONDS = 60


def api_key_for_raw(raw: str) -> ApiKey | None:
    return (
        ApiKey.objects.select_related("project")
        .filter(key_hash=hash_key(raw), revoked_at__isnull=True)
        .first()
    )


def api_key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def api_key_project(raw: str) -> tuple[Project, int] | None:
    """(project, API key id) of a valid key, or None. Every request asks, so valid keys are cached in Redis a
    minute (api_key_cache_forget drops an entry whenever a key is revoked, changed or deleted); unknown keys are
    not cached, and without Redis the database answers."""
    from assistants_project.redis import redis_client

    cache_key = api_key_cache_key(hash_key(raw))
    try:
        cached = redis_client().get(cache_key)
    except Exception:
        cached = None
    if cached:
        key_pk, project_pk, name = cached.decode().split(":", 2)
        return Project.from_db(DEFAULT_DB_ALIAS, ["id", "name"], [int(project_pk), name]), int(key_pk)
    key = api_key_for_raw(raw)
    if key is None:
        return None
    try:
        redis_client().set(cache_key, f"{key.pk}:{key.project_id}:{key.project.name}", ex=API_KEY_CACHE_SECONDS)
    except Exception:
        pass
    return key.project, key.pk
