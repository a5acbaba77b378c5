"""Writes: projects and API keys."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from assistants_project.api import keycache
from tenancy import credentials
from tenancy.models import ApiKey, Project, ProviderCredential, hash_key


def project_get_or_create(*, name: str = "default") -> Project:
    project, _ = Project.objects.get_or_create(name=name)
    return project


def api_key_create(*, project: Project, name: str = "", raw: str | None = None) -> str:
    """Store a key's hash and return the key: the only time it is ever shown."""
    raw = raw or ApiKey.generate_raw()
    key = ApiKey(project=project, name=name)
    key.set_key(raw)
    key.save()
    return raw


def api_key_ensure(*, project: Project, raw: str) -> None:
    """Make exactly this key valid for the project (ASSISTANTS_API_KEY)."""
    key = ApiKey.objects.filter(key_hash=hash_key(raw)).first()
    if key is None:
        api_key_create(project=project, name="ASSISTANTS_API_KEY", raw=raw)
    elif key.revoked_at is not None or key.project_id != project.pk:
        key.revoked_at, key.project = None, project
        key.save(update_fields=["revoked_at", "project"])


def api_key_revoke(*, raw: str) -> bool:
    revoked = ApiKey.objects.filter(key_hash=hash_key(raw), revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key_cache_forget(key_hash=hash_key(raw))  # update() sends no signal
    return bool(revoked)


def api_key_cache_forget(*, key_hash: str) -> None:
    """Drop a key from this process's authentication cache (other processes notice within a second: keycache)."""
    keycache.forget(key_hash)


# --- provider credentials (tenancy/credentials.py) -------------------------------------------------------------


def provider_credential_set(*, project: Project, provider: str, params: dict) -> ProviderCredential:
    """Store (or replace) the project's parameters for ``provider``, encrypted."""
    provider = provider.strip().lower()
    if not provider or not params:
        raise ValueError("a provider name and at least one parameter are required")
    row, _ = ProviderCredential.objects.update_or_create(
        project=project, provider=provider,
        defaults={"sealed": credentials.encrypt(params), "param_names": sorted(params)})
    return row


def provider_credential_delete(*, project: Project, provider: str) -> bool:
    return bool(ProviderCredential.objects.filter(project=project, provider=provider.strip().lower()).delete()[0])


def provider_credentials_rotate() -> int:
    """Re-encrypt every stored credential under the newest CREDENTIALS_ENCRYPTION_KEY (after prepending a new key
    to the list); the old key can then be removed."""
    count = 0
    with transaction.atomic():
        for row in ProviderCredential.objects.select_for_update():
            row.sealed = credentials.reencrypt(row.sealed)
            row.save(update_fields=["sealed", "updated_at"])
            count += 1
    return count
