"""OpenTelemetry traces, when the operator turns them on (TRACING_ENABLED): a web request, the Celery task it sends
and the model calls that task makes are one trace (Django, Celery and httpx instrumentation; the trace context
travels in the task's message headers). Spans go to an OTLP/HTTP collector configured by OpenTelemetry's own
variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, …).

Off (the default), nothing here is imported beyond this module and no span is made."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

_provider = None


def setup(exporter=None) -> bool:
    """Install the tracer provider and the instrumentations once per process; False when tracing is off.
    ``exporter``: where spans go instead of OTLP (tests pass an in-memory one)."""
    global _provider
    from django.conf import settings

    if _provider is not None:
        return True
    if not settings.TRACING_ENABLED and exporter is None:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "assistants-server"}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # Django: one server span per request (its middleware goes first in MIDDLEWARE, so this runs before the
    # request handler is built); Celery: a span where a task is sent and one where it runs, linked through the
    # message headers; httpx: a client span per provider request (LiteLLM's OpenAI client, and others, use httpx).
    DjangoInstrumentor().instrument(tracer_provider=provider, is_sql_commentor_enabled=False)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _provider = provider
    logger.info("OpenTelemetry tracing on")
    return True
