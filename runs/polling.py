"""``openai-poll-after-ms``: how long a polling client should wait before it asks for a run again.

The Python SDK's ``*_and_poll`` helpers read the hint of their *first* poll (made right after the create) and keep
that interval for the whole run; the Node SDK reads it on every poll. So the first answer must already fit the run:
an interval too short multiplies the polls over a long model call, one too long shows the client the end late, and
a poll that comes just *before* the end costs a whole interval more. The hint is therefore the time this run is
likely to still need: how long recent completed runs of the same model took (learned, per process, from the
completed runs this process answered with), at their 75th percentile, less the time this run has had, plus a small
margin. A run past that point is polled at a quarter of its age (it is slower than usual: about to finish or long);
one of a model not seen yet gets the old fixed 200 ms.

A hint, however good, still leaves the end seen one interval late at worst, and each poll costs a request. So a
poll helper's GET (both SDKs mark it ``X-Stainless-Poll-Helper: true``) of an active run is *held*: answered as soon
as the run reaches a status the helper stops at (requires_action or terminal: an end event in the run's stream),
or after ``RUN_POLL_HOLD_SECONDS``, with the run as it is then and a short hint (the hold was the wait). A held GET
waits on the stream asynchronously, with no thread or database connection, like an event stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict, deque

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone

from runs import events, selectors, streaming
from runs.models import Run
from runs.serializers import run_out

logger = logging.getLogger(__name__)

IDLE_MS = 1000  # finished, or waiting for the client's tool outputs
CANCELLING_MS = 50  # a worker ends a cancelling run within one streamed chunk
UNKNOWN_MS = 200  # no completed run of this model seen yet
MARGIN_MS = 10
MIN_MS, MAX_MS = 20, 5000
QUANTILE = 0.75  # higher: fewer polls that come just short of the end, but later ones for the typical run
WINDOW = 32  # recent durations kept per model
MODELS = 256  # models remembered
HELD_MS = 20  # the hint after a hold that ended with the run still active: the hold was the wait
POLL_HELPER_HEADER = "X-Stainless-Poll-Helper"

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


def hold_cursor(request, run_public_id: str) -> str | None:
    """For a poll helper's GET, the run's stream position now (read *before* the run, so an end that commits after
    that read is not missed); None: this GET is answered at once."""
    if settings.RUN_POLL_HOLD_SECONDS <= 0 or request.headers.get(POLL_HELPER_HEADER) != "true":
        return None
    try:
        return events.newest_event_id(run_public_id)
    except Exception:  # Redis is unreachable: nothing to wait on, so answered at once, like a plain GET
        logger.warning("could not read the stream of %s; a poll is answered without holding", run_public_id)
        return None


def holds(run: Run) -> bool:
    """Whether a poll helper would poll this run again (so there is an end to wait for)."""
    return run.status in (Run.Status.QUEUED, Run.Status.IN_PROGRESS, Run.Status.CANCELLING)


def held_response(run: Run, *, after: str) -> StreamingHttpResponse:
    """The run as it is once its stream has an end event after ``after``, or after the hold."""
    seconds = settings.RUN_POLL_HOLD_SECONDS

    async def body():
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            await streaming.wait_for_end(run.public_id, after, seconds)
        except Exception:  # Redis is unreachable: the hold still spaces the polls out, as the client's sleep would
            logger.warning("could not wait on the stream of %s; holding the poll without it", run.public_id)
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        try:
            now = await sync_to_async(selectors.run_reread)(run) or run
        except Exception:  # the answer has begun: the run as this request first read it is the answer left
            logger.exception("could not read %s again after holding a poll", run.public_id)
            now = run
        observe(now)
        yield json.dumps(run_out(now)).encode()

    streaming.release_connection()
    response = StreamingHttpResponse(body(), content_type="application/json")
    response["openai-poll-after-ms"] = str(HELD_MS)
    return response


def reset() -> None:
    """Forget what was learned (tests)."""
    with _lock:
        _durations.clear()
        _learned.clear()
