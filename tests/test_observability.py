"""Request ids, /metrics and its token, JSON log lines, per-project rate limits (through the API, with the real
Postgres and Redis; runs are created but no worker executes them here: see test_e2e_observability)."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from tests.test_api_assistants import assert_error

pytestmark = pytest.mark.django_db


# --- X-Request-ID ------------------------------------------------------------------------------------------------


def test_a_sane_incoming_request_id_is_echoed(api):
    response = api.get("/v1/assistants", HTTP_X_REQUEST_ID="trace-42:abc")
    assert response.status_code == 200 and response["x-request-id"] == "trace-42:abc"


@pytest.mark.parametrize("given", ["has space", "x" * 129, "caf\u00e9", ""])
def test_an_unusable_request_id_is_replaced(api, given):
    response = api.get("/v1/assistants", HTTP_X_REQUEST_ID=given)
    assert response.status_code == 200
    assert response["x-request-id"].startswith("req_") and response["x-request-id"] != given


def test_without_a_request_id_each_response_gets_its_own(anon_api):
    first, second = anon_api.get("/healthz"), anon_api.get("/healthz")
    assert first["x-request-id"].startswith("req_") and first["x-request-id"] != second["x-request-id"]


# --- /metrics ------------------------------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token(anon_api, settings):
    settings.METRICS_TOKEN = ""
    assert_error(anon_api.get("/metrics"), 404)


def test_metrics_need_the_token(anon_api, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert_error(anon_api.get("/metrics"), 401)
    assert_error(anon_api.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong"), 401)
    assert anon_api.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_metrics_can_be_switched_off_entirely():
    """METRICS_ENABLED=false: nothing is recorded (the hooks still run, their values stay 0) and /metrics is 404
    even with a token. In a child process, because the switch is read when the metrics module loads."""
    import os
    import subprocess
    import sys

    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "from assistants_project import metrics\n"
        "metrics.RUNS.labels('completed', 'm').inc()\n"
        "print(metrics.RUNS.labels('completed', 'm')._value.get(), metrics.ENABLED,"
        " Client(HTTP_HOST='localhost').get('/metrics', HTTP_AUTHORIZATION='Bearer t').status_code)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "assistants_project.settings", "METRICS_TOKEN": "t"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for enabled, expected in (("false", "0.0 False 404"), ("true", "1.0 True 200")):
        out = subprocess.run([sys.executable, "-c", code], env={**env, "METRICS_ENABLED": enabled},
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.split()[-3:] == expected.split(), out.stderr[-2000:]


def _scrape(client) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def _sample(text: str, name: str, **labels) -> float:
    """The value of one sample of the Prometheus text, 0 when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_count_requests_by_route_pattern_and_read_backlog_and_queue(api, anon_api, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    route = "/v1/assistants/{assistant_id}"
    before = _scrape(anon_api)
    assistant = api.post("/v1/assistants", {"model": "gpt-4o-mini"}, format="json").json()
    for _ in range(3):
        assert api.get(f"/v1/assistants/{assistant['id']}").status_code == 200
    assert api.get("/v1/assistants/asst_nope").status_code == 404
    after = _scrape(anon_api)
    counted = _sample(after, "assistants_http_requests_total", method="GET", route=route, status="200") \
        - _sample(before, "assistants_http_requests_total", method="GET", route=route, status="200")
    assert counted == 3
    assert _sample(after, "assistants_http_requests_total", method="GET", route=route, status="404") >= 1
    assert f'assistant_id="{assistant["id"]}"' not in after and assistant["id"] not in after  # patterns, not paths
    assert _sample(after, "assistants_http_request_duration_seconds_count", method="GET", route=route) >= 4
    for name in ("assistants_queue_depth", "assistants_indexing_backlog", "assistants_chunks",
                 "assistants_vector_store_files"):
        assert f"\n{name}" in after, name


# --- JSON logs -----------------------------------------------------------------------------------------------------


def _json_logger():
    from assistants_project.logs import ContextFilter, json_formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("test.observability")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler, stream


def test_json_lines_carry_the_bound_context():
    from assistants_project import logs

    logger, handler, stream = _json_logger()
    try:
        with logs.bound(request_id="req_1", project="p", thread_id="thread_2", run_id="run_3"):
            logger.info("hello %s", "world", extra={"status": "completed"})
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "hello world" and inside["level"] == "INFO" and inside["logger"] == "test.observability"
    assert (inside["request_id"], inside["project"], inside["thread_id"], inside["run_id"]) == \
        ("req_1", "p", "thread_2", "run_3")
    assert inside["status"] == "completed" and "time" in inside and "context" not in inside
    assert "request_id" not in outside


def test_a_task_published_in_a_request_carries_its_context_to_the_task():
    """The Celery signal handlers: the headers a task is published with, bound again where it runs."""
    from types import SimpleNamespace

    from assistants_project import logs

    outer = logs.replace({})  # start clean: code called directly by earlier tests (a claim) binds in this thread
    headers = {}
    with logs.bound(request_id="req_9", project="p"):
        logs._publish_headers(headers=headers)
    assert logs.current() == {}
    logs._task_bind(task=SimpleNamespace(request=SimpleNamespace(**headers)))
    try:
        assert dict(logs.current()) == {"request_id": "req_9", "project": "p"}
    finally:
        logs._task_clear()
    assert dict(logs.current()) == {}
    logs.reset(outer)


# --- rate limits ---------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_counters(request):
    """Project ids come back after a database flush; an earlier session's counters in Redis must not count."""
    if not {"project", "other_project"} & set(request.fixturenames):
        return
    from assistants_project.redis import redis_client

    client = redis_client()
    for name in ("project", "other_project"):
        if name in request.fixturenames:
            pk = request.getfixturevalue(name).pk
            keys = [*client.scan_iter(f"ratelimit:rpm:{pk}:*"), *client.scan_iter(f"ratelimit:tpd:{pk}:*")]
            if keys:
                client.delete(*keys)


def _same_minute() -> None:
    """Fixed one-minute windows: don't start a count just before one ends."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def assert_rate_limited(response, kind: str) -> None:
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == kind and error["code"] == "rate_limit_exceeded" and error["param"] is None
    assert error["message"].startswith("Rate limit reached")
    assert 1 <= int(response["retry-after"]) <= 86400


def test_requests_per_minute_per_project(api, other_api, project):
    project.requests_per_minute = 3
    project.save()  # also drops the key cache entry that holds the limit
    _same_minute()
    assert [api.get("/v1/assistants").status_code for _ in range(3)] == [200, 200, 200]
    limited = api.get("/v1/assistants")
    assert_rate_limited(limited, "requests")
    assert int(limited["retry-after"]) <= 60
    # another project is not held back (default: unlimited)
    assert [other_api.get("/v1/assistants").status_code for _ in range(5)] == [200] * 5


def test_the_settings_default_applies_unless_a_project_overrides_it(api, other_api, other_project, settings):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 2
    other_project.requests_per_minute = 0  # this one: unlimited
    other_project.save()
    _same_minute()
    assert [api.get("/v1/assistants").status_code for _ in range(3)] == [200, 200, 429]
    assert [other_api.get("/v1/assistants").status_code for _ in range(4)] == [200] * 4


@pytest.fixture
def assistant_id(api):
    return api.post("/v1/assistants", {"model": "gpt-4o-mini"}, format="json").json()["id"]


def _new_run(api, assistant_id):
    return api.post("/v1/threads/runs", {"assistant_id": assistant_id,
                                         "thread": {"messages": [{"role": "user", "content": "hi"}]}}, format="json")


def test_concurrent_runs_per_project(api, other_api, project, assistant_id):
    project.concurrent_runs = 2
    project.save()
    assert _new_run(api, assistant_id).status_code == 200
    assert _new_run(api, assistant_id).status_code == 200
    assert_rate_limited(_new_run(api, assistant_id), "requests")
    other_assistant = other_api.post("/v1/assistants", {"model": "gpt-4o-mini"}, format="json").json()["id"]
    assert all(_new_run(other_api, other_assistant).status_code == 200 for _ in range(3))


def test_tokens_per_day_per_project(api, project, other_project, assistant_id):
    from tenancy import limits

    project.tokens_per_day = 1000
    project.save()
    limits.tokens_add(project.pk, 999)
    assert _new_run(api, assistant_id).status_code == 200
    limits.tokens_add(project.pk, 1)
    assert_rate_limited(_new_run(api, assistant_id), "tokens")
    assert limits.tokens_today(other_project.pk) == 0


def test_the_cached_key_lookup_carries_the_project_limits(project):
    """Run creation reads the limits of the project authentication found: from the cache too, without a query."""
    from tenancy.selectors import api_key_project
    from tenancy.services import api_key_create

    project.concurrent_runs, project.tokens_per_day = 5, 0
    project.save()
    raw = api_key_create(project=project)
    api_key_project(raw)  # fills the cache
    cached, _ = api_key_project(raw)
    assert not {"requests_per_minute", "concurrent_runs", "tokens_per_day"} & cached.get_deferred_fields()
    assert (cached.requests_per_minute, cached.concurrent_runs, cached.tokens_per_day) == (None, 5, 0)
