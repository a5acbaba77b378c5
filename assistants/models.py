"""Conversation state: Assistant, Thread, Message (projects and keys are in ``tenancy``)."""

from __future__ import annotations

from django.db import models

from tenancy.models import TenantModel


class Assistant(TenantModel):
    id_kind = "assistant"

    model = models.CharField(max_length=256)
    name = models.CharField(max_length=256, null=True, blank=True)
    description = models.CharField(max_length=512, null=True, blank=True)
    instructions = models.TextField(null=True, blank=True)
    tools = models.JSONField(default=list)
    tool_resources = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict)
    temperature = models.FloatField(null=True)
    top_p = models.FloatField(null=True)
    response_format = models.JSONField(null=True)
    reasoning_effort = models.CharField(max_length=16, null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "id"])]


class Thread(TenantModel):
    id_kind = "thread"

    tool_resources = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict)
    # Not a column: the public id of the thread's active run (or None), on instances read by
    # ``thread_get(with_active_run=True)`` and ``runs.selectors.thread_for_run`` only.
    active_run_id: str | None

    class Meta:
        indexes = [models.Index(fields=["project", "id"])]


class Message(TenantModel):
    """``pk`` order is the message's position in its thread (monotonic)."""

    id_kind = "message"

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        INCOMPLETE = "incomplete"
        COMPLETED = "completed"

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETED)
    incomplete_details = models.JSONField(null=True)
    completed_at = models.DateTimeField(null=True)
    incomplete_at = models.DateTimeField(null=True)
    assistant_public_id = models.CharField(max_length=64, null=True)
    run_public_id = models.CharField(max_length=64, null=True)
    attachments = models.JSONField(default=list)
    metadata = models.JSONField(default=dict)

    class Meta:
        indexes = [
            models.Index(fields=["thread", "id"]),
            models.Index(fields=["thread", "run_public_id", "id"]),
        ]
