"""The gateway's endpoints served straight from ASGI, beside Django's handler, for the per-request cost.

Django's ASGI handler runs the sync receivers of its request signals and ``response.close`` on a thread of the
request's (kept across requests: ``assistants_project/request_threads.py``), a hop to another thread and back each,
which costs more than all of the gateway's own work. The gateway's views are async and need none of that (no
session, no transaction, and the database only when an API key or a project's stored credentials are not cached),
so its paths skip the handler: the same
``ASGIRequest``, the same URL patterns and views, wrapped in the same ``RequestMiddleware`` as every other request
(request id, checks, headers, access line, metrics); the database connections such a request takes go back to the
pool as Django's ``request_finished`` would return them (``request_context.release_connections``). Everything else
goes to Django unchanged.
"""

from __future__ import annotations

import asyncio
import io
import logging
from contextlib import aclosing

from django.urls import Resolver404, get_resolver

from assistants_project.api import request_context
from assistants_project.api.errors import error_response

logger = logging.getLogger(__name__)
PREFIXES = ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/moderations")


def with_gateway(django_app):
    resolver = get_resolver("gateway.urls")
    handler = request_context.RequestMiddleware(_dispatch)

    async def application(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(PREFIXES):
            try:
                match = resolver.resolve(scope["path"][len("/v1"):])  # "/models": its root pattern is "^/"
            except Resolver404:
                match = None
            if match is not None:
                return await _serve(handler, match, scope, receive, send)
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


async def _dispatch(request):
    match = request.resolver_match
    try:
        return await match.func(request, *match.args, **match.kwargs)
    except Exception:  # the views answer every failure themselves; this is a last resort
        logger.exception("gateway request %s failed", request.path)
        return error_response("The server had an error while processing your request. Sorry about that!",
                              status=500)


async def _serve(handler, match, scope, receive, send) -> None:
    from django.core.handlers.asgi import ASGIRequest

    body = await _read_body(receive)
    if body is None:
        return  # the client left before it finished sending
    try:
        request = ASGIRequest(scope, io.BytesIO(body))
    except UnicodeDecodeError:
        return await _send_plain(send, error_response("Bad request.", status=400))
    request.resolver_match = match
    request_context.track_connections()
    try:
        # As Django does: the view and the response run while a second task watches for the client leaving; if
        # it leaves, the view is cancelled (and a stream's generators closed, which closes the provider stream).
        work = asyncio.create_task(_respond(handler, request, send))
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
    finally:
        await asyncio.shield(request_context.release_connections())


async def _send_plain(send, response) -> None:
    body = response.content
    headers = [(str(k).encode("latin1"), str(v).encode("latin1")) for k, v in response.items()]
    if not response.has_header("Content-Length"):  # else the server frames it as chunked, which costs the client
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(handler, request, send) -> None:
    response = await handler(request)
    if not response.streaming:
        return await _send_plain(send, response)
    headers = [(str(k).encode("latin1"), str(v).encode("latin1")) for k, v in response.items()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    async with aclosing(aiter(response)) as parts:
        async for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body"})
