"""Per-project limits, so one tenant cannot starve the others: requests per minute (a fixed one-minute window in
Redis, one round trip), concurrent runs (counted in Postgres by run creation, ``runs.services``) and tokens per UTC
day (a Redis counter the run lifecycle adds to when a run ends). Each is the project's own value when it has one
(admin: Projects), else the RATE_LIMIT_* setting; 0 means unlimited. Over a limit: 429 in OpenAI's envelope with
``retry-after``."""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings

from assistants_project.api.errors import OpenAIError

logger = logging.getLogger(__name__)

_DAY = 86400


class RateLimited(OpenAIError):
    status_code = 429

    def __init__(self, message: str, *, kind: str, retry_after: float) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.error_type = kind  # OpenAI's: requests | tokens
        self.wait = max(1, math.ceil(retry_after))  # DRF sends it as Retry-After


def effective(project, name: str) -> int:
    """The project's limit ``name`` (requests_per_minute, concurrent_runs, tokens_per_day)."""
    own = getattr(project, name, None)
    return own if own is not None else getattr(settings, f"RATE_LIMIT_{name.upper()}")


def check_request(project_pk: int, limit: int) -> None:
    """Count one API request of the project in this minute's window; 429 past ``limit`` (0: no limit, no
    round trip). Redis down: the request goes through (availability over strictness)."""
    if not limit:
        return
    from assistants_project.redis import redis_client

    now = time.time()
    window = int(now // 60)
    key = f"ratelimit:rpm:{project_pk}:{window}"
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        used = pipe.execute()[0]
    except Exception:
        logger.warning("rate limit: Redis unavailable, request not counted", exc_info=True)
        return
    if used > limit:
        retry = (window + 1) * 60 - now
        raise RateLimited(f"Rate limit reached for requests per min (RPM): Limit {limit}, Used {used - 1}, "
                          f"Requested 1. Please try again in {math.ceil(retry)}s.", kind="requests", retry_after=retry)


def check_run_start(project, active_runs) -> None:
    """Before a run is created: its project's concurrent runs (``active_runs()`` counts them, only when limited)
    and today's tokens."""
    limit = effective(project, "concurrent_runs")
    if limit:
        active = active_runs()
        if active >= limit:
            raise RateLimited(f"Rate limit reached for concurrent runs: Limit {limit}, Active {active}. Please try "
                              "again when a run has finished.", kind="requests", retry_after=1)
    limit = effective(project, "tokens_per_day")
    if limit:
        used = tokens_today(project.pk)
        if used >= limit:
            retry = _DAY - time.time() % _DAY
            raise RateLimited(f"Rate limit reached for tokens per day (TPD): Limit {limit}, Used {used}. Please try "
                              f"again in {math.ceil(retry)}s.", kind="tokens", retry_after=retry)


def _tokens_key(project_pk: int) -> str:
    return f"ratelimit:tpd:{project_pk}:{int(time.time() // _DAY)}"


def tokens_today(project_pk: int) -> int:
    from assistants_project.redis import redis_client

    try:
        return int(redis_client().get(_tokens_key(project_pk)) or 0)
    except Exception:
        logger.warning("rate limit: Redis unavailable, tokens not checked", exc_info=True)
        return 0


def tokens_add(project_pk: int, tokens: int) -> None:
    """A run of the project ended having used ``tokens``."""
    from assistants_project.redis import redis_client

    key = _tokens_key(project_pk)
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incrby(key, tokens)
        pipe.expire(key, 2 * _DAY)
        pipe.execute()
    except Exception:
        logger.warning("rate limit: Redis unavailable, %d tokens not counted", tokens, exc_info=True)
