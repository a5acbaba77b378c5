"""Reads: which project a bearer key belongs to."""

from __future__ import annotations

import functools

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
    """Changes whenever any key is created, revoked, deleted or moved, or a project's limits change (see
    assistants_project/api/keycache.py): cached entries carry their project's limits."""
    row = ApiKey.objects.aggregate(n=Count("id"), top=Max("id"), revoked=Max("revoked_at"), projects=Sum("project_id"))
    limits = Project.objects.aggregate(**{f: Sum(f) for f in _LIMITS})
    return row["n"], row["top"], row["revoked"], row["projects"], *(limits[f] for f in _LIMITS)


def api_key_project(raw: str) -> tuple[Project, int] | None:
    """(project, API key id) of a valid key, or None; cached per process (keycache), never for unknown keys."""

    def load() -> tuple | None:
        key = api_key_for_raw(raw)
        if key is None:
            return None
        return (key.pk, key.project_id, key.project.name, *(getattr(key.project, f) for f in _LIMITS))

    found = keycache.cached_key(hash_key(raw), load=load, generation=api_keys_generation)
    return None if found is None else project_of_entry(found)


def project_of_entry(entry: tuple) -> tuple[Project, int]:
    """(project, key id) from a key-cache entry; the project's own limits travel with it (run creation reads
    them: no query)."""
    key_pk, project_pk, name, *limits = entry
    return Project.from_db(DEFAULT_DB_ALIAS, ["id", "name", *_LIMITS], [project_pk, name, *limits]), key_pk


_LIMITS = ("requests_per_minute", "concurrent_runs", "tokens_per_day")


@functools.lru_cache(maxsize=4096)
def project_name(project_pk: int) -> str | None:
    """A project's name, for log lines and metric labels (cached in the process: names rarely change)."""
    return Project.objects.filter(pk=project_pk).values_list("name", flat=True).first()
