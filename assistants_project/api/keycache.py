"""The API-key cache: every request authenticates, so valid keys are cached (Django's cache framework, alias
``api_keys``: local memory in each process) instead of queried each time.

Why not Redis (as before): a revoke deletes the cached entry, and Redis can give a deleted entry back — when it
restarts from a snapshot taken before the revoke, or when the revoke happened while Redis was unreachable and the
delete never arrived. A revoked key then worked again for up to the entry's lifetime.

How revocation stays safe here: each entry is stamped with the *key generation*, a fingerprint of the API-key
table read from Postgres (count, highest id, latest revocation, sum of project ids: any revoke, delete, create or
move of a key changes it). An entry is used only while its stamp equals the current generation; each process reads
the generation at most once per ``GENERATION_CHECK_SECONDS`` (one tiny aggregate query), and at once after a change
it made itself. So a revoke takes effect at once in the process that made it and within a second everywhere, and
nothing outside Postgres — the source of truth — can bring a key back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import caches

CACHE_ALIAS = "api_keys"
ENTRY_SECONDS = 300
GENERATION_CHECK_SECONDS = 1.0

_lock = threading.Lock()
_generation: tuple[Any, float] = (None, 0.0)  # (fingerprint, time.monotonic() when read)


def current_generation(read: Callable[[], Any]) -> Any:
    """The key generation, read with ``read`` when stale (``peek`` callers, which cannot do I/O, call this in a
    thread)."""
    global _generation
    if not generation_stale():
        return _generation[0]
    # one thread reads, the requests of the same moment wait for its answer rather than each read it
    with _lock:
        if generation_stale():
            now = time.monotonic()
            _generation = (read(), now)
        return _generation[0]


def cached_key(key_hash: str, *, load: Callable[[], Any], generation: Callable[[], Any]) -> Any:
    """``load()``'s answer for this key (None = not valid, never cached), from the cache while the key generation
    is unchanged."""
    current = current_generation(generation)
    cache = caches[CACHE_ALIAS]
    entry = cache.get(key_hash)
    if entry is not None and entry[0] == current:
        return entry[1]
    value = load()
    if value is not None:
        cache.set(key_hash, (current, value), ENTRY_SECONDS)
    return value


def forget(key_hash: str | None = None) -> None:
    """After a change to keys in this process: drop the entry and read the generation again on the next request
    (other processes see the new generation within GENERATION_CHECK_SECONDS)."""
    global _generation
    with _lock:
        _generation = (None, 0.0)
    if key_hash:
        caches[CACHE_ALIAS].delete(key_hash)


def generation_stale() -> bool:
    fingerprint, read_at = _generation
    return fingerprint is None or time.monotonic() - read_at >= GENERATION_CHECK_SECONDS


def peek(key_hash: str) -> Any:
    """The cached answer while the generation read is still fresh, else None: no I/O, so async code (the gateway)
    can ask without a thread hop; on None it goes through ``cached_key``."""
    if generation_stale():
        return None
    entry = caches[CACHE_ALIAS].get(key_hash)
    return entry[1] if entry is not None and entry[0] == _generation[0] else None
