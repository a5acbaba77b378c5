"""The API-key check of the rest of the API (BearerKeyAuthentication), without a thread hop for a cached key.

The gateway's views are async: a cached key is read from Redis with the async client (the cache entry that
``assistants.selectors.api_key_project`` writes); a miss goes through the same code as every other endpoint.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, close_old_connections

from assistants.models import Project, hash_key
from assistants.selectors import api_key_cache_key
from assistants_project.api.auth import BearerKeyAuthentication
from assistants_project.api.errors import AuthenticationFailed
from assistants_project.redis import async_redis_client

NO_KEY = ("You didn't provide an API key. You need to provide your API key in an Authorization header using "
          "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")


async def project_for(request) -> Project:
    """The project of the request's API key; AuthenticationFailed (401) otherwise."""
    header = request.headers.get("Authorization", "")
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        try:
            cached = await async_redis_client().get(api_key_cache_key(hash_key(parts[1])))
        except Exception:
            cached = None
        if cached:  # "<key pk>:<project pk>:<project name>", as api_key_project stores it
            _key_pk, project_pk, name = cached.decode().split(":", 2)
            return Project.from_db(DEFAULT_DB_ALIAS, ["id", "name"], [int(project_pk), name])
    found = await sync_to_async(_authenticate)(request)
    if found is None:
        raise AuthenticationFailed(NO_KEY)
    return found[0].project


def _authenticate(request):
    try:
        return BearerKeyAuthentication().authenticate(request)
    finally:
        close_old_connections()  # gateway requests skip Django's request signals, which would do it (gateway/asgi.py)
