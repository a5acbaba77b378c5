"""Writes for files. The bytes go through files/storage.py."""

from __future__ import annotations

import functools
import mimetypes
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from assistants_project.api.ids import new_id
from files import storage
from files.models import File
from files.uploads import too_large_error
from tenancy.models import Project

BATCH_DEFAULT_TTL = timedelta(days=30)  # OpenAI: "files with purpose=batch expire after 30 days" by default
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


def content_type_for(*, filename: str, declared: str | None) -> str:
    declared = (declared or "").split(";")[0].strip().lower()
    if declared not in GENERIC_TYPES:
        return declared
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def file_create_output(*, project: Project, filename: str, data: bytes, content_type: str | None = None) -> File:
    """A file a tool made (code_interpreter's figures and written files): purpose ``assistants_output``."""
    public_id = new_id("file")
    storage_name = storage.save(project_public_id=project.public_id, file_public_id=public_id,
                                content=ContentFile(data, name=filename))
    try:
        return File.objects.create(
            project=project, public_id=public_id, filename=filename, purpose=File.Purpose.ASSISTANTS_OUTPUT,
            bytes=len(data), content_type=content_type_for(filename=filename, declared=content_type),
            storage_name=storage_name)
    except BaseException:
        storage.delete([storage_name])
        raise


def file_create(*, project: Project, upload: UploadedFile, purpose: str, expires_after: dict | None = None) -> File:
    """Stream ``upload`` into storage under ``<project id>/<file id>`` (never the client's file name), then
    record it. If recording fails the stored bytes are removed again."""
    if upload.size is not None and upload.size > settings.FILE_UPLOAD_MAX_BYTES:
        raise too_large_error()
    # A parsed upload has both (Django annotates them as optional for files built in code).
    assert upload.name is not None and upload.size is not None
    public_id = new_id("file")
    ttl: timedelta | None
    if expires_after:
        ttl = timedelta(seconds=expires_after["seconds"])
    else:
        ttl = BATCH_DEFAULT_TTL if purpose == File.Purpose.BATCH else None
    upload.seek(0)
    storage_name = storage.save(project_public_id=project.public_id, file_public_id=public_id, content=upload)
    try:
        with transaction.atomic():
            file = File.objects.create(
                project=project,
                public_id=public_id,
                filename=upload.name,
                purpose=purpose,
                bytes=upload.size,
                content_type=content_type_for(filename=upload.name, declared=upload.content_type),
                storage_name=storage_name,
            )
            if ttl is not None:  # anchored on created_at, which the database row just got
                file.expires_at = file.created_at + ttl
                file.save(update_fields=["expires_at"])
    except BaseException:
        storage.delete([storage_name])
        raise
    return file


def file_delete(*, file: File) -> None:
    """The row goes now (vector-store links cascade with it); the bytes once that is committed."""
    with transaction.atomic():
        name = file.storage_name
        file.delete()
        transaction.on_commit(lambda: storage.delete([name]))


def file_purge_expired(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Delete every file past its ``expires_at``, in batches; returns how many went."""
    now = now or timezone.now()
    purged = 0
    while True:
        with transaction.atomic():
            rows = list(
                File.objects.filter(expires_at__lte=now).order_by("pk")
                .select_for_update(skip_locked=True).values_list("pk", "storage_name")[:batch_size]
            )
            if not rows:
                return purged
            File.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
            names = [name for _, name in rows]
            transaction.on_commit(functools.partial(storage.delete, names))
        purged += len(rows)
        if len(rows) < batch_size:
            return purged

