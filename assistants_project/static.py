"""WhiteNoise in front of everything, without costing the API a thread hop under ASGI.

WhiteNoise's middleware is sync-only: listed as is, Django would run every API request's middleware chain in a
worker thread. This one answers static paths itself (a dict lookup) and hands everything else on unchanged, in
whichever mode (sync or async) the rest of the chain runs.
"""

from __future__ import annotations

import warnings

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        with warnings.catch_warnings():  # STATIC_ROOT exists only where an operator ran collectstatic
            warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
            super().__init__(get_response)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is None:
            return self.get_response(request)  # a coroutine when the chain is async: the caller awaits it
        response = self.serve(static_file, request)
        return _as_async(response) if iscoroutinefunction(self) else response


async def _as_async(response):
    # An async iterator, or Django's ASGI handler reads the file through a thread (and warns about it).
    response.streaming_content = _chunks(response.file_to_stream)
    return response


async def _chunks(file, size: int = 64 * 1024):
    while file is not None and (chunk := file.read(size)):  # small local files: not worth a thread per read
        yield chunk
