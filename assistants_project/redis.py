"""The one Redis client (run event streams, readiness)."""

from __future__ import annotations

import functools
from typing import cast

import redis
import redis.asyncio as aioredis
from django.conf import settings

# redis-py annotates its replies for every client mode at once (str or bytes per ``decode_responses``, RESP2 lists or
# RESP3 dicts for XREAD). Both clients here speak RESP2 and answer bytes: these name what their stream replies are.
StreamEntry = tuple[bytes, dict[bytes, bytes]]


def stream_entries(reply: object) -> list[StreamEntry]:
    """An XRANGE / XREVRANGE reply: (entry id, fields) pairs, oldest first for XRANGE."""
    return cast(list[StreamEntry], reply)


def xread_batches(reply: object) -> list[tuple[bytes, list[StreamEntry]]]:
    """An XREAD reply: one (stream key, entries) pair per stream with new entries; empty when the block timed out."""
    return cast(list[tuple[bytes, list[StreamEntry]]], reply)


@functools.cache
def redis_client() -> redis.Redis:
    # Short connect timeout: an unreachable Redis answers 503 (api/errors.py) promptly, and /readyz with it.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=2)


_async_clients: dict[int, aioredis.Redis] = {}


def async_redis_client() -> aioredis.Redis:
    """One pool per event loop (an asyncio client is bound to the loop that created it)."""
    import asyncio

    loop = asyncio.get_running_loop()
    client = _async_clients.get(id(loop))
    if client is None:
        # Blocking XREADs wait up to 10 s: the read timeout must be longer.
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=60,
                                         max_connections=2000)
        _async_clients[id(loop)] = client
    return client
