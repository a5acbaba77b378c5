"""Shared by the threads/messages/files tests: storage in a temporary directory, and quick uploads."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile


@pytest.fixture
def storage_dir(settings, tmp_path) -> Path:
    """Django's default storage (and upload temp files) under tmp_path, so tests can count what is left."""
    root = tmp_path / "storage"
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}}}
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    return root


def stored(root: Path) -> list[Path]:
    """Every file under a storage (or temp) directory."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def make_file(project, content: bytes = b"hello", name: str = "notes.txt", purpose: str = "assistants"):
    from files.services import file_create

    return file_create(project=project, upload=SimpleUploadedFile(name, content, "text/plain"), purpose=purpose)
