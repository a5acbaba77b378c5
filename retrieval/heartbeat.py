"""Ingestion liveness: a daemon thread stamps ``heartbeat_at`` on the files this process is ingesting, so the
sweeper can tell a slow parse or embedding call (still beating) from a dead worker (silent).

A beat proves progress, not only that a thread is alive: each ingestion is beaten only until its deadline
(INGESTION_TIMEOUT_SECONDS after its claim). An attempt stuck past it goes silent, and the sweeper hands the file
to a new attempt (or fails it); the stuck attempt, if it ever finishes, has lost its claim and drops its result."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import cast

from django.utils import timezone

from assistants_project.heartbeat import Beater


def _working() -> list[str]:
    """The claim tokens of the ingestions within their deadline."""
    now = time.monotonic()
    return [cast(str, token) for token, deadline in _beater.entries() if now < deadline]


def _stamp(tokens: Sequence[str]) -> None:
    from retrieval.models import VectorStoreFile

    VectorStoreFile.objects.filter(claimed_by__in=tokens).update(heartbeat_at=timezone.now())


_beater: Beater[float] = Beater("ingestion-heartbeat", due=_working, stamp=_stamp)  # claim token → deadline


@contextlib.contextmanager
def beating(token: str, *, timeout: float):
    """Beat the file claimed with ``token`` for at most ``timeout`` seconds while the block runs."""
    with _beater.beating(time.monotonic() + timeout, key=token):
        yield
