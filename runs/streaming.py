"""Server-sent events for a run, relayed from its Redis Stream with blocking XREAD in async code, so one
web process holds hundreds of open streams without a thread each. Any web replica can serve any stream."""

from __future__ import annotations

import asyncio
import json
import logging

from django.conf import settings
from django.db import connection
from django.http import StreamingHttpResponse

from assistants_project import metrics
from assistants_project.api.errors import error_body
from assistants_project.redis import async_redis_client, xread_batches
from runs.events import stream_key
from runs.renderers.assistants import END_EVENTS

logger = logging.getLogger(__name__)

DONE = b"event: done\ndata: [DONE]\n\n"
# A comment *line*, with no blank line after it: the Python SDK's decoder turns a blank line into an (empty,
# unparseable) event once any event carried an ``id:``, where the SSE spec would dispatch nothing.
KEEP_ALIVE = b": keep-alive\n"


def _frame(entry_id: str, event: str, data: str) -> bytes:
    return f"id: {entry_id}\nevent: {event}\ndata: {data}\n\n".encode()


async def _read(client, key: str, cursor: str, block_ms: int) -> list[tuple[str, str, str]]:
    """The stream's entries after ``cursor`` as (id, event, data), waiting up to ``block_ms`` for one (none: [])."""
    batch = xread_batches(await client.xread({key: cursor}, block=block_ms, count=500))
    return [(raw_id.decode(), fields[b"event"].decode(), fields[b"data"].decode())
            for raw_id, fields in (batch[0][1] if batch else ())]


async def run_events(run_public_id: str, after: str = "0-0"):
    """Every event after ``after`` up to and including the next end event (requires_action or terminal)."""
    key, cursor = stream_key(run_public_id), after or "0-0"
    block_ms = max(1, round(settings.STREAM_KEEPALIVE_SECONDS * 1000))
    metrics.OPEN_STREAMS.inc()
    try:
        client = async_redis_client()
        while True:
            entries = await _read(client, key, cursor, block_ms)
            if not entries:
                yield KEEP_ALIVE
                continue
            # What one read brings goes out in one write (one send, not one per event), with the same bytes
            frames = []
            for cursor, event, data in entries:
                frames.append(_frame(cursor, event, data))
                if event in END_EVENTS:
                    frames.append(DONE)
                    yield b"".join(frames)
                    return
            yield b"".join(frames)
    except Exception:
        logger.exception("event stream of %s broke", run_public_id)
        error = error_body("The event stream was interrupted; the run continues. Poll the run or resume with "
                           "GET …/events and Last-Event-ID.", status=500)
        yield f"event: error\ndata: {json.dumps(error)}\n\n".encode()
        yield DONE
    finally:  # also when the client goes away (the generator is closed)
        metrics.OPEN_STREAMS.dec()


async def wait_for_end(run_public_id: str, after: str, seconds: float) -> None:
    """Return once the run's stream has an end event (requires_action or terminal) after ``after``, or after
    ``seconds``."""
    loop = asyncio.get_running_loop()
    key, cursor, deadline = stream_key(run_public_id), after or "0-0", loop.time() + seconds
    client = async_redis_client()
    while (left := deadline - loop.time()) > 0:
        entries = await _read(client, key, cursor, max(1, round(left * 1000)))  # (block=0 would wait forever)
        if any(event in END_EVENTS for _, event, _ in entries):
            return
        cursor = entries[-1][0] if entries else cursor


def release_connection() -> None:
    """A response that waits on Redis needs no database: give this request's connection back now, not when the
    response ends (hundreds of open streams would otherwise hold hundreds of idle connections)."""
    if not connection.in_atomic_block:
        connection.close()


def sse_response(run_public_id: str, after: str = "0-0") -> StreamingHttpResponse:
    release_connection()
    response = StreamingHttpResponse(run_events(run_public_id, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
