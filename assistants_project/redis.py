"""The one Redis client (run event streams, readiness)."""

from __future__ import annotations

import functools

import redis
import redis.asyncio as aioredis
from django.conf import settings


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
