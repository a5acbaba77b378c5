"""The heartbeat both workers share (runs/heartbeat.py for runs, retrieval/heartbeat.py for ingestions): one
daemon thread per ``Beater`` that, every ``interval`` seconds, stamps ``heartbeat_at`` on the rows of the work
this process has in hand, so the sweeper can tell slow work (still beating) from a dead worker (silent).

Each app says which rows are due (``due``: the ids to stamp now, from the entries of the work in hand, e.g. only
work that made progress or is within its deadline) and how to stamp them (``stamp``)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from django.db import connections

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 2.0
E = TypeVar("E")


class Beater(Generic[E]):
    def __init__(self, name: str, *, due: Callable[[], Sequence], stamp: Callable[[Sequence], object],
                 interval: float = INTERVAL_SECONDS) -> None:
        self.name, self.interval = name, interval
        self._due, self._stamp = due, stamp
        self._active: dict[object, E] = {}  # key → the entry of one piece of work in hand
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def entries(self) -> list[tuple[object, E]]:
        """The work in hand, as (key, entry) pairs."""
        with self._lock:
            return list(self._active.items())

    def _beat(self) -> None:
        while True:
            ids = self._due()
            if ids:
                try:
                    self._stamp(ids)
                except Exception:
                    logger.exception("%s failed", self.name)
                finally:
                    connections.close_all()  # this thread's own connection: hold none between beats
            threading.Event().wait(self.interval)

    @contextlib.contextmanager
    def beating(self, entry: E, *, key: object = None) -> Iterator[E]:
        """``entry`` is in hand (and the thread running) while the block runs. ``key`` (default: this call's
        own) names it; a second ``beating`` with the same key replaces the entry until either ends."""
        key = object() if key is None else key
        with self._lock:
            self._active[key] = entry
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, name=self.name, daemon=True)
                self._thread.start()
        try:
            yield entry
        finally:
            with self._lock:
                self._active.pop(key, None)
