"""What the run command does before serving: pgvector check, migrations, the API key."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.utils import Error as DatabaseError


class BootstrapError(Exception):
    """A startup failure worth one clear sentence, not a traceback."""


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_database_reachable(timeout: int = 5) -> None:
    """One direct connection (not the pool, which would wait its whole timeout): a server that is down or
    refuses us is reported as such, not later as a missing extension."""
    import psycopg

    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    try:
        psycopg.connect(**{"connect_timeout": timeout, **params}).close()
    except psycopg.Error as exc:
        where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
        raise BootstrapError(f"The database at {where} is down or unreachable: {_first_line(exc)}") from None


def check_vector_extension() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except DatabaseError as exc:
        reason = _first_line(exc)
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
    check_database_reachable()
    check_vector_extension()
    call_command("migrate", interactive=False, verbosity=0)
    ensure_api_key(out)
