"""Benchmark: the first page of GET /v1/threads/{id}/messages on a thread with 100,000 messages.

    ASSISTANTS_DATA_DIR=var/bench python bench/messages_list.py [--requests 200] [--messages 100000]

Uses the database the settings point at (the embedded Postgres under ASSISTANTS_DATA_DIR by default). The
first run migrates and loads (with COPY) a dedicated project ("bench"): one thread of 100,000 messages, then
200 newer threads of 1,000 messages each, the layout where a plan that walks the primary key would scan
200,000 rows of other threads first; later runs reuse them. Requests go through the whole Django
stack in-process (middleware, Bearer auth, DRF, serialisation) with the test Client, so the numbers are
the server's own time without network. Prints p50/p99 per case and the query plan of the page query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
os.environ.setdefault("ASSISTANTS_DATA_DIR", str(ROOT / "var" / "bench"))

BENCH_KEY = "sk-bench-messages-list-0000000000000000"
OTHER_THREADS = 200  # newer threads, written after the big one: the layout that trips a naive query plan
OTHER_THREAD_MESSAGES = 1_000
RUN_ID = "run_bench"
COLUMNS = ("public_id", "project_id", "thread_id", "role", "content", "status", "completed_at",
           "assistant_public_id", "run_public_id", "attachments", "metadata", "created_at")


def setup_django() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def copy_messages(thread, count: int, *, start: int = 0) -> None:
    """COPY ``count`` messages into ``thread`` (what message_create would store, minus per-row overhead)."""
    import json
    import uuid

    from django.db import connection
    from django.utils import timezone

    now = timezone.now()
    with connection.cursor() as cursor, cursor.connection.cursor().copy(
            f"COPY assistants_message ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for i in range(start, start + count):
            text = f"Message number {i} of {thread.public_id}: " + "lorem ipsum " * 8
            copy.write_row((
                "msg_" + uuid.uuid4().hex[:24], thread.project_id, thread.pk, "user" if i % 2 == 0 else "assistant",
                json.dumps([{"type": "text", "text": {"value": text, "annotations": []}}]), "completed", now,
                "asst_bench" if i % 2 else None, RUN_ID if i % 10 == 1 else None, "[]", "{}", now,
            ))


def load(messages: int):
    """The bench project: one big thread of ``messages`` messages, then OTHER_THREADS newer threads.
    Created once and reused (a bigger ``--messages`` tops the big thread up)."""
    from django.db import connection, transaction

    from assistants.models import Message, Thread
    from tenancy.services import api_key_ensure, project_get_or_create

    project = project_get_or_create(name="bench")
    api_key_ensure(project=project, raw=BENCH_KEY)
    thread = Thread.objects.filter(project=project, metadata__bench="big").first()
    if thread is None:
        thread = Thread.objects.create(project=project, metadata={"bench": "big"})
    have = Message.objects.filter(thread=thread).count()
    started = time.perf_counter()
    with transaction.atomic():
        if have < messages:
            copy_messages(thread, messages - have, start=have)
        if not Thread.objects.filter(project=project, metadata__bench="other").exists():
            for _ in range(OTHER_THREADS):
                other = Thread.objects.create(project=project, metadata={"bench": "other"})
                copy_messages(other, OTHER_THREAD_MESSAGES)
    if time.perf_counter() - started > 1:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE assistants_message")
        print(f"loaded the data set in {time.perf_counter() - started:.1f}s")
    return project, thread


def measure(client, url: str, requests: int, warmup: int = 20) -> list[float]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {BENCH_KEY}", "HTTP_OPENAI_BETA": "assistants=v2"}
    for _ in range(warmup):
        assert client.get(url, **headers).status_code == 200
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url, **headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:300]
    return timings


def report(name: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:<44} p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms   "
          f"max {ordered[-1]:6.2f} ms   (n={len(ordered)})")


def explain(client, url: str) -> str:
    """EXPLAIN ANALYZE of the page query the endpoint really ran for ``url``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_AUTHORIZATION": f"Bearer {BENCH_KEY}"}
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, **headers).status_code == 200
    page_sql = [q["sql"] for q in captured.captured_queries  # the last one: a cursor's lookup comes first
                if 'FROM "assistants_message"' in q["sql"] and "LIMIT" in q["sql"]][-1]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN ANALYZE " + page_sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from assistants.models import Message

    _, thread = load(args.messages)
    total = Message.objects.filter(thread=thread).count()
    middle = Message.objects.filter(thread=thread).order_by("pk").values_list("public_id", flat=True)[total // 2]
    newer = Message.objects.filter(pk__gt=Message.objects.filter(thread=thread).order_by("-pk")
                                   .values_list("pk", flat=True).first()).count()
    print(f"thread {thread.public_id}: {total} messages, followed by {newer} newer messages of other threads "
          f"({Message.objects.count()} in the table); CONN_MAX_AGE={settings.DATABASES['default']['CONN_MAX_AGE']}")

    client = Client(HTTP_HOST="localhost")
    base = f"/v1/threads/{thread.public_id}/messages"
    cases = [
        ("first page, desc (limit=20)", f"{base}?limit=20"),
        ("first page, asc (limit=20)", f"{base}?limit=20&order=asc"),
        ("page after a mid-thread cursor, desc", f"{base}?limit=20&after={middle}"),
        ("run_id filter, desc (limit=20)", f"{base}?limit=20&run_id={RUN_ID}"),
        ("first page, desc (limit=100)", f"{base}?limit=100"),
    ]
    for name, url in cases:
        report(name, measure(client, url, args.requests))

    print("\nEXPLAIN ANALYZE of the page query, as the endpoint runs it:")
    failed = False
    for name, url in cases[:4]:
        plan = explain(client, url)
        print(f"-- {name}\n{plan}")
        if "Index Scan" not in plan or "Rows Removed by Filter" in plan:
            print(f"!! {name}: not a clean index scan", file=sys.stderr)
            failed = True
    connection.close()
    stop_embedded()
    sys.exit(1 if failed else 0)


def stop_embedded() -> None:
    """Leave no server behind that this run started."""
    from django.conf import settings

    from assistants_project import embedded

    if "redis" in embedded.STARTED:
        embedded.stop_redis(settings.DATA_DIR)
    if "postgres" in embedded.STARTED:
        embedded.stop_postgres(settings.DATA_DIR)


if __name__ == "__main__":
    main()
