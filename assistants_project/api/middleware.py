"""Per-request OpenAI conventions: request id and timing headers, the beta header, body size."""

from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import DisallowedHost

from assistants_project.api.errors import error_response

_BETA_PATHS = ("/v1/assistants", "/v1/threads")
_API_PATHS = ("/v1/", "/healthz", "/readyz")


def _precheck(request):
    """An early error response, or None. Runs before any body is read."""
    path = request.path
    if not path.startswith(_API_PATHS):
        return None
    try:
        request.get_host()  # ALLOWED_HOSTS (CommonMiddleware checks it for the admin)
    except DisallowedHost:
        return error_response("Invalid Host header.", status=400)
    if not path.startswith("/v1/"):
        return None
    beta = request.headers.get("OpenAI-Beta", "")
    if path.startswith(_BETA_PATHS) and "assistants=v1" in beta.replace(" ", ""):
        return error_response(
            "The v1 Assistants API has been deprecated. Please try again by setting the header "
            "'OpenAI-Beta: assistants=v2'. See the migration guide for more information: "
            "https://platform.openai.com/docs/assistants/migration.",
            status=400, code="invalid_beta")
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return error_response("Invalid Content-Length header.", status=400)
    is_multipart = request.content_type == "multipart/form-data"
    limit = settings.FILE_UPLOAD_MAX_BYTES + 1024 * 1024 if is_multipart else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if length > limit:
        what = f"{settings.FILE_UPLOAD_MAX_BYTES} bytes per file" if is_multipart else f"{limit} bytes"
        return error_response(f"The request body is too large (limit: {what}).", status=413,
                              param="file" if is_multipart else None)
    return None


def _decorate(response, started: float):
    response["openai-processing-ms"] = str(int((time.perf_counter() - started) * 1000))
    response["openai-version"] = "2020-10-01"
    return response


class OpenAIHeadersMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        started = time.perf_counter()
        response = _precheck(request) or self.get_response(request)
        return _decorate(response, started)

    async def __acall__(self, request):
        started = time.perf_counter()
        response = _precheck(request) or await self.get_response(request)
        return _decorate(response, started)


class AdminOnlyMiddleware:
    """Django's session, auth, CSRF, messages and security middlewares, for everything but the API.

    Under ASGI each of those runs its hooks in a worker thread (two hops per middleware, ~6 ms a request);
    the API needs none of them (keys, not sessions), so its requests go straight to the view.
    """

    sync_capable = True
    async_capable = True
    wrapped = [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]

    def __init__(self, get_response):
        from django.utils.module_loading import import_string

        self.get_response = get_response
        handler = get_response
        for path in reversed(self.wrapped):
            handler = import_string(path)(handler)
        self.admin_chain = handler
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if request.path.startswith(_API_PATHS):
            return self.get_response(request)
        return self.admin_chain(request)
