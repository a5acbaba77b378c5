"""Writes for assistants. Services own their transactions."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from assistants.models import Assistant, Message, Thread
from assistants.selectors import thread_get
from assistants_project.api.errors import InvalidRequest, NotFoundError, OpenAIError
from runs import tools
from tenancy.models import Project


def assistant_create(*, project: Project, **fields: Any) -> Assistant:
    with transaction.atomic():
        fields["tool_resources"] = tools.resources_resolve(project=project, tool_resources=fields.get("tool_resources"))
        fields["tools"] = fields.get("tools") or []
        fields["metadata"] = fields.get("metadata") or {}
        return Assistant.objects.create(project=project, **fields)


def assistant_modify(*, assistant: Assistant, **fields: Any) -> Assistant:
    with transaction.atomic():
        if "tool_resources" in fields:
            fields["tool_resources"] = tools.resources_resolve(project=assistant.project,
                                                              tool_resources=fields["tool_resources"])
        if "tools" in fields:
            fields["tools"] = fields["tools"] or []
        if "metadata" in fields:
            fields["metadata"] = fields["metadata"] or {}
        for name, value in fields.items():
            setattr(assistant, name, value)
        assistant.save(update_fields=list(fields) or None)
    return assistant


def assistant_delete(*, assistant: Assistant) -> None:
    assistant.delete()


def thread_create(*, project: Project, messages: list[dict] | None = None, tool_resources: dict | None = None,
                  metadata: dict | None = None, savepoint: bool = True) -> Thread:
    """All or nothing: a bad third message (say, an unknown file) leaves no thread and no messages behind.
    ``savepoint=False``: a caller whose whole transaction fails with this one saves the savepoint's two round
    trips."""
    with transaction.atomic(savepoint=savepoint):
        thread = Thread.objects.create(
            project=project,
            tool_resources=tools.resources_resolve(project=project, tool_resources=tool_resources),
            metadata=metadata or {},
        )
        for index, message in enumerate(messages or []):
            try:
                message_create(thread=thread, **message)
            except OpenAIError as exc:  # point at the message inside the request
                exc.param = f"messages[{index}].{exc.param}" if exc.param else f"messages[{index}]"
                raise
    return thread


def thread_modify(*, thread: Thread, **fields: Any) -> Thread:
    with transaction.atomic():
        if "tool_resources" in fields:
            fields["tool_resources"] = tools.resources_resolve(project=thread.project,
                                                              tool_resources=fields["tool_resources"])
        if "metadata" in fields:
            fields["metadata"] = fields["metadata"] or {}
        for name, value in fields.items():
            setattr(thread, name, value)
        if fields:
            thread.save(update_fields=list(fields))
    return thread


def thread_delete(*, thread: Thread) -> None:
    """Its messages, runs and run steps go with it (database cascades); files stay."""
    thread.delete()


def message_content_parts(content: str | list[dict]) -> list[dict]:
    """Request content (a string, or ``text``/``image_url``/``image_file`` parts) → stored typed parts.

    Parts already in the stored shape (``text`` as ``{value, annotations}``, ``refusal``) pass through, so
    the runs engine can hand over what the model produced."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    parts = []
    for part in content:
        kind = part["type"]
        if kind == "text":
            text = part["text"]
            if isinstance(text, str):
                text = {"value": text, "annotations": []}
            else:
                text = {"value": text["value"], "annotations": list(text.get("annotations") or [])}
            parts.append({"type": "text", "text": text})
        elif kind in ("image_url", "image_file"):
            parts.append({"type": kind, kind: {**part[kind], "detail": part[kind].get("detail") or "auto"}})
        elif kind == "refusal":
            parts.append({"type": "refusal", "refusal": part["refusal"]})
        else:
            raise ValueError(f"unknown content part type {kind!r}")
    return parts


def _check_files(*, thread: Thread, content: list[dict], attachments: list[dict]) -> None:
    """Every referenced file must exist in the thread's project; another project's file reads as unknown."""
    from files.selectors import file_get

    refs = [(part["image_file"]["file_id"], f"content[{i}].image_file.file_id")
            for i, part in enumerate(content) if part["type"] == "image_file"]
    refs += [(attachment["file_id"], f"attachments[{i}].file_id") for i, attachment in enumerate(attachments)]
    for file_id, param in refs:
        try:
            file_get(project=thread.project, file_id=file_id)
        except NotFoundError as exc:
            exc.param = param
            raise


def message_create(*, thread: Thread, role: str, content: str | list[dict], attachments: list[dict] | None = None,
                   metadata: dict | None = None, assistant_id: str | None = None, run_id: str | None = None,
                   status: str = Message.Status.COMPLETED) -> Message:
    """Store one message. No active-run check: the runs engine writes its own messages through this too
    (the API goes through ``message_add``). file_search attachments also go into the thread's vector store,
    as on OpenAI."""
    parts = message_content_parts(content)
    attachments = [{"file_id": a["file_id"], "tools": list(a.get("tools") or [])} for a in attachments or []]
    _check_files(thread=thread, content=parts, attachments=attachments)
    # every caller has its own transaction, which an error here aborts anyway: no savepoint (two round trips)
    with transaction.atomic(savepoint=False):
        message = Message.objects.create(
            project_id=thread.project_id,
            thread=thread,
            role=role,
            content=parts,
            attachments=attachments,
            metadata=metadata or {},
            assistant_public_id=assistant_id,
            run_public_id=run_id,
            status=status,
            completed_at=timezone.now() if status == Message.Status.COMPLETED else None,
            incomplete_at=timezone.now() if status == Message.Status.INCOMPLETE else None,
        )
        tools.attachments_index(thread=thread, attachments=attachments)
    return message


def message_add(*, project: Project, thread_id: str, role: str, content: str | list[dict],
                attachments: list[dict] | None = None, metadata: dict | None = None) -> Message:
    """``POST /threads/{id}/messages``: refused while a run is active on the thread. The thread row is locked
    first, so this cannot interleave with a run being created on it."""
    with transaction.atomic():
        thread = thread_get(project=project, thread_id=thread_id, for_update=True, with_active_run=True)
        if thread.active_run_id is not None:
            raise InvalidRequest(
                f"Can't add messages to {thread.public_id} while a run {thread.active_run_id} is active.")
        return message_create(thread=thread, role=role, content=content, attachments=attachments,
                              metadata=metadata)


def message_modify(*, message: Message, **fields: Any) -> Message:
    """Only ``metadata`` can change (replaced whole, as on OpenAI's API); omitted fields are kept."""
    if "metadata" in fields:
        message.metadata = fields["metadata"] or {}
        message.save(update_fields=["metadata"])
    return message


def message_delete(*, message: Message) -> None:
    message.delete()


def vector_store_forget(*, project_id: int, vector_store_id: str) -> int:
    """Remove a deleted vector store's id from every assistant's and thread's ``file_search`` resources."""
    changed = 0
    for model in (Assistant, Thread):
        rows = model.objects.select_for_update().filter(
            project_id=project_id, tool_resources__file_search__vector_store_ids__contains=[vector_store_id])
        for row in rows.order_by("pk"):
            search = row.tool_resources["file_search"]
            search["vector_store_ids"] = [i for i in search["vector_store_ids"] if i != vector_store_id]
            row.save(update_fields=["tool_resources"])
            changed += 1
    return changed
