"""Tenancy: projects, their API keys, and the base model of every object a project owns.

The tables keep the names they had when these models lived in ``assistants`` (migration 0001 only moved them in
Django's state)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.db import models

from assistants_project.api.ids import new_id


class Project(models.Model):
    """A tenant: owns API keys and every object."""

    public_id = models.CharField(max_length=64, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Limits of this project; empty = the deployment's default (RATE_LIMIT_* settings), 0 = unlimited.
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="API requests per minute. Empty: RATE_LIMIT_REQUESTS_PER_MINUTE; 0: no limit.")
    concurrent_runs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Runs queued, in progress or waiting for tool outputs at once. Empty: "
        "RATE_LIMIT_CONCURRENT_RUNS; 0: no limit.")
    tokens_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens of finished runs per UTC day. Empty: RATE_LIMIT_TOKENS_PER_DAY; "
        "0: no limit.")

    class Meta:
        db_table = "assistants_project"

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
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
        db_table = "assistants_apikey"
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.project})"

    @staticmethod
    def generate_raw() -> str:
        return "sk-" + secrets.token_urlsafe(32)

    def set_key(self, raw: str) -> None:
        self.key_hash = hash_key(raw)
        self.prefix = raw[:8]


class TenantModel(models.Model):
    """The abstract base every stored API object shares: tenant, public id, creation time.

    ``pk`` is internal (and the pagination key); ``public_id`` is what the API shows."""

    id_kind: str = ""

    id = models.BigAutoField(primary_key=True)
    public_id = models.CharField(max_length=64, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.public_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.public_id:
            self.public_id = new_id(self.id_kind)
        super().save(*args, **kwargs)


class ProviderCredential(models.Model):
    """A project's own credentials for one LiteLLM provider (``openai``, ``anthropic``, ``azure``, ``bedrock``…):
    LiteLLM parameters such as ``api_key`` or ``aws_region_name``, used by the project's runs, ingestion, search
    and gateway calls unless a request brings its own (tenancy/credentials.py). Stored only as a Fernet token;
    nothing shows the values back."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="provider_credentials")
    provider = models.CharField(max_length=64, help_text="LiteLLM provider name, e.g. openai, anthropic, azure.")
    sealed = models.TextField(editable=False)  # Fernet token of the parameters' JSON
    param_names = models.JSONField(default=list, editable=False)  # what the token holds, for listings
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "provider"], name="tenancy_provider_credential")]

    def __str__(self) -> str:
        return f"{self.provider} ({self.project})"

    def __repr__(self) -> str:
        return f"<ProviderCredential {self.provider} of {self.project_id}: {sorted(self.param_names)}>"
