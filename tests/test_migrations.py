"""The migrations are in step with the models. A test rather than a ``manage.py`` step of ``make test``: here it uses
the session's own stack (var/test, stopped when the session ends), where ``manage.py`` would load the default
settings and leave Postgres and Redis running under the developer's var/."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit:  # --check exits 1 when it would write a migration
        pytest.fail("makemigrations would write migrations the code lacks:\n" + out.getvalue())
