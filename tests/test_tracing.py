"""OpenTelemetry (TRACING_ENABLED): a request that creates a run, the Celery task that executes it and the model
call it makes are one trace. A real Celery worker (Celery's embedded test worker, in this process so its spans reach
the in-memory exporter) consumes the real Redis broker; the model is the fake LLM over HTTP."""

from __future__ import annotations

import time

import pytest

from runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spans():
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from assistants_project import tracing

    exporter = InMemorySpanExporter()
    assert tracing.setup(exporter)
    try:
        yield exporter
    finally:  # the rest of the session runs untraced
        DjangoInstrumentor().uninstrument()
        CeleryInstrumentor().uninstrument()
        HTTPXClientInstrumentor().uninstrument()
        tracing._provider = None


def test_off_by_default(settings):
    from assistants_project import tracing

    assert settings.TRACING_ENABLED is False and tracing.setup() is False


def test_request_task_and_model_call_are_one_trace(spans, project, fake_llm_server, monkeypatch):
    from celery.contrib.testing.worker import start_worker
    from rest_framework.test import APIClient

    from assistants_project.celery import app
    from tenancy.services import api_key_create

    monkeypatch.setenv("OPENAI_API_BASE", fake_llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-provider-key")
    fake_llm_server.reset()
    fake_llm_server.add_rule("trace me", text="Traced.")
    api = APIClient()  # made after the instrumentation, so its handler loads the tracing middleware
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(project=project)}", HTTP_OPENAI_BETA="assistants=v2")
    assistant = api.post("/v1/assistants", {"model": "gpt-4o-mini"}, format="json").json()

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        response = api.post("/v1/threads/runs", {"assistant_id": assistant["id"], "thread": {
            "messages": [{"role": "user", "content": "trace me"}]}}, format="json")
        assert response.status_code == 200
        run_id = response.json()["id"]
        deadline = time.monotonic() + 60
        while Run.objects.get(public_id=run_id).status != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
    assert Run.objects.get(public_id=run_id).status == "completed"

    finished = spans.get_finished_spans()
    by_id = {span.context.span_id: span for span in finished}
    sent = next(s for s in finished if s.kind.name == "PRODUCER" and "run_execute" in s.name)
    request = by_id[sent.parent.span_id]  # sent while the request was handled
    assert request.kind.name == "SERVER" and request.name.startswith("POST") and "threads/runs" in request.name
    ran = next(s for s in finished if s.kind.name == "CONSUMER" and "run_execute" in s.name
               and s.context.trace_id == request.context.trace_id)
    model = next(s for s in finished if s.kind.name == "CLIENT" and s.context.trace_id == request.context.trace_id
                 and "chat/completions" in str(s.attributes.get("url.full") or s.attributes.get("http.url")))

    def ancestors(span):
        out = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            out.append(span)
        return out

    assert {span.context.trace_id for span in (request, sent, ran, model)} == {request.context.trace_id}
    assert ran.parent.span_id == sent.context.span_id  # linked through the message headers
    assert ran in ancestors(model) and request in ancestors(model)
