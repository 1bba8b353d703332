"""Uploading (`POST /api/uploads/`), cancelling, and downloading (`/files/...`, `/thumbs/...`).

Every download is checked (chat.uploads.selectors, the access rule in
chat.access) and answered with headers that keep the bytes inert in a
browser: nosniff, a sandboxing Content-Security-Policy, and
`Content-Disposition: attachment` for everything but confirmed raster images.
"""

import logging
import unicodedata
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.multipartparser import MultiPartParserError

from accounts.http import AuthenticatedRequest
from chat.api import allow, api_view
from chat.errors import ChatError, Code, NoSuchUpload
from chat.models import uploads_storage

from . import selectors, services
from .data import attachment_data
from .handlers import refusal
from .sniff import is_inline

log = logging.getLogger(__name__)

# Nothing in a served file may run, load anything or be framed as this site.
FILE_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
_THUMB_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


@allow("POST")
@api_view
def upload(request: AuthenticatedRequest) -> JsonResponse:
    """One file in the multipart field `file` -> 201 {"upload": attachment}.

    The optional header X-Upload-Key names the upload, so that a cancel
    (upload_pending) sent before this answer arrives still reaches it.
    """
    services.upload_check_rate(uploader_id=request.user.pk)
    client_key = request.headers.get("X-Upload-Key")
    if client_key is not None:
        services.upload_check_key(client_key)
    try:
        files = request.FILES
    except RequestDataTooBig:
        raise ChatError(Code.INVALID, "The form fields besides the file are too large.") from None
    except MultiPartParserError:
        raise ChatError(Code.INVALID, "The body is not valid multipart/form-data.") from None
    refused = refusal(request)
    if refused is not None:
        raise refused
    if list(files) != ["file"] or len(files.getlist("file")) != 1:
        raise ChatError(Code.INVALID, "Send one file, as multipart/form-data in the field `file`.")
    file = files.get("file")
    if not isinstance(file, UploadedFile):
        raise ChatError(Code.INVALID, "Send one file, as multipart/form-data in the field `file`.")
    created = services.upload_create(
        uploader=request.user, file=file, name=file.name or "", client_key=client_key or ""
    )
    return JsonResponse({"upload": attachment_data(created)}, status=201)


@allow("DELETE")
@api_view
def upload_detail(request: AuthenticatedRequest, upload_id: int) -> HttpResponse:
    """DELETE: the uploader takes back an unsent file; an admin removes any file (204)."""
    services.upload_delete(actor=request.user, upload_id=upload_id)
    return HttpResponse(status=204)


@allow("DELETE")
@api_view
def upload_pending(request: AuthenticatedRequest, key: str) -> HttpResponse:
    """DELETE: cancel the upload sent with X-Upload-Key `key`, arrived or not (204 every time)."""
    services.upload_cancel(actor=request.user, client_key=key)
    return HttpResponse(status=204)


def _not_found() -> HttpResponse:
    response = HttpResponse(NoSuchUpload().detail, status=404, content_type="text/plain")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


def content_disposition(kind: str, name: str) -> str:
    """`kind; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266 and 5987).

    The quoted fallback has non-ASCII letters reduced to their base letter (or
    `_`) and no quote, backslash or control character, so it needs no escaping.
    """
    ascii_name = "".join(
        ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_"
        for ch in unicodedata.normalize("NFKD", name)
        if not unicodedata.combining(ch)
    )
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _serve(
    request: HttpRequest, path: str, content_type: str, size: int | None, headers: dict[str, str]
) -> HttpResponseBase:
    """The bytes at `path` in the uploads storage, or the proxy's instruction to send them."""
    mode = settings.UPLOADS_SERVE
    response: HttpResponseBase
    if request.method == "HEAD" or mode != "django":
        response = HttpResponse(b"", content_type=content_type)
        if mode == "x-accel-redirect":
            response["X-Accel-Redirect"] = quote(settings.UPLOADS_INTERNAL_PREFIX + path)
        elif mode == "x-sendfile":
            response["X-Sendfile"] = settings.UPLOADS_INTERNAL_PREFIX + path
        elif size is not None:
            response["Content-Length"] = str(size)
    else:
        try:
            stored = uploads_storage().open(path, "rb")
        except FileNotFoundError:
            log.error("upload file missing from the storage: %s", path)
            return _not_found()
        # Streamed from the storage in chunks; never read whole.
        response = FileResponse(stored, content_type=content_type)
        if size is not None:
            response["Content-Length"] = str(size)
    for name, value in headers.items():
        response[name] = value
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CSP
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Cache-Control"] = "private, max-age=3600"
    response["Vary"] = "Cookie"
    return response


def download(request: HttpRequest, upload_id: int, key: str, name: str = "") -> HttpResponseBase:
    """The file itself, to whoever may read the message carrying it (and its uploader before)."""
    if request.method not in ("GET", "HEAD"):
        return _not_found()
    try:
        found = selectors.upload_for_download(user=request.user, upload_id=upload_id, key=key)
    except NoSuchUpload:
        return _not_found()
    inline = is_inline(found.content_type, found.width)
    disposition = content_disposition("inline" if inline else "attachment", found.name)
    return _serve(
        request,
        found.file.name or "",
        found.content_type,
        found.size,
        {"Content-Disposition": disposition},
    )


def thumbnail(request: HttpRequest, upload_id: int, key: str) -> HttpResponseBase:
    """An image's thumbnail (made here, without metadata), under the same check as the file."""
    if request.method not in ("GET", "HEAD"):
        return _not_found()
    try:
        found = selectors.upload_for_download(user=request.user, upload_id=upload_id, key=key)
    except NoSuchUpload:
        return _not_found()
    if not found.thumbnail:
        return _not_found()
    path = found.thumbnail.name or ""
    content_type = _THUMB_TYPES.get(path.rsplit(".", 1)[-1], "application/octet-stream")
    return _serve(request, path, content_type, None, {"Content-Disposition": "inline"})
