"""Threads for Django's sync views, kept from one request to the next.

Django's ASGI handler runs each request in a thread-sensitive context of its own, so the request's first sync call
(the view, through ``sync_to_async``) starts a new single-thread executor, and its end starts yet another thread to
join it: two thread starts and a join per request, most of the handler's own CPU on a short request. Here each
request brings an executor taken from those that earlier requests finished with (Django's handler then uses the
enclosing context: asgiref's ``ThreadSensitiveContext`` with an executor). A request's sync calls still run one at a
time on one thread of their own, as Django expects; by the time the handler returns, they have all ended (it waits
for its view, also when the client leaves), so the executor is idle when it goes back; one whose request was
cancelled or failed outside Django's own handling is not reused. At most ``KEEP`` idle
executors are kept: a burst of open streams leaves no more threads than that behind.

Django's handler also sends ``request_started`` before the view, and its receivers (``close_old_connections``,
``reset_queries``) are sync: one more trip to the request's thread and back to the event loop, before the view's
own. Under load every such trip waits its turn for the loop and the GIL: at 50 concurrent streams a request took
~60 ms from its arrival to its view with that trip and ~15 ms without it (bench/stream_overhead.py, with two worker
processes). It has nothing to do here, so it is left out: a request's thread holds no connection when the request
starts (a new thread has none; a kept one gave its connections back to the pool when its previous request ended, on
``request_finished``, which still runs; one whose request did not end so is not kept), and ``reset_queries`` clears
a log that only DEBUG keeps (with DEBUG on, it stays).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries

KEEP = 32


def with_request_threads(django_app):
    request_started.disconnect(close_old_connections)
    if not settings.DEBUG:
        request_started.disconnect(reset_queries)
    idle: list[ThreadPoolExecutor] = []  # touched only on the event loop's thread

    async def application(scope, receive, send):
        if scope["type"] != "http":
            return await django_app(scope, receive, send)
        executor = idle.pop() if idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await django_app(scope, receive, send)
        except BaseException:  # cancelled (server shutdown) or broken: its thread may still be busy, so not reused
            executor.shutdown(wait=False)  # the thread ends once idle; nothing waits for it here
            raise
        if len(idle) < KEEP:
            idle.append(executor)
        else:
            executor.shutdown(wait=False)

    return application
