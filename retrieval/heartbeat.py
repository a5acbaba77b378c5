"""Ingestion liveness: a daemon thread stamps ``heartbeat_at`` on the files this process is ingesting, so the
sweeper can tell a slow parse or embedding call (still beating) from a dead worker (silent).

A beat proves progress, not only that a thread is alive: each ingestion is beaten only until its deadline
(INGESTION_TIMEOUT_SECONDS after its claim). An attempt stuck past it goes silent, and the sweeper hands the file
to a new attempt (or fails it); the stuck attempt, if it ever finishes, has lost its claim and drops its result."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 2.0
_active: dict[str, float] = {}  # claim token → monotonic deadline
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _beat() -> None:
    from retrieval.models import VectorStoreFile

    while True:
        now = time.monotonic()
        with _lock:
            tokens = [token for token, deadline in _active.items() if now < deadline]
        if tokens:
            try:
                VectorStoreFile.objects.filter(claimed_by__in=tokens).update(heartbeat_at=timezone.now())
            except Exception:
                logger.exception("ingestion heartbeat failed")
            finally:
                connections.close_all()  # this thread's own connection: hold none between beats
        threading.Event().wait(INTERVAL_SECONDS)


@contextlib.contextmanager
def beating(token: str, *, timeout: float):
    """Beat the file claimed with ``token`` for at most ``timeout`` seconds while the block runs."""
    global _thread
    with _lock:
        _active[token] = time.monotonic() + timeout
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_beat, name="ingestion-heartbeat", daemon=True)
            _thread.start()
    try:
        yield
    finally:
        with _lock:
            _active.pop(token, None)
