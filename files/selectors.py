from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from assistants_project.api.errors import NotFoundError
from files.models import File
from tenancy.models import Project


def file_list(*, project: Project, purpose: str | None = None) -> QuerySet[File]:
    qs = File.objects.filter(project=project).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    if purpose:
        qs = qs.filter(purpose=purpose)
    return qs


def file_get(*, project: Project, file_id: str) -> File:
    file = file_list(project=project).filter(public_id=file_id).first()
    if file is None:
        raise NotFoundError(f"No such File object: {file_id}", param="file_id")
    return file
