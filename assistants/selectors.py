"""Reads. Every selector is scoped to a project; another project's id reads as unknown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import CharField, OuterRef, QuerySet, Value

from assistants.models import Assistant, Message, Thread
from assistants_project.api.errors import NotFoundError
from assistants_project.api.pagination import in_parent
from tenancy.models import Project


def assistant_list(*, project: Project) -> QuerySet[Assistant]:
    return Assistant.objects.filter(project=project)


def assistant_get(*, project: Project, assistant_id: str) -> Assistant:
    assistant = Assistant.objects.filter(project=project, public_id=assistant_id).first()
    if assistant is None:
        raise NotFoundError(f"No assistant found with id '{assistant_id}'.")
    return assistant


# Runs sit above this app: they register how a thread's active run is read (see runs.apps), so threads never
# import runs. ``_active_run_of(thread_pk)`` is an expression for the public id of that thread's active run, or None.
_active_run_of: Callable[[Any], Any] | None = None


def register_active_run_lookup(lookup: Callable[[Any], Any]) -> None:
    global _active_run_of
    _active_run_of = lookup


def thread_get(*, project: Project, thread_id: str, for_update: bool = False,
               with_active_run: bool = False) -> Thread:
    """``with_active_run`` also reads, in the same round trip, the public id of the thread's active run (or
    None) as ``thread.active_run_id``."""
    qs = Thread.objects.filter(project=project, public_id=thread_id)
    if with_active_run:
        # The plugin takes Thread's declared (non-column) active_run_id for a clash; Django checks only fields.
        qs = qs.annotate(active_run_id=_active_run_of(OuterRef("pk")) if _active_run_of  # type: ignore[no-redef]
                           else Value(None, output_field=CharField()))
    if for_update:
        qs = qs.select_for_update(of=("self",))
    thread = qs.first()
    if thread is None:
        raise NotFoundError(f"No thread found with id '{thread_id}'.")
    return thread


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
