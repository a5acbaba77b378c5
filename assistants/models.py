"""Tenancy (Project, ApiKey) and conversation state (Assistant, Thread, Message)."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models

from assistants_project.api.ids import new_id
from assistants_project.api.models import TenantModel


class Project(models.Model):
    """A tenant: owns API keys and every object."""

    public_id = models.CharField(max_length=64, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_id("project")
        super().save(*args, **kwargs)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """Only the SHA-256 of a key is stored; the key itself is shown once, at creation."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.project})"

    @staticmethod
    def generate_raw() -> str:
        return "sk-" + secrets.token_urlsafe(32)

    def set_key(self, raw: str) -> None:
        self.key_hash = hash_key(raw)
        self.prefix = raw[:8]


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
