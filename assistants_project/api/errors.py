"""OpenAI's error envelope ``{"error": {"message", "type", "param", "code"}}`` for every failure."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions

logger = logging.getLogger(__name__)


class OpenAIError(exceptions.APIException):
    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(detail=message)
        self.param = param
        self.error_code = code


class InvalidRequest(OpenAIError):
    pass


class NotFoundError(OpenAIError):
    status_code = 404


class AuthenticationFailed(OpenAIError):
    status_code = 401


class PayloadTooLarge(OpenAIError):
    status_code = 413


TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    406: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
}


def error_body(message: str, *, status: int, param: str | None = None, code: str | None = None,
               error_type: str | None = None) -> dict:
    kind = error_type or TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(message: str, *, status: int, param: str | None = None, code: str | None = None) -> JsonResponse:
    return JsonResponse(error_body(message, status=status, param=param, code=code), status=status)


def first_field_error(detail: object, prefix: str = "") -> tuple[str | None, str]:
    """Flatten DRF's nested ValidationError detail into (dotted param path, message)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                return first_field_error(value, prefix)
            path = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
            return first_field_error(value, path)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list) and value:
                if isinstance(value, dict) and all(isinstance(k, int) for k in value):
                    return first_field_error(value, prefix)
                return first_field_error(value, f"{prefix}[{index}]" if isinstance(value, dict) else prefix)
            if value:
                return first_field_error(value, prefix)
    message = str(detail)
    if prefix and not message.startswith("Invalid"):
        message = f"Invalid '{prefix}': {message[0].lower() + message[1:] if message else message}"
    return (prefix or None), message


# --- Outages: the database or the broker / Redis unreachable → a prompt 503 (the SDKs retry it) ----------------

def _outage_types() -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import psycopg
    import psycopg_pool
    import redis
    from django import db

    return (db.OperationalError, db.InterfaceError, psycopg.OperationalError, psycopg.InterfaceError,
            psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed, redis.ConnectionError, redis.TimeoutError,
            kombu.exceptions.OperationalError, ConnectionError)


def _causes(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def outage_of(exc: BaseException | None) -> str | None:
    """``"database"`` / ``"broker"`` when ``exc`` (or what caused it) says a backing service is unreachable."""
    import psycopg
    from django import db

    types = _outage_types()
    for cause in _causes(exc):
        if isinstance(cause, types):
            database = isinstance(cause, db.Error | psycopg.Error) or type(cause).__module__.startswith("psycopg")
            return "database" if database else "broker"
    return None


def outage_response(what: str) -> JsonResponse:
    logger.warning("answering 503: the %s is unreachable", what)
    return error_response(f"The server cannot reach its {what} right now. Please retry in a few seconds.",
                          status=503)


# --- Database constraints that are the client's fault ---------------------------------------------------------

def _constraint_error(exc: BaseException, context: dict) -> OpenAIError | None:
    """The one-active-run constraint catches what a concurrent creator's check missed: OpenAI answers 400."""
    from django.db import IntegrityError

    if not isinstance(exc, IntegrityError):
        return None
    for cause in _causes(exc):
        diag = getattr(cause, "diag", None)
        if diag is not None and getattr(diag, "constraint_name", None) == "one_active_run_per_thread":
            kwargs = getattr(context.get("view"), "kwargs", None) or {}
            thread = kwargs.get("thread_id", "")
            return InvalidRequest(f"Thread {thread} already has an active run." if thread
                                  else "The thread already has an active run.")
    return None


def openai_exception_handler(exc: Exception, context: dict):
    what = outage_of(exc)
    if what is not None:
        from rest_framework.views import set_rollback

        set_rollback()
        return outage_response(what)
    exc = _constraint_error(exc, context) or exc
    if isinstance(exc, DjangoValidationError):
        from rest_framework.serializers import as_serializer_error

        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = NotFoundError(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge("The request body is too large.")
    from rest_framework.views import exception_handler as drf_exception_handler  # (import cycle)

    response = drf_exception_handler(exc, context)  # also rolls the transaction back
    if response is None:
        return None  # a real 500: Django logs it and answers through handler500
    response.data = _body_for(exc, response.status_code)
    return response


def _body_for(exc: Exception, status: int) -> dict:
    if isinstance(exc, OpenAIError):
        return error_body(str(exc.detail), status=status, param=exc.param, code=exc.error_code,
                          error_type=exc.error_type)
    if isinstance(exc, exceptions.ValidationError):
        param, message = first_field_error(exc.detail)
        return error_body(message, status=status, param=param)
    if isinstance(exc, exceptions.NotAuthenticated):
        return error_body(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            status=status,
        )
    if isinstance(exc, exceptions.ParseError):
        return error_body(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
            f"JSON.) {exc.detail}",
            status=status,
        )
    return error_body(str(getattr(exc, "detail", exc)), status=status)


# Django-level handlers (urls.handler404/handler500), for what never reaches a DRF view.
def handler404(request, exception=None):
    return error_response(f"Invalid URL ({request.method} {request.path})", status=404)


def handler500(request):
    import sys

    what = outage_of(sys.exc_info()[1])  # Django calls this inside its except block
    if what is not None:
        return outage_response(what)
    return error_response("The server had an error while processing your request. Sorry about that!",
                          status=500)


def handler400(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return error_response("The request body is too large.", status=413)
    return error_response("Bad request.", status=400)


def handler403(request, exception=None):
    return error_response("Forbidden.", status=403)
