"""What a log line is about: ``request_id``, ``project``, ``thread_id``, ``run_id``, kept in a context variable and
added to every record by ``ContextFilter`` (settings.LOGGING), in JSON (``LOG_FORMAT=json``) or as ``key=value``
after the message (``text``).

The web binds the request id (``request_context.RequestMiddleware``), the project (authentication) and the run; a
Celery task published while those are bound carries them in its message headers and its worker binds them again for
the task, so the worker's lines for a run name the request that created it."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

FIELDS = ("request_id", "project", "thread_id", "run_id")
_HEADER_PREFIX = "log_"  # in a task's message headers, next to Celery's own

_context: ContextVar[Mapping] = ContextVar("log_context", default=MappingProxyType({}))

# An incoming X-Request-ID is used when it is printable ASCII without spaces and at most this long.
REQUEST_ID_MAX = 128
_REQUEST_ID_OK = re.compile(rf"[\x21-\x7e]{{1,{REQUEST_ID_MAX}}}")


def valid_request_id(value: str | None) -> bool:
    return value is not None and _REQUEST_ID_OK.fullmatch(value) is not None


def current() -> Mapping:
    return _context.get()


def bind(**fields) -> None:
    """Add fields (None values are dropped) to what this context's lines carry."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    _context.set(merged)


def replace(fields: dict):
    """Set the whole context; returns a token for ``reset``."""
    return _context.set(dict(fields))


def reset(token) -> None:
    _context.reset(token)


@contextmanager
def bound(**fields):
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Adds the bound fields to each record (attributes, which the JSON formatter emits) and ``context``, the
    same as `` key=value`` text for the human format."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get()
        for name in FIELDS:
            if name in fields and not hasattr(record, name):
                setattr(record, name, fields[name])
        record.context = "".join(f" {name}={fields[name]}" for name in FIELDS if name in fields)
        return True


def json_formatter(**kwargs):
    """python-json-logger's formatter, with the short names log collectors expect."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    # context: the text format's copy of the fields; color_message: uvicorn's ANSI-coloured duplicate
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
                         reserved_attrs=[*RESERVED_ATTRS, "context", "color_message"], **kwargs)


# --- Celery: carry the context in task headers ----------------------------------------------------------


def connect_celery() -> None:
    from celery.signals import before_task_publish, task_postrun, task_prerun

    before_task_publish.connect(_publish_headers, weak=False, dispatch_uid="log_context_publish")
    task_prerun.connect(_task_bind, weak=False, dispatch_uid="log_context_prerun")
    task_postrun.connect(_task_clear, weak=False, dispatch_uid="log_context_postrun")


def _publish_headers(headers=None, **kwargs):
    fields = _context.get()
    if headers is not None and fields:
        for name, value in fields.items():
            headers[_HEADER_PREFIX + name] = str(value)


def _task_bind(task=None, **kwargs):
    request = getattr(task, "request", None)
    fields = {}
    for name in FIELDS:
        value = getattr(request, _HEADER_PREFIX + name, None) if request is not None else None
        if value is None and request is not None and isinstance(getattr(request, "headers", None), dict):
            value = request.headers.get(_HEADER_PREFIX + name)
        if value is not None:
            fields[name] = value
    _context.set(fields)


def _task_clear(**kwargs):
    _context.set({})
