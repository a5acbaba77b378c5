"""Worker liveness: a daemon thread stamps ``heartbeat_at`` on the runs this process is executing, so the
sweeper can tell a slow model call (still beating) from a dead worker (silent)."""

from __future__ import annotations

import contextlib
import logging
import threading

from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 2.0
_active: set[int] = set()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _beat() -> None:
    from runs.models import Run

    while True:
        with _lock:
            ids = list(_active)
        if ids:
            try:
                Run.objects.filter(pk__in=ids).update(heartbeat_at=timezone.now())
            except Exception:
                logger.exception("heartbeat failed")
            finally:
                connections.close_all()  # this thread's own connection: hold none between beats
        threading.Event().wait(INTERVAL_SECONDS)


@contextlib.contextmanager
def beating(run_pk: int):
    global _thread
    with _lock:
        _active.add(run_pk)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_beat, name="run-heartbeat", daemon=True)
            _thread.start()
    try:
        yield
    finally:
        with _lock:
            _active.discard(run_pk)
