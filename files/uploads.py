"""Upload size enforcement while the multipart body is parsed (before anything reaches storage)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest

from assistants_project.api.errors import PayloadTooLarge


def too_large_error() -> PayloadTooLarge:
    limit = settings.FILE_UPLOAD_MAX_BYTES
    return PayloadTooLarge(f"File is too large: the maximum size is {limit} bytes.", param="file")


class SizeLimitUploadHandler(FileUploadHandler):
    """First in the handler chain: counts each file's bytes and stops the upload as soon as one passes
    ``FILE_UPLOAD_MAX_BYTES``, closing (so deleting) whatever the later handlers spooled so far."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = settings.FILE_UPLOAD_MAX_BYTES

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if self.content_length is not None and self.content_length > self.limit:
            self._abort()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self._abort()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the UploadedFile

    def _abort(self) -> None:
        for handler in getattr(self.request, "upload_handlers", []):
            spooled = getattr(handler, "file", None)
            if handler is not self and spooled is not None:
                spooled.close()  # a TemporaryUploadedFile deletes itself on close
        raise too_large_error()
