"""The migrations are in step with the models. Checked inside the test session, on its embedded stack (var/test,
stopped when the session ends), not as a ``manage.py`` step of ``make test``: that step loaded the default settings,
so it started Postgres and Redis under the developer's var/ and left them running."""

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
