"""Benchmark: the first page of GET /v1/threads/{id}/messages on a thread with 100,000 messages.

    ASSISTANTS_DATA_DIR=var/bench python bench/messages_list.py [--requests 200] [--messages 100000]

Uses the database the settings point at (the embedded Postgres under ASSISTANTS_DATA_DIR by default). The
first run migrates and loads a dedicated project ("bench") with one big thread plus some small ones (a
realistic table, not only the big thread); later runs reuse them. Requests go through the whole Django
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
SMALL_THREADS = 200
SMALL_THREAD_MESSAGES = 50
RUN_ID = "run_bench"


def setup_django() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def message_rows(thread, count: int, *, start: int = 0):
    from django.utils import timezone

    from assistants.models import Message
    from assistants_project.api.ids import new_id

    now = timezone.now()
    for i in range(start, start + count):
        yield Message(
            public_id=new_id("message"), project_id=thread.project_id, thread=thread,
            role="user" if i % 2 == 0 else "assistant",
            content=[{"type": "text", "text": {"value": f"Message number {i}: " + "lorem ipsum " * 8,
                                               "annotations": []}}],
            status="completed", completed_at=now, metadata={},
            run_public_id=RUN_ID if i % 10 == 1 else None,
            assistant_public_id="asst_bench" if i % 2 else None,
        )


def load(messages: int):
    """The bench project and its big thread: created once, topped up to ``messages`` rows."""
    from django.db import connection, transaction

    from assistants.models import Message, Thread
    from assistants.services import api_key_ensure, project_get_or_create

    project = project_get_or_create(name="bench")
    api_key_ensure(project=project, raw=BENCH_KEY)
    thread = Thread.objects.filter(project=project, metadata__bench="big").first()
    if thread is None:
        thread = Thread.objects.create(project=project, metadata={"bench": "big"})
    have = Message.objects.filter(thread=thread).count()
    if have < messages:
        started = time.perf_counter()
        batch = 10_000
        for offset in range(have, messages, batch):
            with transaction.atomic():
                Message.objects.bulk_create(message_rows(thread, min(batch, messages - offset), start=offset),
                                            batch_size=batch)
        if not Thread.objects.filter(project=project, metadata__bench="small").exists():
            for _ in range(SMALL_THREADS):
                small = Thread.objects.create(project=project, metadata={"bench": "small"})
                Message.objects.bulk_create(message_rows(small, SMALL_THREAD_MESSAGES))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE assistants_message")
        print(f"loaded {messages - have} messages in {time.perf_counter() - started:.1f}s")
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
    from assistants.selectors import message_list

    project, thread = load(args.messages)
    total = Message.objects.filter(thread=thread).count()
    middle = Message.objects.filter(thread=thread).order_by("pk").values_list("public_id", flat=True)[total // 2]
    print(f"thread {thread.public_id}: {total} messages; table: {Message.objects.count()} messages; "
          f"CONN_MAX_AGE={settings.DATABASES['default']['CONN_MAX_AGE']}")

    client = Client(HTTP_HOST="localhost")
    base = f"/v1/threads/{thread.public_id}/messages"
    cases = [
        ("first page, desc (limit=20)", f"{base}?limit=20"),
        ("first page, asc (limit=20)", f"{base}?limit=20&order=asc"),
        ("page after a cursor mid-thread, desc", f"{base}?limit=20&after={middle}"),
        (f"run_id filter ({RUN_ID}), desc", f"{base}?limit=20&run_id={RUN_ID}"),
        ("first page, desc (limit=100)", f"{base}?limit=100"),
    ]
    for name, url in cases:
        report(name, measure(client, url, args.requests))

    print("\nEXPLAIN ANALYZE of the page queries:")
    for label, qs in [("desc", message_list(thread=thread).order_by("-pk")[:21]),
                      ("asc", message_list(thread=thread).order_by("pk")[:21]),
                      ("run_id", message_list(thread=thread, run_id=RUN_ID).order_by("-pk")[:21])]:
        plan = qs.explain(analyze=True)
        print(f"-- {label}\n{plan}")
        if "Index" not in plan:
            print(f"!! {label}: no index scan in the plan", file=sys.stderr)
            sys.exit(1)
    connection.close()


if __name__ == "__main__":
    main()
