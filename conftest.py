"""Root fixtures: projects and authenticated API clients (unit tests), the live stack (end-to-end)."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.live"]


@pytest.fixture
def project(db):
    from assistants.services import project_get_or_create

    return project_get_or_create(name="project-a")


@pytest.fixture
def other_project(db):
    from assistants.services import project_get_or_create

    return project_get_or_create(name="project-b")


def _client_for(project):
    from rest_framework.test import APIClient

    from assistants.services import api_key_create

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
