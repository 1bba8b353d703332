"""What a file is, from its bytes: never the client's content type or the extension.

libmagic (the `file` command's database) names the type from the first
bytes. A file counts as an image shown inline only if Pillow also opens it as
PNG, JPEG, GIF or WebP (chat.uploads.images.open_image) AND libmagic agrees
on the format: an HTML page named `.png` is text/html, a GIF with a script
appended is still only a GIF (and is served as one, with nosniff), and
anything that fails either check is served as an attachment.
"""

import re
import unicodedata
from dataclasses import dataclass
from typing import IO

import magic
from PIL import Image

from .images import INLINE_FORMATS, NotAnImage, open_image

# libmagic needs the start of a file only; this covers Office/ZIP signatures.
SNIFF_BYTES = 64 * 1024
UNKNOWN = "application/octet-stream"
MAX_NAME_CHARS = 200
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
INLINE_TYPES = frozenset(INLINE_FORMATS.values())


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    # The decoded image (upright), when the file is one shown inline.
    image: Image.Image | None


def sniff(file: IO[bytes]) -> Sniffed:
    """The type of the bytes in `file` (read from its start), and the image if it is one."""
    file.seek(0)
    prefix = file.read(SNIFF_BYTES)
    content_type = content_type_of(prefix)
    image = None
    if content_type in INLINE_TYPES:
        file.seek(0)
        try:
            opened = open_image(file)
        except NotAnImage:
            opened = None
        if opened is not None and INLINE_FORMATS.get(opened.format or "") == content_type:
            image = opened
    file.seek(0)
    return Sniffed(content_type, image)


def content_type_of(prefix: bytes) -> str:
    """libmagic's MIME type for these first bytes, or application/octet-stream."""
    if not prefix:
        return UNKNOWN
    found = (magic.from_buffer(prefix, mime=True) or "").strip().lower()
    found = found.split(";", 1)[0].strip()
    if not _TYPE.match(found) or len(found) > 100:
        return UNKNOWN
    return found


def is_inline(content_type: str, width: int | None) -> bool:
    """Whether a stored upload may be shown in the page: a confirmed raster image only."""
    return content_type in INLINE_TYPES and width is not None


def clean_name(raw: str) -> str:
    """A display name: no directories, no control or invisible characters, bounded, never empty.

    Bidirectional overrides go too, so `photo\\u202egnp.exe` cannot pose as a
    picture.
    """
    name = unicodedata.normalize("NFC", raw.replace("\\", "/")).rsplit("/", 1)[-1]
    name = "".join(
        ch for ch in name if not unicodedata.category(ch).startswith(("C", "Z")) or ch == " "
    )
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16 and stem:
            name = stem[: MAX_NAME_CHARS - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:MAX_NAME_CHARS].rstrip(" .")
    return name or "file"


def _visible(ch: str) -> str:
    category = unicodedata.category(ch)
    if category.startswith("C"):  # control, format (bidi), surrogate, private, unassigned
        return ""
    return " " if category.startswith("Z") else ch
