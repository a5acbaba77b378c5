"""Server-sent events for a streamed chat completion, with the provider stream closed on every exit path."""

from __future__ import annotations

import json
import logging

from django.http import StreamingHttpResponse

from assistants_project.api.errors import error_body
from gateway import provider, shapes

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def _frame(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def chat_events(stream, first, *, model: str, include_usage: bool, secrets: list[str]):
    """``stream``: the provider's chunks (``provider.chunks``); ``first``: the chunk already read from it (before
    the 200 was committed), or None for an empty stream. The provider stream is closed in ``finally``: at the end,
    on a provider error, and when the client goes away (the response is cancelled and this generator closed
    through ClosingStreamingResponse)."""
    try:
        for item in ([first] if first is not None else []):
            payload = shapes.chunk(item, model, include_usage=include_usage)
            if payload is not None:
                yield _frame(payload)
        async for item in stream:
            payload = shapes.chunk(item, model, include_usage=include_usage)
            if payload is not None:
                yield _frame(payload)
        yield DONE
    except Exception as exc:
        # After the 200: an error chunk (the SDKs raise it), and no [DONE], so no client takes it for a success.
        error = provider.classify(exc, secrets)
        logger.warning("chat completion stream for %s broke: %s %s", model, error.status, error.message)
        yield _frame(error_body(error.message, status=error.status, param=error.param, code=error.code))
    finally:
        await stream.aclose()


class ClosingStreamingResponse(StreamingHttpResponse):
    """Django wraps an async iterator in generators of its own and closes only the outermost when the client
    disconnects; this one iterates ``content`` itself and closes it deterministically."""

    def __init__(self, content, **kwargs) -> None:
        super().__init__(content, content_type="text/event-stream", **kwargs)
        self._content = content
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"

    async def __aiter__(self):
        try:
            async for part in self._content:
                yield part
        finally:
            await self._content.aclose()
