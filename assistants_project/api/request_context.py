"""The outermost middleware: a request's id (the client's ``X-Request-ID`` when it is a sane one), bound to its log
lines and echoed as ``x-request-id``; its access log line; its HTTP metrics (by route pattern, not raw path)."""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from assistants_project import logs, metrics

access_log = logging.getLogger("assistants.access")


def request_id_for(request) -> str:
    given = request.headers.get("X-Request-ID")
    return given if logs.valid_request_id(given) else f"req_{uuid.uuid4().hex}"


_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")


@functools.lru_cache(maxsize=512)
def _route(pattern: str) -> str:
    """A URL pattern as a label, the way the API reference spells paths: ``/v1/threads/{thread_id}/runs``."""
    path = _GROUP.sub(lambda m: "{" + (m.group(1) or m.group(2)) + "}", pattern)
    return "/" + path.replace("^", "").replace("$", "").lstrip("/")


def finish(request, response, request_id: str, started: float):
    elapsed = time.perf_counter() - started
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


class RequestContextMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        started, request_id = time.perf_counter(), request_id_for(request)
        token = logs.replace({"request_id": request_id})
        try:
            return finish(request, self.get_response(request), request_id, started)
        finally:
            logs.reset(token)  # a WSGI thread serves the next request with a clean context

    async def __acall__(self, request):
        # Each ASGI request is its own task (its own context): what is bound here also covers the streamed body.
        started, request_id = time.perf_counter(), request_id_for(request)
        logs.replace({"request_id": request_id})
        return finish(request, await self.get_response(request), request_id, started)
