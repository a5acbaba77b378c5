"""A thread's code_interpreter session as a record, shaped like OpenAI's container object (/v1/containers)."""

from __future__ import annotations

import secrets

from django.db import models

from assistants_project.api.models import epoch
from tenancy.models import TenantModel


class Container(TenantModel):
    """One sandbox session of a thread. A new session (after idle expiry, a restart, another worker) is a new record;
    the old one is ``expired``: a thread has at most one ``running`` record. ``files`` lists the working directory
    after the last call."""

    class Status(models.TextChoices):
        RUNNING = "running"
        EXPIRED = "expired"

    thread_id = models.CharField(max_length=64, db_index=True)  # the thread's public id
    name = models.CharField(max_length=256, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    last_active_at = models.DateTimeField()
    expires_after_minutes = models.PositiveIntegerField()
    memory_limit = models.CharField(max_length=16)  # as OpenAI writes it: "1g"
    files = models.JSONField(default=list)  # [{"path": "/mnt/data/…", "bytes": n}]
    worker = models.CharField(max_length=128, blank=True, default="")  # host:pid holding the live session

    class Meta:
        indexes = [models.Index(fields=["status", "last_active_at"])]
        constraints = [  # one live session, so one running record, per thread (services._container_create)
            models.UniqueConstraint(fields=["project", "thread_id"], condition=models.Q(status="running"),
                                    name="sandbox_container_one_running_per_thread")]

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = "cntr_" + secrets.token_hex(24)
        super().save(*args, **kwargs)

    def to_openai(self) -> dict:
        return {
            "id": self.public_id,
            "object": "container",
            "name": self.name or self.thread_id,
            "created_at": epoch(self.created_at),
            "status": self.status,
            "last_active_at": epoch(self.last_active_at),
            "expires_after": {"anchor": "last_active_at", "minutes": self.expires_after_minutes},
            "memory_limit": self.memory_limit,
        }
