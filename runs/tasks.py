"""Thin Celery interfaces over the engine, the lifecycle and the sweeper. This is the top of the runs app: it
registers itself as the lifecycle's way to send a run to a worker."""

import logging

from celery import shared_task

from assistants_project.api.errors import outage_of
from runs import engine, lifecycle, sweeper

logger = logging.getLogger(__name__)


def _on_failure(self, exc, task_id, args, kwargs, einfo):
    if outage_of(exc):
        # The database or broker went away mid-run (and failing the run would need them too): the attempt's
        # heartbeat has stopped, so the sweeper re-enqueues the run once they are back, as after a worker crash.
        logger.warning("run %s: attempt ended by an outage of the %s; left to the sweeper", args[0], outage_of(exc))
        return
    lifecycle.run_fail(run_id=args[0], code="server_error",
                       message="The server had an error while processing this run.")


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, on_failure=_on_failure)
def run_execute(self, run_id: int) -> None:
    engine.run_execute(run_id=run_id, task_id=self.request.id)


@shared_task
def runs_sweep() -> dict:
    return sweeper.runs_sweep()


def _send(run_pk: int, task_id: str) -> None:
    run_execute.apply_async(args=[run_pk], task_id=task_id)


lifecycle.register_sender(_send)
