"""Run events on the wire: what the lifecycle and the engine ``publish`` (``runs.event_model``) is rendered by the
Assistants renderer and appended to a per-run Redis Stream (``run:{id}:events``).

Workers (and the web process, for the events it causes) append; SSE views read. Events carry the
stream entry id, so a client can resume after a disconnect.
"""

from __future__ import annotations

import json
import logging

from django.db import transaction

from assistants_project.redis import redis_client, stream_entries
from runs.event_model import RunEvent
from runs.renderers.assistants import MESSAGE_DELTA, TERMINAL_RUN_EVENTS, render

logger = logging.getLogger(__name__)

STREAM_MAXLEN = 20_000
STREAM_TTL_SECONDS = 3600


def stream_key(run_public_id: str) -> str:
    return f"run:{run_public_id}:events"


def cancel_key(run_public_id: str) -> str:
    return f"run:{run_public_id}:cancel"


def publish(run_public_id: str, *happened: RunEvent) -> None:
    """Render what happened and append it, in order, in one round trip."""
    _append(run_public_id, [item for event in happened for item in render(event)])


class _OnCommit:
    """The events one transaction publishes for a run, appended together once it commits."""

    def __init__(self, run_public_id: str, items: list[tuple[str, dict]]) -> None:
        self.run_public_id, self.items = run_public_id, items

    def __call__(self) -> None:
        _append(self.run_public_id, self.items)


def publish_on_commit(run_public_id: str, *happened: RunEvent) -> None:
    """Rendered now (the state as of this moment), appended once the transaction commits (at once outside one).
    What a transaction publishes for a run in a row goes out in one round trip: a run's last turn (its message,
    step and end) or a cancel closing open items, one write to Redis and one wake-up of each stream reader."""
    items = [item for event in happened for item in render(event)]
    if not items:
        return
    connection = transaction.get_connection()
    if connection.in_atomic_block and connection.run_on_commit:
        savepoints, latest, _ = connection.run_on_commit[-1]
        # Joined only at the same savepoint depth: a savepoint's rollback drops the callbacks registered in it,
        # so events published inside one must not ride on a callback from outside it.
        if (isinstance(latest, _OnCommit) and latest.run_public_id == run_public_id
                and savepoints == set(connection.savepoint_ids)):
            latest.items += items
            return
    transaction.on_commit(_OnCommit(run_public_id, items))


def _append(run_public_id: str, items: list[tuple[str, dict]]) -> None:
    """Append the events in order, in one round trip, with the stream's expiry after a terminal one. Losing an event
    must never fail a run: log and go on."""
    if not items:
        return
    key = stream_key(run_public_id)
    ends = any(event in TERMINAL_RUN_EVENTS for event, _ in items)
    try:
        client = redis_client()
        if len(items) == 1 and not ends:  # mostly a text delta, the hottest path: no pipeline
            event, data = items[0]
            client.xadd(key, {"event": event, "data": json.dumps(data)}, maxlen=STREAM_MAXLEN, approximate=True)
            return
        pipe = client.pipeline(transaction=False)
        for event, data in items:
            pipe.xadd(key, {"event": event, "data": json.dumps(data)}, maxlen=STREAM_MAXLEN, approximate=True)
        if ends:
            pipe.expire(key, STREAM_TTL_SECONDS)
        pipe.execute()
    except Exception:
        logger.exception("could not publish %d events for %s", len(items), run_public_id)


def newest_event_id(run_public_id: str) -> str:
    """The id of the newest event so far ("0-0" when none): a stream that starts now reads after it. Raises when
    Redis cannot be read."""
    entries = stream_entries(redis_client().xrevrange(stream_key(run_public_id), count=1))
    if not entries:
        return "0-0"
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def last_event_id(run_public_id: str) -> str:
    """``newest_event_id``, or "0-0" (the whole stream) when Redis cannot be read."""
    try:
        return newest_event_id(run_public_id)
    except Exception:
        logger.exception("could not read the stream of %s", run_public_id)
        return "0-0"


def request_cancel(run_public_id: str) -> None:
    try:
        redis_client().set(cancel_key(run_public_id), "1", ex=STREAM_TTL_SECONDS)
    except Exception:
        logger.exception("could not flag %s for cancellation", run_public_id)


def cancel_requested(run_public_id: str) -> bool:
    try:
        return bool(redis_client().exists(cancel_key(run_public_id)))
    except Exception:
        return False


def streamed_text(run_public_id: str, message_id: str) -> str | None:
    """The text of ``message_id`` that its deltas in the run's stream carry (None: the stream is unreadable), so a
    recovered attempt can continue a crashed one's message instead of streaming it twice."""
    try:
        entries = stream_entries(redis_client().xrange(stream_key(run_public_id)))
    except Exception:
        logger.exception("could not read the stream of %s", run_public_id)
        return None
    text = []
    for _, fields in entries:
        if fields[b"event"] == MESSAGE_DELTA.encode():
            data = json.loads(fields[b"data"])
            if data["id"] == message_id:
                text += [part["text"].get("value") or "" for part in data["delta"]["content"] if part.get("text")]
    return "".join(text)
