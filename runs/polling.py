"""``openai-poll-after-ms``: how long a polling client should wait before it asks for a run again.

The Python SDK's ``*_and_poll`` helpers read the hint of their *first* poll (made right after the create) and keep
that interval for the whole run; the Node SDK reads it on every poll. So the first answer must already fit the run:
an interval too short multiplies the polls over a long model call, one too long shows the client the end late, and
a poll that comes just *before* the end costs a whole interval more. The hint is therefore the time this run is
likely to still need: how long recent completed runs of the same model took (learned, per process, from the
completed runs this process answered with), at their 75th percentile, less the time this run has had, plus a small
margin. A run past that point is polled at a quarter of its age (it is slower than usual: about to finish or long);
one of a model not seen yet gets the old fixed 200 ms.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from django.utils import timezone

from runs.models import Run

IDLE_MS = 1000  # finished, or waiting for the client's tool outputs
CANCELLING_MS = 50  # a worker ends a cancelling run within one streamed chunk
UNKNOWN_MS = 200  # no completed run of this model seen yet
MARGIN_MS = 10
MIN_MS, MAX_MS = 20, 5000
QUANTILE = 0.75  # higher: fewer polls that come just short of the end, but later ones for the typical run
WINDOW = 32  # recent durations kept per model
MODELS = 256  # models remembered

_lock = threading.Lock()
_durations: OrderedDict[str, deque] = OrderedDict()  # model → recent durations (ms), least recently learned first
_learned: OrderedDict[int, None] = OrderedDict()  # runs already counted (a run is read many times once completed)


def observe(run: Run) -> None:
    """Learn from a completed run: how long it took from its creation to its completion."""
    if run.status != Run.Status.COMPLETED or run.completed_at is None or run.created_at is None:
        return
    took = (run.completed_at - run.created_at).total_seconds() * 1000
    with _lock:
        if run.pk in _learned:
            return
        _learned[run.pk] = None
        if len(_learned) > 4096:
            _learned.popitem(last=False)
        window = _durations.pop(run.model, None) or deque(maxlen=WINDOW)
        window.append(took)
        _durations[run.model] = window
        if len(_durations) > MODELS:
            _durations.popitem(last=False)


def expected_ms(model: str) -> float | None:
    """The QUANTILE of the recent completed runs' durations for ``model`` (None: none seen)."""
    with _lock:
        window = _durations.get(model)
        values = sorted(window) if window else None
    if not values:
        return None
    return values[min(len(values) - 1, round(QUANTILE * (len(values) - 1)))]


def poll_after_ms(run: Run, now=None) -> int:
    if run.status == Run.Status.CANCELLING:
        return CANCELLING_MS
    if run.status not in (Run.Status.QUEUED, Run.Status.IN_PROGRESS):
        return IDLE_MS
    expected = expected_ms(run.model)
    if expected is None or run.created_at is None:
        return UNKNOWN_MS
    elapsed = ((now or timezone.now()) - run.created_at).total_seconds() * 1000
    remaining = expected - elapsed
    hint = remaining + MARGIN_MS if remaining > 0 else elapsed / 4
    return int(min(MAX_MS, max(MIN_MS, hint)))


def reset() -> None:
    """Forget what was learned (tests)."""
    with _lock:
        _durations.clear()
        _learned.clear()
