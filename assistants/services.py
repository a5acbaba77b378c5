"""Writes for assistants. Services own their transactions."""

from __future__ import annotations

from django.db import transaction

from assistants.models import Assistant, Project
from assistants.tool_resources import tool_resources_resolve


def assistant_create(*, project: Project, **fields) -> Assistant:
    with transaction.atomic():
        fields["tool_resources"] = tool_resources_resolve(project=project, tool_resources=fields.get("tool_resources"))
        fields["tools"] = fields.get("tools") or []
        fields["metadata"] = fields.get("metadata") or {}
        return Assistant.objects.create(project=project, **fields)


def assistant_modify(*, assistant: Assistant, **fields) -> Assistant:
    with transaction.atomic():
        if "tool_resources" in fields:
            fields["tool_resources"] = tool_resources_resolve(project=assistant.project,
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


def project_get_or_create(*, name: str = "default") -> Project:
    project, _ = Project.objects.get_or_create(name=name)
    return project


def api_key_create(*, project: Project, name: str = "", raw: str | None = None) -> str:
    """Store a key's hash and return the key: the only time it is ever shown."""
    from assistants.models import ApiKey

    raw = raw or ApiKey.generate_raw()
    key = ApiKey(project=project, name=name)
    key.set_key(raw)
    key.save()
    return raw


def api_key_ensure(*, project: Project, raw: str) -> None:
    """Make exactly this key valid for the project (ASSISTANTS_API_KEY)."""
    from assistants.models import ApiKey, hash_key

    key = ApiKey.objects.filter(key_hash=hash_key(raw)).first()
    if key is None:
        api_key_create(project=project, name="ASSISTANTS_API_KEY", raw=raw)
    elif key.revoked_at is not None or key.project_id != project.pk:
        key.revoked_at, key.project = None, project
        key.save(update_fields=["revoked_at", "project"])


def api_key_revoke(*, raw: str) -> bool:
    from django.utils import timezone

    from assistants.models import ApiKey, hash_key

    return bool(ApiKey.objects.filter(key_hash=hash_key(raw), revoked_at__isnull=True)
                .update(revoked_at=timezone.now()))
