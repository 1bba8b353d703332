"""What an upload looks like on the wire: the `upload` answer and a message's `attachments`."""

from typing import Any
from urllib.parse import quote

from chat.models import Upload


def upload_url(upload: Upload) -> str:
    """The download address: checked on every request; the key only makes it unguessable."""
    return f"/files/{upload.id}/{upload.key}/{quote(upload.name, safe='')}"


def thumbnail_url(upload: Upload) -> str | None:
    if not upload.thumbnail:
        return None
    return f"/thumbs/{upload.id}/{upload.key}"


def attachment_data(upload: Upload) -> dict[str, Any]:
    """PROTOCOL v2's `{"id", "name", "size", "content_type", "url"}`, plus image sizes.

    `width`/`height` are the image's (null for other files); `thumbnail` is
    `{"url", "width", "height"}` for images shown inline, else null, so the
    page can reserve the space before the picture arrives.
    """
    thumb = thumbnail_url(upload)
    return {
        "id": upload.id,
        "name": upload.name,
        "size": upload.size,
        "content_type": upload.content_type,
        "url": upload_url(upload),
        "width": upload.width,
        "height": upload.height,
        "thumbnail": (
            {"url": thumb, "width": upload.thumb_width, "height": upload.thumb_height}
            if thumb
            else None
        ),
    }
