"""Reads for runs and steps, scoped through the thread (itself scoped to a project)."""

from __future__ import annotations

from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery

from assistants.models import Assistant, Thread
from assistants_project import rows
from assistants_project.api.errors import NotFoundError
from assistants_project.api.pagination import in_parent
from runs.models import Run, RunStep
from tenancy.models import Project


def run_list(*, thread: Thread) -> QuerySet[Run]:
    """Page with ``paginate(..., parent_field="thread_id")``."""
    return in_parent(Run.objects.all(), parent_field="thread_id", parent_id=thread.pk)


def run_get(*, thread: Thread, run_id: str) -> Run:
    run = Run.objects.filter(thread=thread, public_id=run_id).first()
    if run is None:
        raise NotFoundError(f"No run found with id '{run_id}'.")
    run.thread = thread  # read already: run_out needs it, and a lazy read would be one more query per poll
    return run


def run_reread(run: Run) -> Run | None:
    """The run's row as it is now (None: deleted meanwhile), for a run already found in scope."""
    fresh = Run.objects.filter(pk=run.pk).first()
    if fresh is not None:
        fresh.thread = run.thread
    return fresh


def step_list(*, run: Run) -> QuerySet[RunStep]:
    """Page with ``paginate(..., parent_field="run_id")``."""
    return in_parent(RunStep.objects.all(), parent_field="run_id", parent_id=run.pk)


def step_get(*, run: Run, step_id: str) -> RunStep:
    step = RunStep.objects.filter(run=run, public_id=step_id).first()
    if step is None:
        raise NotFoundError(f"No run step found with id '{step_id}'.")
    return step


def active_run_of(thread_pk: OuterRef) -> Subquery:
    """The public id of the thread's active run (or None), as an expression over ``thread_pk`` (an ``OuterRef``):
    registered with assistants (runs.apps), whose thread reads ask it so that adding a message is refused while
    a run is active, in the same round trip as the thread's row lock."""
    return Subquery(Run.objects.filter(thread=thread_pk, status__in=Run.ACTIVE).values("public_id")[:1])


def thread_for_run(*, project: Project, thread_id: str, assistant_id: str,
                   creation_lock: list[int]) -> tuple[Thread, Assistant | None, int]:
    """What creating a run reads, in one round trip (it is on the path to a stream's first token): the thread,
    row-locked, with its active run's public id as ``thread.active_run_id`` (or None); the assistant (None if the
    project has no such assistant); and the new run's id, drawn from its sequence, with the transaction-scoped
    advisory lock ``creation_lock`` taken (``runs.lifecycle.creation_lock_keys``: the run's task, sent before the
    row is written, waits on it before its claim)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {rows.columns(Thread, 't')}, "
            f"(SELECT r.public_id FROM {Run._meta.db_table} r WHERE r.thread_id = t.id AND r.status = ANY(%s) "
            f"LIMIT 1), {rows.columns(Assistant, 'a')}, "
            f"nextval(pg_get_serial_sequence('{Run._meta.db_table}', 'id')), pg_advisory_xact_lock(%s, %s) "
            f"FROM {Thread._meta.db_table} t LEFT JOIN {Assistant._meta.db_table} a "
            "ON a.project_id = t.project_id AND a.public_id = %s "
            "WHERE t.project_id = %s AND t.public_id = %s FOR UPDATE OF t",
            [list(Run.ACTIVE), *creation_lock, assistant_id, project.pk, thread_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFoundError(f"No thread found with id '{thread_id}'.")
    split, end = len(Thread._meta.concrete_fields), len(Thread._meta.concrete_fields) + 1 + len(
        Assistant._meta.concrete_fields)
    thread = rows.from_row(Thread, row[:split])
    thread.active_run_id = row[split]
    assistant = rows.from_row(Assistant, row[split + 1:end]) if row[split + 1] is not None else None
    return thread, assistant, row[end]


def active_run_count(*, project: Project) -> int:
    """Runs of the project that are not finished (its concurrent-runs limit)."""
    return Run.objects.filter(project=project, status__in=Run.ACTIVE).count()
