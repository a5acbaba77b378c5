"""Root fixtures: projects and authenticated API clients (unit tests), the live stack (end-to-end)."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.live"]


@pytest.fixture
def project(db):
    from tenancy.services import project_get_or_create

    return project_get_or_create(name="project-a")


@pytest.fixture
def other_project(db):
    from tenancy.services import project_get_or_create

    return project_get_or_create(name="project-b")


def _client_for(project):
    from rest_framework.test import APIClient

    from tenancy.services import api_key_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(project=project)}",
                       HTTP_OPENAI_BETA="assistants=v2")
    client.default_format = "json"
    return client


@pytest.fixture
def api(project):
    return _client_for(project)


@pytest.fixture
def other_api(other_project):
    return _client_for(other_project)


@pytest.fixture
def anon_api(db):
    from rest_framework.test import APIClient

    return APIClient()


def _started_by_settings() -> set[str]:
    from assistants_project import embedded

    return set(embedded.STARTED)


_STARTED_AT_BOOT = _started_by_settings()  # settings are loaded before this file: what did they start?


def pytest_sessionfinish(session, exitstatus):
    """Stop the unit tests' embedded Postgres and Redis if this session started them (nothing lingers)."""
    from django.conf import settings
    from django.db import connections

    from assistants_project import embedded

    connections.close_all()
    if "redis" in _STARTED_AT_BOOT:
        embedded.stop_redis(settings.DATA_DIR)
    if "postgres" in _STARTED_AT_BOOT:
        embedded.stop_postgres(settings.DATA_DIR)
