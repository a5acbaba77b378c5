"""The safety net, run by beat (``runs.tasks.runs_sweep``): expire paused runs past ``expires_at``; recover runs
whose worker died (re-sent once, then failed); finish cancellations nobody is working on; re-send lost queued
runs."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from runs.lifecycle import enqueue, run_expire, run_fail, run_finish_cancel
from runs.models import Run

logger = logging.getLogger(__name__)

RECOVERY_ATTEMPTS = 2


def runs_sweep() -> dict:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS)

    def ids(*conditions, **filters) -> list[int]:
        return list(Run.objects.filter(*conditions, **filters).values_list("pk", flat=True))

    silent = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, created_at__lt=stale)
    counts = {"expired": 0, "recovered": 0, "failed": 0, "cancelled": 0, "requeued": 0}
    for run_id in ids(status=Run.Status.REQUIRES_ACTION, expires_at__lt=now):
        counts["expired"] += run_expire(run_id=run_id)
    for run_id in ids(silent, status=Run.Status.CANCELLING):
        counts["cancelled"] += run_finish_cancel(run_id=run_id)
    for run_id in ids(status=Run.Status.IN_PROGRESS, heartbeat_at__lt=stale):
        outcome = run_recover(run_id=run_id, stale_before=stale)
        if outcome:
            counts[outcome] += 1
    # Queued and silent (never claimed, or back in the queue after a tool round): its task may be lost. A new task
    # takes over the run (the old one, if it turns up, is then a no-op), once per stale window while it waits.
    for run_id in ids(silent, status=Run.Status.QUEUED):
        with transaction.atomic():
            run = Run.objects.select_for_update().filter(silent, pk=run_id, status=Run.Status.QUEUED).first()
            if run is not None:
                run.heartbeat_at = now
                run.save(update_fields=["heartbeat_at"])
                enqueue(run)
                counts["requeued"] += 1
    return counts


def run_recover(*, run_id: int, stale_before) -> str | None:
    """A run whose worker stopped heartbeating: hand it to a new task once, or fail it."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id, status=Run.Status.IN_PROGRESS,
                                                     heartbeat_at__lt=stale_before).first()
        if run is None:
            return None
        if run.attempts >= RECOVERY_ATTEMPTS:
            transaction.on_commit(lambda: run_fail(
                run_id=run_id, code="server_error",
                message="The worker executing this run stopped unexpectedly, and so did its retry."))
            return "failed"
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["heartbeat_at"])
        logger.warning("run %s lost its worker; re-enqueueing", run.public_id)
        enqueue(run)
        return "recovered"
