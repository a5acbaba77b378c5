"""The gateway's endpoints served straight from ASGI, beside Django's handler, for the per-request cost.

Django's ASGI handler gives every request a thread-sensitive context, so the sync receivers of its request
signals and ``response.close`` start a new thread per request: about 1 ms of CPU, more than all of the gateway's
own work. The gateway's views are async and need none of that (no session, no transaction, and the database only
when an API key is not in the Redis cache, which closes its connection itself), so its paths skip the handler:
the same ``ASGIRequest``, the same URL patterns and views, the same checks and headers as
``OpenAIHeadersMiddleware``; everything else goes to Django unchanged.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from contextlib import aclosing

from django.urls import Resolver404, get_resolver

from assistants_project import logs
from assistants_project.api import request_context
from assistants_project.api.errors import error_response
from assistants_project.api.middleware import _decorate, _precheck

logger = logging.getLogger(__name__)
PREFIXES = ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/moderations")


def with_gateway(django_app):
    resolver = get_resolver("gateway.urls")

    async def application(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(PREFIXES):
            try:
                match = resolver.resolve(scope["path"][len("/v1"):])  # "/models": its root pattern is "^/"
            except Resolver404:
                match = None
            if match is not None:
                return await _serve(match, scope, receive, send)
        return await django_app(scope, receive, send)

    return application


async def _read_body(receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _serve(match, scope, receive, send) -> None:
    from django.core.handlers.asgi import ASGIRequest

    started = time.perf_counter()
    body = await _read_body(receive)
    if body is None:
        return  # the client left before it finished sending
    try:
        request = ASGIRequest(scope, io.BytesIO(body))
    except UnicodeDecodeError:
        return await _send_plain(send, error_response("Bad request.", status=400))
    # what the outer middleware does for every other path: the request id (the client's X-Request-ID when sane)
    # bound to the log lines, and, once answered, x-request-id, the access line and the HTTP metrics
    request_id = request_context.request_id_for(request)
    logs.replace({"request_id": request_id})
    request.resolver_match = match
    response = _precheck(request)
    # As Django does: the view and the response run while a second task watches for the client leaving; if it
    # leaves, the view is cancelled (and a stream's generators closed, which closes the provider stream).
    work = asyncio.create_task(_respond(response, match, request, request_id, started, send))
    watch = asyncio.create_task(_disconnect(receive))
    await asyncio.wait((work, watch), return_when=asyncio.FIRST_COMPLETED)
    for task in (work, watch):
        if not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
    if work.done() and not work.cancelled():
        work.result()  # re-raise a bug in sending


async def _send_plain(send, response) -> None:
    headers = [(str(k).encode("latin1"), str(v).encode("latin1")) for k, v in response.items()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


async def _disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(response, match, request, request_id: str, started: float, send) -> None:
    if response is None:
        try:
            response = await match.func(request, *match.args, **match.kwargs)
        except Exception:  # the views answer every failure themselves; this is a last resort
            logger.exception("gateway request %s failed", request.path)
            response = error_response("The server had an error while processing your request. Sorry about that!",
                                      status=500)
    response = request_context.finish(request, _decorate(response, started), request_id, started)
    if not response.streaming:
        return await _send_plain(send, response)
    headers = [(str(k).encode("latin1"), str(v).encode("latin1")) for k, v in response.items()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    async with aclosing(aiter(response)) as parts:
        async for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body"})
