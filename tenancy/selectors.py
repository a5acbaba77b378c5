"""Reads: which project a bearer key belongs to."""

from __future__ import annotations

import functools

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
    return f"apikey2:{key_hash}"  # 2: the entry also holds the project's limits


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
        key_pk, project_pk, *limits, name = cached.decode().split(":", 2 + len(_LIMITS))
        # from_db takes the values in the model's field order
        project = Project.from_db(DEFAULT_DB_ALIAS, ["id", "name", *_LIMITS],
                                  [int(project_pk), name, *(int(v) if v else None for v in limits)])
        return project, int(key_pk)
    key = api_key_for_raw(raw)
    if key is None:
        return None
    project = key.project
    limits = ":".join("" if getattr(project, f) is None else str(getattr(project, f)) for f in _LIMITS)
    try:
        redis_client().set(cache_key, f"{key.pk}:{key.project_id}:{limits}:{project.name}", ex=API_KEY_CACHE_SECONDS)
    except Exception:
        pass
    return project, key.pk


# The project's own limits travel with it in the cache entry (run creation reads them: no query).
_LIMITS = ("requests_per_minute", "concurrent_runs", "tokens_per_day")


@functools.lru_cache(maxsize=4096)
def project_name(project_pk: int) -> str | None:
    """A project's name, for log lines and metric labels (cached in the process: names rarely change)."""
    return Project.objects.filter(pk=project_pk).values_list("name", flat=True).first()
