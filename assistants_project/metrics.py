"""Prometheus metrics: every definition in this one module, and the ``GET /metrics`` view.

Processes started by ``manage.py serve`` (uvicorn workers, Celery workers, beat) get ``PROMETHEUS_MULTIPROC_DIR``
(``$ASSISTANTS_DATA_DIR/metrics`` unless set), so prometheus_client keeps every process's values in files there
and a scrape of any web process sums them all: the worker's run counters show up in the web's ``/metrics``.
Without that variable (tests, a shell) the values live in this process only.

What is cheaper to read than to count (the indexing backlog, the broker queue, files by status) is read from
Postgres and Redis at scrape time.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import socket
import time
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
_HOST = socket.gethostname().replace("_", "-")


class _Off:
    """METRICS_ENABLED=false: every metric's value is this, so an update costs a label lookup and nothing more."""

    _multiprocess = False

    def __init__(self, *args, **kwargs) -> None:
        pass

    def inc(self, amount) -> None:
        pass

    def set(self, value, timestamp=None) -> None:
        pass

    def set_exemplar(self, exemplar) -> None:
        pass

    def get(self) -> float:
        return 0.0

    def get_exemplar(self) -> None:
        return None


def _enabled() -> bool:
    from django.conf import settings

    return getattr(settings, "METRICS_ENABLED", True)


ENABLED = _enabled()
if not ENABLED:
    values.ValueClass = _Off
elif MULTIPROC_DIR:
    # Processes of several containers may share one directory (a volume) and their pids collide (each has a pid
    # 1): name each process's files by host and pid. Called on every update, so it is kept cheap.
    atexit.register(lambda: mark_this_process_dead())
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: f"{_HOST}-{os.getpid()}")

# Latency buckets in seconds: API requests take milliseconds, model calls and runs take seconds to minutes.
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SLOW = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

HTTP_REQUESTS = Counter("assistants_http_requests_total", "HTTP requests answered, by route (the URL pattern) and "
                        "status", ["method", "route", "status"])
HTTP_LATENCY = Histogram("assistants_http_request_duration_seconds", "Time until a request's response headers, by "
                         "route", ["method", "route"], buckets=_FAST)
RUNS = Counter("assistants_runs_total", "Runs that reached a final status (completed, failed, cancelled, expired, "
               "incomplete) or requires_action", ["status", "model"])
RUN_DURATION = Histogram("assistants_run_duration_seconds", "From a run's creation to its final status",
                         ["status", "model"], buckets=_SLOW)
RUN_TTFT = Histogram("assistants_run_time_to_first_token_seconds", "From a run's creation to the first token the "
                     "model sent for it", ["model"], buckets=_SLOW)
MODEL_CALLS = Histogram("assistants_model_call_duration_seconds", "One model call, from the request to the end of "
                        "its stream", ["provider", "model"], buckets=_SLOW)
MODEL_ERRORS = Counter("assistants_model_call_errors_total", "Model calls that failed (after retries), by the run "
                       "error code they became", ["provider", "model", "code"])
MODEL_RETRIES = Counter("assistants_model_call_retries_total", "Retries of a transient provider error",
                        ["provider", "model"])
TOKENS = Counter("assistants_tokens_total", "Tokens of finished runs, by direction (in: prompt, out: completion)",
                 ["direction", "model", "project"])
OPEN_STREAMS = Gauge("assistants_open_streams", "Event streams (SSE) being relayed now",
                     multiprocess_mode="livesum")


# --- the hooks the rest of the code calls ------------------------------------------------------------------


def run_entered(run, status: str, now, *, project: str) -> None:
    """A run of ``project`` (its name) reached ``status`` (runs.lifecycle calls this at its one transition
    point)."""
    model = run.model or ""
    RUNS.labels(status, model).inc()
    if status == "requires_action":
        return
    if run.created_at:
        RUN_DURATION.labels(status, model).observe(max(0.0, (now - run.created_at).total_seconds()))
    usage = run.usage or {}
    if usage.get("prompt_tokens"):
        TOKENS.labels("in", model, project).inc(usage["prompt_tokens"])
    if usage.get("completion_tokens"):
        TOKENS.labels("out", model, project).inc(usage["completion_tokens"])


# The run a worker thread is executing (set at its claim), for its time to first token.
_run_clock: ContextVar[tuple | None] = ContextVar("run_clock", default=None)


def run_started(run) -> None:
    """A worker claimed ``run``. Its first token counts only on its first execution: a run resumed after tool
    outputs (it has usage by then) has had its first token."""
    _run_clock.set(None if run.usage else (run.model or "", run.created_at, [False]))


