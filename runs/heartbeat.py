"""Worker liveness *and progress*: a daemon thread stamps ``heartbeat_at`` on the runs this process is executing,
so the sweeper can tell a slow model call (still beating) from a dead worker (silent).

A live thread is not enough: a thread stuck for good (a deadlock in a connection pool, a call with no timeout)
is alive but useless. So the engine's thread marks progress (``progress()``: each model attempt, each streamed
chunk), and the beat stamps only runs that progressed within ``progress_bound()``. A stuck run's heartbeat
goes stale and the sweeper recovers it like a dead worker's (re-queued once, then failed); whatever the stuck
thread writes later loses its compare-and-set on ``claimed_by``."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence

from django.conf import settings
from django.utils import timezone

from assistants_project.heartbeat import Beater

logger = logging.getLogger(__name__)

_current = threading.local()  # the entry of the attempt the calling thread executes


def progress_bound() -> float:
    """The longest a healthy run goes without progress: one model call attempt (LLM_TIMEOUT_SECONDS bounds the
    wait for each chunk), or a file_search's wait for ingestion and its query embedding, plus the heartbeat
    timeout as slack. No setting of its own: it follows from those."""
    return (settings.LLM_TIMEOUT_SECONDS + settings.FILE_SEARCH_INGESTION_WAIT_SECONDS
            + settings.RUN_HEARTBEAT_TIMEOUT_SECONDS)


def progress() -> None:
    """Mark progress on the run this thread executes (a no-op outside a run, e.g. in tests of llm)."""
    entry = getattr(_current, "entry", None)
    if entry is not None:
        entry[1] = time.monotonic()  # one list store: atomic under the GIL, no lock per chunk


def _progressing() -> list[int]:
    now, bound = time.monotonic(), progress_bound()
    ids = set()
    for _, entry in _beater.entries():
        pk, at, reported = entry
        if now - at <= bound:
            ids.add(pk)
        elif not reported:
            entry[2] = True
            logger.error("run %s made no progress for %.0fs; no longer heartbeating it", pk, bound)
    return sorted(ids)


def _stamp(ids: Sequence[int]) -> None:
    from runs.models import Run

    Run.objects.filter(pk__in=ids).update(heartbeat_at=timezone.now())


# One entry per executing attempt (a recovered run may have a stuck old attempt in this process too):
# [run pk, monotonic time of its last progress, whether its lack of progress was logged]
_beater: Beater[list] = Beater("run-heartbeat", due=_progressing, stamp=_stamp)


@contextlib.contextmanager
def beating(run_pk: int):
    with _beater.beating([run_pk, time.monotonic(), False]) as entry:
        _current.entry = entry
        try:
            yield
        finally:
            _current.entry = None
