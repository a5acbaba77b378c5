"""Django's sync code runs on threads kept from one request to the next (assistants_project/request_threads.py): one
thread per request at a time, as Django expects, and no more than KEEP idle threads left after a burst; a request
goes to its thread for its view and its end only."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries

from assistants_project import request_threads
from assistants_project.request_threads import KEEP, with_request_threads

SCOPE = {"type": "http", "path": "/v1/threads", "method": "POST"}


def app_reporting_threads(barrier: threading.Barrier | None = None):
    """An ASGI app shaped like Django's handler: its own (inner) thread-sensitive context, then two sync calls."""

    def work() -> threading.Thread:
        if barrier is not None:
            barrier.wait(timeout=10)
        return threading.current_thread()  # the object, held by the test: no two threads can share it

    async def app(scope, receive, send):
        async with ThreadSensitiveContext():
            first = await sync_to_async(work)()
            second = await sync_to_async(threading.current_thread)()
        await send({"idents": (first, second)})

    return with_request_threads(app)


async def request(app) -> tuple[threading.Thread, threading.Thread]:
    sent: list = []

    async def send(message):
        sent.append(message)

    await app(SCOPE, None, send)
    return sent[0]["idents"]


def test_sequential_requests_run_on_one_kept_thread_off_the_event_loop():
    app = app_reporting_threads()

    async def main():
        return [await request(app) for _ in range(5)], threading.current_thread()

    threads, loop_thread = asyncio.run(main())
    assert all(first is second for first, second in threads)  # one request: one thread for all its sync calls
    assert all(first is threads[0][0] for first, _ in threads)  # the next request reuses it
    assert threads[0][0] is not loop_thread


def test_concurrent_requests_each_have_a_thread_of_their_own():
    # both requests wait for each other inside their sync code: on a shared thread this would never finish
    app = app_reporting_threads(threading.Barrier(2))

    async def main():
        return await asyncio.wait_for(asyncio.gather(request(app), request(app)), 10)

    (a, _), (b, _) = asyncio.run(main())
    assert a is not b


def test_a_burst_leaves_at_most_keep_idle_threads():
    burst = KEEP + 8
    app = app_reporting_threads(threading.Barrier(burst))

    def request_threads() -> int:
        return sum(1 for thread in threading.enumerate() if thread.name.startswith("request"))

    before = request_threads()

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(request(app) for _ in range(burst))), 20)

    threads = asyncio.run(main())
    assert len({id(first) for first, _ in threads}) == burst
    deadline = time.monotonic() + 5
    while request_threads() - before > KEEP and time.monotonic() < deadline:
        time.sleep(0.05)
    assert request_threads() - before <= KEEP


@pytest.fixture
def request_started_receivers():
    yield
    request_started.connect(close_old_connections)  # as Django has them, for the tests that follow
    request_started.connect(reset_queries)


def test_a_request_goes_to_its_thread_for_its_view_and_its_end_only(monkeypatch, request_started_receivers):
    hops: list = []

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            hops.append(fn)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(request_threads, "ThreadPoolExecutor", Counting)
    app = with_request_threads(ASGIHandler())  # Django's handler, as the web runs it
    sent: list = []
    incoming = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if incoming:
            return incoming.pop()
        await asyncio.Event().wait()  # the client stays: Django stops listening once the response is out

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/healthz", "query_string": b"", "headers": [],
             "server": ("testserver", 80), "client": ("127.0.0.1", 1), "scheme": "http", "root_path": ""}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    assert b'"ok"' in sent[1]["body"]
    # the view, then the response's close (request_finished: the connections go back to the pool); no trip for
    # request_started before the view
    assert len(hops) == 2