@contextmanager
def model_call(target: str):
    """Time one model call; yields a function to call on the call's first token."""
    provider = _provider(target)
    started = time.perf_counter()

    def first_token() -> None:
        clock = _run_clock.get()
        if clock is not None and not clock[2][0] and clock[1] is not None:
            from django.utils import timezone

            clock[2][0] = True
            RUN_TTFT.labels(clock[0]).observe(max(0.0, (timezone.now() - clock[1]).total_seconds()))

    try:
        yield first_token
    except GeneratorExit:  # the consumer stopped reading (a cancel): neither a success nor an error
        raise
    except Exception as exc:
        MODEL_ERRORS.labels(provider, target, getattr(exc, "code", "server_error")).inc()
        raise
    MODEL_CALLS.labels(provider, target).observe(time.perf_counter() - started)


def model_retry(target: str) -> None:
    MODEL_RETRIES.labels(_provider(target), target).inc()


_providers: dict[str, str] = {}


def _provider(target: str) -> str:
    provider = _providers.get(target)
    if provider is None:
        try:
            import litellm

            provider = litellm.get_llm_provider(target)[1]
        except Exception:
            provider = target.split("/", 1)[0] if "/" in target else "unknown"
        _providers[target] = provider
    return provider


# --- the scrape -----------------------------------------------------------------------------------------------


class _ScrapeTime:
    """Gauges read when Prometheus asks: each one query or command, each failing alone (a scrape during a Redis
    outage still shows the rest)."""

    def collect(self):
        yield from self._safely(self._ingestion)
        yield from self._safely(self._queue)

    @staticmethod
    def _safely(read):
        try:
            yield from read()
        except Exception:
            logger.warning("metrics: %s unavailable", read.__name__, exc_info=True)

    @staticmethod
    def _ingestion():
        from django.db import connection

        from retrieval.models import Chunk, PendingChunkVector, VectorStoreFile

        files = GaugeMetricFamily("assistants_vector_store_files", "Vector store files by ingestion status",
                                  labels=["status"])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT status, count(*) FROM {VectorStoreFile._meta.db_table} GROUP BY status")
            counts = dict(cursor.fetchall())
            # reltuples: the planner's estimate, free to read where count(*) scans millions of rows
            cursor.execute("SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass",
                           [Chunk._meta.db_table])
            chunks = cursor.fetchone()
            cursor.execute(f"SELECT count(*) FROM {PendingChunkVector._meta.db_table}")
            backlog = cursor.fetchone()[0]
        for status in ("in_progress", "completed", "failed", "cancelled"):
            files.add_metric([status], counts.get(status, 0))
        yield files
        yield GaugeMetricFamily("assistants_chunks", "Stored chunks (Postgres' estimate)",
                                value=chunks[0] if chunks else 0)
        yield GaugeMetricFamily("assistants_indexing_backlog", "Vectors waiting for the HNSW index "
                                "(retrieval_pendingchunkvector)", value=backlog)

    @staticmethod
    def _queue():
        from django.conf import settings

        if not settings.CELERY_BROKER_URL.startswith(("redis", "unix")):
            return  # another broker (RabbitMQ has its own exporter)
        from assistants_project.redis import redis_client

        depth = redis_client().llen(settings.CELERY_TASK_DEFAULT_QUEUE)
        yield GaugeMetricFamily("assistants_queue_depth", "Tasks waiting in the broker queue", value=depth)


def _forget_dead_processes(path: str) -> None:
    """A process that died without saying so (SIGKILL) leaves its live gauges (open streams) behind: drop those of
    this host's processes that are gone."""
    from prometheus_client import multiprocess

    prefix = f"{_HOST}-"
    for name in os.listdir(path):
        if not name.startswith("gauge_live") or not name.endswith(".db"):
            continue
        ident = name.rsplit("_", 1)[-1][:-3]
        if not ident.startswith(prefix) or not ident[len(prefix):].isdigit():
            continue
        try:
            os.kill(int(ident[len(prefix):]), 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(ident, path)
        except PermissionError:
            pass


def mark_this_process_dead() -> None:
    """At a clean exit: this process's live gauges stop counting."""
    if MULTIPROC_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(f"{_HOST}-{os.getpid()}", MULTIPROC_DIR)


def render() -> bytes:
    if MULTIPROC_DIR:
        from prometheus_client import multiprocess

        _forget_dead_processes(MULTIPROC_DIR)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, MULTIPROC_DIR)
    else:
        registry = CollectorRegistry()
        registry.register(_Local())
    registry.register(_ScrapeTime())
    return generate_latest(registry)


class _Local:
    """This process's own metrics (no multiprocess directory)."""

    def collect(self):
        return REGISTRY.collect()


def metrics_view(request):
    """``GET /metrics``: 404 unless METRICS_TOKEN is set (and metrics are enabled); then ``Authorization: Bearer
    <METRICS_TOKEN>``."""
    from django.conf import settings
    from django.http import HttpResponse

    from assistants_project.api.errors import error_response

    token = settings.METRICS_TOKEN
    if not token or not ENABLED:
        return error_response(f"Invalid URL ({request.method} {request.path})", status=404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = error_response("A valid bearer token (METRICS_TOKEN) is needed for /metrics.", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method != "GET":
        return error_response("Use GET.", status=405)
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
