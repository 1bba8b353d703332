"""Counting an upload's bytes as they are parsed, so an oversized file stops at the limit.

The server refuses a body declared (or sent chunked) past the limit before
Django sees it (teamchat.server); this handler covers every other way in (a
different server, a body just under the request cap whose file part is over)
and never holds a file in memory: the next handler writes it to a temporary
file on disk.

The body may be parsed by the CSRF check before the view runs, so the
handler does not raise: it stops the parse and says why, and the view (or
`refusal`) turns that into the JSON error.
"""

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopUpload
from django.http import HttpRequest

from chat.errors import ChatError, Code, FileTooLarge


class SizeLimitHandler(FileUploadHandler):
    """Passes each chunk on unchanged; stops at the first file past the limit, skips extra files."""

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.limit = settings.UPLOADS_MAX_BYTES
        self.received = 0
        self.files = 0
        self.too_large = False

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.files += 1
        self.received = 0
        if self.files > 1:
            raise SkipFile()  # one file per request: the view refuses the rest

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.too_large = True
            # Stop reading: the rest of the body is not parsed or written anywhere.
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def refusal(request: HttpRequest) -> ChatError | None:
    """Why the request's files were not all read, if they were not."""
    for handler in request.upload_handlers:
        if isinstance(handler, SizeLimitHandler):
            if handler.too_large:
                return FileTooLarge(handler.limit)
            if handler.files > 1:
                return ChatError(Code.INVALID, "Send one file per request, in the field `file`.")
    return None
