"""Thin Celery interfaces over the run services."""

from celery import shared_task


def _on_failure(self, exc, task_id, args, kwargs, einfo):
    from runs.services import run_fail

    run_fail(run_id=args[0], code="server_error", message="The server had an error while processing this run.")


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, on_failure=_on_failure)
def run_execute(self, run_id: int) -> None:
    from runs.engine import run_execute as execute

    execute(run_id=run_id, task_id=self.request.id)


@shared_task
def runs_sweep() -> dict:
    from runs.services import runs_sweep as sweep

    return sweep()
