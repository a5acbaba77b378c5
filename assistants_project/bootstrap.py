"""What the run command does before serving: pgvector check, migrations, the API key."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.utils import Error as DatabaseError


class BootstrapError(Exception):
    """A startup failure worth one clear sentence, not a traceback."""


def check_vector_extension() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except DatabaseError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BootstrapError(
            "The database at DATABASE_URL cannot create the 'vector' extension (pgvector is not installed "
            f"there, or this role may not create extensions): {reason}"
        ) from None


def ensure_api_key(out=sys.stdout) -> None:
    from tenancy.models import ApiKey
    from tenancy.services import api_key_create, api_key_ensure, project_get_or_create

    project = project_get_or_create(name="default")
    if settings.ASSISTANTS_API_KEY:
        api_key_ensure(project=project, raw=settings.ASSISTANTS_API_KEY)
        return
    if not ApiKey.objects.filter(revoked_at__isnull=True).exists():
        raw = api_key_create(project=project, name="first key")
        out.write(
            "\n  Your API key (shown once, keep it): "
            f"{raw}\n  Create more with: python manage.py createapikey\n\n"
        )
        out.flush()


def prepare(out=sys.stdout) -> None:
    check_vector_extension()
    call_command("migrate", interactive=False, verbosity=0)
    ensure_api_key(out)
