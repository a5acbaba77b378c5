"""Every read and write of stored file bytes: Django's storage API (local disk or any S3-compatible store), under
``<project id>/<file id>`` (never the client's file name). Nothing else opens, saves or deletes stored bytes."""

from __future__ import annotations

import logging
from typing import Any

from django.core.files.base import File
from django.core.files.storage import default_storage

logger = logging.getLogger(__name__)


def save(*, project_public_id: str, file_public_id: str, content: File) -> str:
    """Stream ``content`` (a Django File) into storage; returns the name to keep on the row."""
    return default_storage.save(f"{project_public_id}/{file_public_id}", content)


def open_stream(name: str) -> Any:  # a django File, or botocore's StreamingBody
    """A readable handle on the stored bytes (``read(n)``, ``close()``). For django-storages' S3 the object body
    is read as it arrives: its S3File would first download the whole object into a spool that, by default, stays
    in memory."""
    handle = default_storage.open(name, "rb")
    s3_object = getattr(handle, "obj", None)
    if s3_object is not None and hasattr(s3_object, "get"):
        return s3_object.get()["Body"]  # botocore StreamingBody: read(n), close()
    return handle


def read_bytes(name: str) -> bytes:
    """All the stored bytes (ingestion, images for the model). Raises OSError if they cannot be read."""
    with default_storage.open(name, "rb") as handle:
        data: bytes = handle.read()  # mode "rb"
    return data


def delete(names: list[str]) -> None:
    """Remove stored bytes whose row is gone; an orphan blob is logged, not fatal."""
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            logger.exception("could not delete stored file %s", name)
