"""CPU cost of the observability hooks on their own, without the noise of a whole-stack benchmark: one API
request's share (``RequestMiddleware``: request id, early checks, OpenAI headers, HTTP metrics, one JSON access
line) and one run's share (claim binding, model-call timing, the final-status metrics and JSON log line), in
microseconds, in multiprocess mode like under `serve`.

    .venv/bin/python bench/observability_cost.py [--n 20000]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="obs-cost-")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def per_call_us(fn, n: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from django.conf import settings

    settings.configure(USE_TZ=True)  # no database: the hooks alone

    from assistants_project import logs, metrics
    from assistants_project.api import request_context

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    handler.addFilter(logs.ContextFilter())
    for name in ("assistants.access", "runs.lifecycle"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    run_logger = logging.getLogger("runs.lifecycle")

    class Response(dict):
        status_code = 200

    match = SimpleNamespace(route="^v1/threads/(?P<thread_id>[^/.]+)/runs$", kwargs={"thread_id": "thread_abc"})
    request = SimpleNamespace(method="POST", path="/v1/threads/thread_abc/runs", resolver_match=match,
                              headers={"X-Request-ID": "bench-request-id"}, content_type="application/json",
                              get_host=lambda: "localhost")

    def view(request):
        logs.bind(project="default")
        return Response()

    middleware = request_context.RequestMiddleware(view)

    def one_request():
        middleware(request)
        stream.seek(0)
        stream.truncate()

    now = datetime.now(UTC)
    run = SimpleNamespace(model="gpt-4o-mini", created_at=now - timedelta(seconds=1), project_id=1, public_id="run_x",
                          usage={"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}, status="completed")

    def until_first_token():  # the worker's hooks before a run's first token reaches the stream
        with logs.bound():
            logs.bind(run_id=run.public_id, thread_id="thread_abc", project="default")
            metrics.run_started(SimpleNamespace(model=run.model, created_at=run.created_at, usage=None))
            with metrics.model_call("gpt-4o-mini") as first_token:
                first_token()

    def one_run():
        until_first_token()
        metrics.run_entered(run, "completed", now, project="default")
        with logs.bound(run_id=run.public_id, project="default"):
            run_logger.info("run %s", run.status, extra={"status": run.status, "model": run.model})
        stream.seek(0)
        stream.truncate()

    request_us, first_us, run_us = (per_call_us(fn, n) for fn in (one_request, until_first_token, one_run))
    print(f"multiprocess mode, JSON lines, in microseconds: per API request {request_us:.1f}; per run in the worker "
          f"{run_us:.1f}, of which before the first token {first_us:.1f}; on the streaming path to the first token "
          f"(the request's share and the worker's) {request_us + first_us:.1f}")


if __name__ == "__main__":
    main()
