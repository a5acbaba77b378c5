"""Reads for runs and steps, scoped through the thread (itself scoped to a project)."""

from __future__ import annotations

from django.db.models import QuerySet

from assistants.models import Thread
from assistants_project.api.errors import NotFoundError
from assistants_project.api.pagination import in_parent
from runs.models import Run, RunStep


def run_list(*, thread: Thread) -> QuerySet[Run]:
    """Page with ``paginate(..., parent_field="thread_id")``."""
    return in_parent(Run.objects.all(), parent_field="thread_id", parent_id=thread.pk)


def run_get(*, thread: Thread, run_id: str) -> Run:
    run = Run.objects.filter(thread=thread, public_id=run_id).first()
    if run is None:
        raise NotFoundError(f"No run found with id '{run_id}'.")
    return run


def step_list(*, run: Run) -> QuerySet[RunStep]:
    """Page with ``paginate(..., parent_field="run_id")``."""
    return in_parent(RunStep.objects.all(), parent_field="run_id", parent_id=run.pk)


def step_get(*, run: Run, step_id: str) -> RunStep:
    step = RunStep.objects.filter(run=run, public_id=step_id).first()
    if step is None:
        raise NotFoundError(f"No run step found with id '{step_id}'.")
    return step
