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


def _others_use_postgres(data_dir) -> bool:
    """Another process (a parallel test session) still connected to the embedded Postgres."""
    import psycopg

    from assistants_project import embedded

    if not (embedded.postgres_dir(data_dir) / "postmaster.pid").exists():
        return False  # not running: nothing to stop (and nothing to start just to ask)
    try:
        params = embedded.ensure_postgres(data_dir)
        with psycopg.connect(dbname="postgres", user=params["USER"], host=params["HOST"], connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                               "AND pid <> pg_backend_pid()").fetchone()
        return bool(row[0])
    except Exception:
        return True  # cannot tell: leave it


def _others_use_redis(data_dir) -> bool:
    import redis

    from assistants_project import embedded
    from assistants_project.celery import app
    from assistants_project.redis import redis_client

    try:
        redis_client().connection_pool.disconnect()  # this session's own connections do not count
        app.pool.force_close_all()
        client = redis.Redis(unix_socket_path=str(embedded.redis_socket(data_dir)), socket_timeout=2)
        return len(client.client_list()) > 1
    except Exception:
        return True


def pytest_sessionfinish(session, exitstatus):
    """Stop the unit tests' embedded Postgres and Redis (nothing lingers after ``make test``): those this session
    started, and those an earlier session left running when it was killed (CI timeout, SIGTERM) — unless another
    session is still connected to them."""
    from django.conf import settings
    from django.db import connections

    from assistants_project import embedded

    for connection in connections.all():
        if connection.alias in getattr(connection, "_connection_pools", {}):
            connection.close_pool()  # or its idle connections would count as another user below
    connections.close_all()
    if "redis" in _STARTED_AT_BOOT or (settings.EMBEDDED_REDIS and not _others_use_redis(settings.DATA_DIR)):
        embedded.stop_redis(settings.DATA_DIR)
    if "postgres" in _STARTED_AT_BOOT or (settings.EMBEDDED_POSTGRES and not _others_use_postgres(settings.DATA_DIR)):
        embedded.stop_postgres(settings.DATA_DIR)
