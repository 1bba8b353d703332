"""Reading untrusted images safely, and the derived images TeamChat serves.

Every image comes from someone's upload, so every open goes through
`open_image`: a pixel limit against decompression bombs, the formats a
browser shows inline and nothing else, and the EXIF orientation applied. What
is written back (thumbnails, avatars) is re-encoded from pixels, so no
metadata (EXIF, GPS, comments) survives.
"""

import io
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps

# Raster formats a browser may show inline (PROTOCOL v2, Uploads).
INLINE_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
# About 50 megapixels: a 7000x7000 photo passes, a 1-KiB PNG claiming
# 100,000x100,000 does not.
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class NotAnImage(Exception):
    """The bytes are not a raster image TeamChat shows, or it is too large to decode."""


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str
    width: int
    height: int


def open_image(file: IO[bytes]) -> Image.Image:
    """The image in `file`, upright, if it is PNG, JPEG, GIF or WebP within the pixel limit."""
    try:
        image = Image.open(file, formats=list(INLINE_FORMATS))
        if image.width * image.height > MAX_PIXELS:
            raise NotAnImage("The image has too many pixels.")
        image.load()
        upright = ImageOps.exif_transpose(image)
    except NotAnImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAnImage("The image has too many pixels.") from exc
    except Exception as exc:  # Pillow raises many kinds for broken or hostile files.
        raise NotAnImage("The file is not an image that can be shown.") from exc
    upright.format = image.format
    return upright


def _encode(image: Image.Image) -> Rendered:
    """PNG where there is transparency, JPEG otherwise; no metadata either way."""
    out = io.BytesIO()
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        image.save(out, "PNG", optimize=True)
        content_type = "image/png"
    else:
        image = image.convert("RGB")
        image.save(out, "JPEG", quality=85, optimize=True)
        content_type = "image/jpeg"
    return Rendered(out.getvalue(), content_type, image.width, image.height)


def thumbnail(image: Image.Image, box: tuple[int, int]) -> Rendered:
    """The image scaled down to fit in `box` (never up), re-encoded without metadata."""
    copy = image.copy()
    copy.thumbnail(box, Image.Resampling.LANCZOS)
    return _encode(copy)


def square(image: Image.Image, side: int) -> Rendered:
    """The centre square of the image at `side` pixels (avatars), re-encoded without metadata."""
    return _encode(ImageOps.fit(image, (side, side), Image.Resampling.LANCZOS))
