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
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext

KEEP = 32


def with_request_threads(django_app):
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
