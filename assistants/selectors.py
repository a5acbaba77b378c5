"""Reads. Every selector is scoped to a project; another project's id reads as unknown."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Count, Max, OuterRef, QuerySet, Subquery, Sum

from assistants.models import ApiKey, Assistant, Message, Project, Thread, hash_key
from assistants_project import rows
from assistants_project.api.errors import NotFoundError
from assistants_project.api.pagination import in_parent


def api_key_for_raw(raw: str) -> ApiKey | None:
    return (
        ApiKey.objects.select_related("project")
        .filter(key_hash=hash_key(raw), revoked_at__isnull=True)
        .first()
    )


def api_keys_generation() -> tuple:
    """Changes whenever any key is created, revoked, deleted or moved (see assistants_project/api/keycache.py)."""
    row = ApiKey.objects.aggregate(n=Count("id"), top=Max("id"), revoked=Max("revoked_at"), projects=Sum("project_id"))
    return row["n"], row["top"], row["revoked"], row["projects"]


def api_key_project(raw: str) -> tuple[Project, int] | None:
    """(project, API key id) of a valid key, or None; cached per process (keycache), never for unknown keys."""
    from assistants_project.api import keycache

    def load() -> tuple[int, int, str] | None:
        key = api_key_for_raw(raw)
        return None if key is None else (key.pk, key.project_id, key.project.name)

    found = keycache.cached_key(hash_key(raw), load=load, generation=api_keys_generation)
    if found is None:
        return None
    key_pk, project_pk, name = found
    return Project.from_db(DEFAULT_DB_ALIAS, ["id", "name"], [project_pk, name]), key_pk


def assistant_list(*, project: Project) -> QuerySet[Assistant]:
    return Assistant.objects.filter(project=project)


def assistant_get(*, project: Project, assistant_id: str) -> Assistant:
    assistant = Assistant.objects.filter(project=project, public_id=assistant_id).first()
    if assistant is None:
        raise NotFoundError(f"No assistant found with id '{assistant_id}'.")
    return assistant


def thread_get(*, project: Project, thread_id: str, for_update: bool = False,
               with_active_run: bool = False) -> Thread:
    """``with_active_run`` also reads, in the same round trip, the public id of the thread's active run (or
    None) as ``thread.active_run_id``."""
    qs = Thread.objects.filter(project=project, public_id=thread_id)
    if with_active_run:
        from runs.models import Run

        qs = qs.annotate(active_run_id=Subquery(
            Run.objects.filter(thread=OuterRef("pk"), status__in=Run.ACTIVE).values("public_id")[:1]))
    if for_update:
        qs = qs.select_for_update(of=("self",))
    thread = qs.first()
    if thread is None:
        raise NotFoundError(f"No thread found with id '{thread_id}'.")
    return thread


def thread_for_run(*, project: Project, thread_id: str, assistant_id: str) -> tuple[Thread, Assistant | None]:
    """What creating a run reads, in one round trip (it is on the path to a stream's first token): the thread,
    row-locked, with its active run's public id as ``thread.active_run_id`` (or None), and the assistant (None if
    the project has no such assistant)."""
    from runs.models import Run

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {rows.columns(Thread, 't')}, "
            f"(SELECT r.public_id FROM {Run._meta.db_table} r WHERE r.thread_id = t.id AND r.status = ANY(%s) "
            f"LIMIT 1), {rows.columns(Assistant, 'a')} "
            f"FROM {Thread._meta.db_table} t LEFT JOIN {Assistant._meta.db_table} a "
            "ON a.project_id = t.project_id AND a.public_id = %s "
            "WHERE t.project_id = %s AND t.public_id = %s FOR UPDATE OF t",
            [list(Run.ACTIVE), assistant_id, project.pk, thread_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFoundError(f"No thread found with id '{thread_id}'.")
    split = len(Thread._meta.concrete_fields)
    thread = rows.from_row(Thread, row[:split])
    thread.active_run_id = row[split]
    assistant = rows.from_row(Assistant, row[split + 1:]) if row[split + 1] is not None else None
    return thread, assistant


def message_list(*, thread: Thread, run_id: str | None = None) -> QuerySet[Message]:
    """Oldest first by pk. Page it with ``paginate(..., parent_field="thread_id")``
    to stay on the (thread, id) index however large the thread and the table are."""
    qs = in_parent(Message.objects.all(), parent_field="thread_id", parent_id=thread.pk)
    if run_id:
        qs = qs.filter(run_public_id=run_id)
    return qs


def message_get(*, thread: Thread, message_id: str) -> Message:
    message = Message.objects.filter(thread=thread, public_id=message_id).first()
    if message is None:
        raise NotFoundError(f"No message found with id '{message_id}'.")
    return message
