"""Every request's plumbing, in one place, for Django's middleware chain and the gateway's ASGI path alike.

``RequestMiddleware`` is the outermost middleware, and the gateway (``gateway/asgi.py``) wraps its own dispatch in it
too: the request's id (the client's ``X-Request-ID`` when it is a sane one), bound to its log lines and echoed as
``x-request-id``; the early checks of API paths (Host, the v1 beta header, the body size, before any body is read);
OpenAI's ``openai-processing-ms`` and ``openai-version`` headers; the access log line; the HTTP metrics (by route
pattern, not raw path).

``release_connections`` gives back the database connections that async code took through ``sync_to_async``
outside Django's handler (which does it on ``request_finished``); it costs nothing when none was taken.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re
import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import close_old_connections
from django.db.backends.signals import connection_created

from assistants_project import logs, metrics
from assistants_project.api.errors import error_response

access_log = logging.getLogger("assistants.access")

API_PATHS = ("/v1/", "/healthz", "/readyz")
_BETA_PATHS = ("/v1/assistants", "/v1/threads")


def _request_id(request) -> str:
    given = request.headers.get("X-Request-ID")
    return given if logs.valid_request_id(given) else f"req_{uuid.uuid4().hex}"


def _precheck(request):
    """An early error response, or None. Runs before any body is read."""
    path = request.path
    if not path.startswith(API_PATHS):
        return None
    try:
        request.get_host()  # ALLOWED_HOSTS (CommonMiddleware checks it for the admin)
    except DisallowedHost:
        return error_response("Invalid Host header.", status=400)
    if not path.startswith("/v1/"):
        return None
    beta = request.headers.get("OpenAI-Beta", "")
    if path.startswith(_BETA_PATHS) and "assistants=v1" in beta.replace(" ", ""):
        return error_response(
            "The v1 Assistants API has been deprecated. Please try again by setting the header "
            "'OpenAI-Beta: assistants=v2'. See the migration guide for more information: "
            "https://platform.openai.com/docs/assistants/migration.",
            status=400, code="invalid_beta")
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return error_response("Invalid Content-Length header.", status=400)
    is_multipart = request.content_type == "multipart/form-data"
    limit = settings.FILE_UPLOAD_MAX_BYTES + 1024 * 1024 if is_multipart else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if length > limit:
        what = f"{settings.FILE_UPLOAD_MAX_BYTES} bytes per file" if is_multipart else f"{limit} bytes"
        return error_response(f"The request body is too large (limit: {what}).", status=413,
                              param="file" if is_multipart else None)
    return None


_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")


@functools.lru_cache(maxsize=512)
def _route(pattern: str) -> str:
    """A URL pattern as a label, the way the API reference spells paths: ``/v1/threads/{thread_id}/runs``."""
    path = _GROUP.sub(lambda m: "{" + (m.group(1) or m.group(2)) + "}", pattern)
    return "/" + path.replace("^", "").replace("$", "").lstrip("/")


def _finish(request, response, request_id: str, started: float):
    elapsed = time.perf_counter() - started
    response["openai-processing-ms"] = str(int(elapsed * 1000))
    response["openai-version"] = "2020-10-01"
    response["x-request-id"] = request_id
    match = getattr(request, "resolver_match", None)
    route = _route(match.route) if match is not None and match.route else "<unmatched>"
    status = response.status_code
    metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
    metrics.HTTP_LATENCY.labels(request.method, route).observe(elapsed)
    if match is not None:
        logs.bind(thread_id=match.kwargs.get("thread_id"), run_id=match.kwargs.get("run_id"))
    access_log.info("%s %s %d %.1fms", request.method, request.path, status, elapsed * 1000,
                    extra={"route": route, "status": status, "duration_ms": round(elapsed * 1000, 1)})
    return response


class RequestMiddleware:
    """Wraps ``get_response`` (the rest of Django's chain, or the gateway's view dispatch) with the request id, the
    early checks, the OpenAI headers, the access line and the HTTP metrics; sync or async as ``get_response`` is."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        started, request_id = time.perf_counter(), _request_id(request)
        token = logs.replace({"request_id": request_id})
        try:
            return _finish(request, _precheck(request) or self.get_response(request), request_id, started)
        finally:
            logs.reset(token)  # a WSGI thread serves the next request with a clean context

    async def __acall__(self, request):
        # Each ASGI request is its own task (its own context): what is bound here also covers the streamed body.
        started, request_id = time.perf_counter(), _request_id(request)
        logs.replace({"request_id": request_id})
        return _finish(request, _precheck(request) or await self.get_response(request), request_id, started)


# --- database connections outside Django's handler ---------------------------------------------------------------
# Outside Django's handler no request_finished signal closes connections, and ``sync_to_async`` (the async ORM too)
# runs in asgiref's one shared thread, whose connection would stay checked out of the pool (stale after a database
# restart) for as long as the process lives. A request served that way marks ``_taken`` with a list; a connection
# opened while it is set (the signal fires in the worker thread, in a copy of the request's context: the same list)
# is noted there, and ``release_connections`` closes it where it was opened.
_taken: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("db_connections_taken", default=None)


def _note_connection(sender, connection, **kwargs) -> None:
    taken = _taken.get()
    if taken is not None:
        taken.append(connection.alias)


connection_created.connect(_note_connection, dispatch_uid="request_context.note_connection")


def track_connections() -> None:
    """From here on, in this task and those it starts, note the connections that ``sync_to_async`` code opens."""
    _taken.set([])


def _close(taken: list[str] | None) -> None:
    if taken is not None:
        taken.clear()
    close_old_connections()  # what request_finished runs: back to the pool (CONN_MAX_AGE 0), or dropped if broken


async def release_connections() -> None:
    """Return the connections noted since ``track_connections`` (or the last release) to the pool, in the thread
    that took them; no thread hop when none was taken."""
    taken = _taken.get()
    if taken:
        await sync_to_async(_close)(taken)


async def db_call(fn, *args):
    """``fn(*args)`` in asgiref's thread (``sync_to_async``), its connections given back before this returns (one
    thread hop for both)."""
    taken = _taken.get()

    def run():
        try:
            return fn(*args)
        finally:
            _close(taken)

    return await sync_to_async(run)()


_shared: dict = {}  # key → (event loop, task) of the call in flight


async def shared_db_call(key, fn, *args):
    """``db_call(fn, *args)``, made once for all callers with the same ``key`` while it is in flight: for the cache
    refreshes every request of a burst would otherwise make at the same moment, one after another in asgiref's one
    thread (the gateway's API-key generation and stored-credential reads, each stale once a second)."""
    loop = asyncio.get_running_loop()
    entry = _shared.get(key)
    if entry is None or entry[0] is not loop:
        task = loop.create_task(db_call(fn, *args))

        def done(finished: asyncio.Task) -> None:
            if _shared.get(key, (None, None))[1] is finished:
                del _shared[key]
            if not finished.cancelled():
                finished.exception()  # retrieved here too: every caller may have gone away

        task.add_done_callback(done)
        entry = _shared[key] = (loop, task)
    return await asyncio.shield(entry[1])
