"""Per-request OpenAI conventions: request id and timing headers, the beta header, body size."""

from __future__ import annotations

import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from assistants_project.api.errors import error_response

_BETA_PATHS = ("/v1/assistants", "/v1/threads")


def _precheck(request):
    """An early error response, or None. Runs before any body is read."""
    path = request.path
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


def _decorate(response, request_id: str, started: float):
    response["x-request-id"] = request_id
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
        started, request_id = time.perf_counter(), f"req_{uuid.uuid4().hex}"
        response = _precheck(request) or self.get_response(request)
        return _decorate(response, request_id, started)

    async def __acall__(self, request):
        started, request_id = time.perf_counter(), f"req_{uuid.uuid4().hex}"
        response = _precheck(request) or await self.get_response(request)
        return _decorate(response, request_id, started)
