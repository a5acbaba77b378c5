"""The API-key check of the rest of the API (BearerKeyAuthentication), without a thread hop for a cached key.

The gateway's views are async: a key in this process's key cache (``assistants_project/api/keycache.py``) while its
generation is fresh is answered in memory; otherwise the same code as every other endpoint answers, in a thread.
"""

from __future__ import annotations

from assistants_project import logs
from assistants_project.api import keycache, request_context
from assistants_project.api.errors import AuthenticationFailed
from tenancy import limits
from tenancy.auth import BearerKeyAuthentication
from tenancy.models import Project, hash_key
from tenancy.selectors import api_keys_generation, project_of_entry

NO_KEY = ("You didn't provide an API key. You need to provide your API key in an Authorization header using "
          "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")


async def project_for(request) -> Project:
    """The project of the request's API key; AuthenticationFailed (401) otherwise."""
    header = request.headers.get("Authorization", "")
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        key_hash = hash_key(parts[1])
        cached = keycache.peek(key_hash)
        if cached is None and keycache.generation_stale():
            # the generation goes stale once a second: one read of it for all the requests of that moment, then
            # the cache answers them (rather than each authenticating in turn in asgiref's one thread)
            await request_context.shared_db_call("api_keys_generation", keycache.current_generation,
                                                 api_keys_generation)
            cached = keycache.peek(key_hash)
        if cached:  # as tenancy.selectors.api_key_project caches it
            project = project_of_entry(cached)[0]
            logs.bind(project=project.name)
            # no round trip unless the project has a limit (then one Redis INCR, as BearerKeyAuthentication does)
            limits.check_request(project.pk, limits.effective(project, "requests_per_minute"))
            return project
    found = await request_context.db_call(BearerKeyAuthentication().authenticate, request)
    if found is None:
        raise AuthenticationFailed(NO_KEY)
    return found[0].project

