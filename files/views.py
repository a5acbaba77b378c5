from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from assistants_project.api.errors import InvalidRequest
from assistants_project.api.sanitize import SafeMultiPartParser
from assistants_project.api.validation import validated
from assistants_project.api.views import OpenAIViewSet
from files import selectors, services, storage
from files.models import File
from files.serializers import FileCreateIn, FileListParams, file_out, multipart_fields
from files.uploads import SizeLimitUploadHandler


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """The SDK downloads with ``Accept: application/binary``; never answer 406 for that (errors stay JSON)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


CHUNK_BYTES = 1024 * 1024


class StoredFileResponse(FileResponse):
    block_size = CHUNK_BYTES


async def _chunks_async(handle):
    """One chunk at a time off the event loop: Django's ASGI handler would otherwise read a synchronous
    iterator to the end, into memory, before sending the first byte."""
    try:
        while chunk := await sync_to_async(handle.read, thread_sensitive=False)(CHUNK_BYTES):
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


def file_download_response(file: File, request: HttpRequest) -> StreamingHttpResponse:
    """The original bytes, streamed from storage in chunks (an async iterator under ASGI, a sync one
    under WSGI, so neither server buffers the whole file)."""
    handle = storage.open_stream(file.storage_name)
    if isinstance(request, ASGIRequest):
        response = StreamingHttpResponse(_chunks_async(handle), content_type=file.content_type)
        response["Content-Disposition"] = content_disposition_header(True, file.filename)
    else:
        response = StoredFileResponse(handle, as_attachment=True, filename=file.filename,
                                      content_type=file.content_type)
    response["Content-Length"] = str(file.bytes)
    return response


class FileViewSet(OpenAIViewSet):
    lookup_url_kwarg = "file_id"
    parser_classes = [SafeMultiPartParser]
    content_negotiation_class = AnyAcceptNegotiation

    def list(self, request):
        return self.list_response(
            selectors.file_list(project=self.project), file_out, params_class=FileListParams,
            narrow=lambda qs, params: qs.filter(purpose=params["purpose"]) if params.get("purpose") else qs)

    def create(self, request):
        # Before the body is parsed: past the size limit the upload stops, and nothing reaches storage.
        request.upload_handlers.insert(0, SizeLimitUploadHandler(request._request))
        try:
            data = request.data
        except ParseError as exc:
            raise InvalidRequest(f"Could not parse the multipart/form-data body: {exc.detail}", param="file") from None
        params = validated(FileCreateIn, multipart_fields(data))
        file = services.file_create(project=self.project, upload=params["file"], purpose=params["purpose"],
                                    expires_after=params.get("expires_after"))
        return Response(file_out(file))

    def retrieve(self, request, file_id: str):
        return Response(file_out(selectors.file_get(project=self.project, file_id=file_id)))

    def destroy(self, request, file_id: str):
        file = selectors.file_get(project=self.project, file_id=file_id)
        services.file_delete(file=file)
        return Response({"id": file_id, "object": "file", "deleted": True})

    @action(detail=True, methods=["get"])
    def content(self, request, file_id: str):
        return file_download_response(selectors.file_get(project=self.project, file_id=file_id), request._request)
