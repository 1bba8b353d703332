"""POST /api/uploads/ and downloads: types from the bytes, thumbnails, limits, headers."""

import io
import re
import struct
import zlib
from datetime import timedelta
from urllib.parse import unquote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from chat import ratelimit
from chat.models import Upload, uploads_storage
from chat.uploads.sniff import clean_name
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), **save: object) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def exif_jpeg() -> bytes:
    """A 200x100 JPEG stored sideways (EXIF orientation 6) with GPS tags: red left, blue right."""
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 0.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), quality=95)
    return out.getvalue()


def upload(who, data: bytes, name: str = "file.bin", content_type: str = "image/png"):
    return who.client.post(
        "/api/uploads/", {"file": SimpleUploadedFile(name, data, content_type=content_type)}
    )


def uploaded(who, data: bytes, name: str = "file.bin", content_type: str = "image/png") -> dict:
    response = upload(who, data, name, content_type)
    assert response.status_code == 201, response.content
    return response.json()["upload"]


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- Types from the bytes -----------------------------------------------------


def test_an_image_is_stored_with_its_size_and_a_thumbnail_and_served_inline(person):
    alice = person("alice")
    data = image_bytes("PNG", (64, 48))
    got = uploaded(alice, data, "shot.png")
    assert got["content_type"] == "image/png"
    assert (got["name"], got["size"], got["width"], got["height"]) == (
        "shot.png",
        len(data),
        64,
        48,
    )
    assert got["url"] == f"/files/{got['id']}/{Upload.objects.get().key}/shot.png"
    # Small images are not enlarged.
    assert (got["thumbnail"]["width"], got["thumbnail"]["height"]) == (64, 48)

    response = alice.client.get(got["url"])
    assert response.status_code == 200
    assert body(response) == data
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert response["Cache-Control"].startswith("private")


def test_head_answers_the_headers_without_the_bytes(person):
    alice, bob = person("alice"), person("bob")
    data = b"%PDF-1.4\n%%EOF\n"
    got = uploaded(alice, data, "a.pdf")
    response = alice.client.head(got["url"])
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert bob.client.head(got["url"]).status_code == 404


def test_html_named_png_is_typed_html_and_only_ever_downloaded(person):
    alice = person("alice")
    page = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
    got = uploaded(alice, page, "cat.png", content_type="image/png")
    assert got["content_type"] in ("text/html", "application/octet-stream")
    assert got["width"] is None and got["thumbnail"] is None

    response = alice.client.get(got["url"])
    assert response.status_code == 200
    assert response["Content-Type"] != "image/png"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


def test_svg_is_never_inline(person):
    alice = person("alice")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    got = uploaded(alice, svg, "logo.svg", content_type="image/svg+xml")
    assert got["content_type"] == "image/svg+xml"
    assert got["thumbnail"] is None
    response = alice.client.get(got["url"])
    assert response["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in response["Content-Security-Policy"]


def test_a_gif_with_html_appended_is_served_only_as_a_gif(person):
    alice = person("alice")
    polyglot = image_bytes("GIF", (10, 10)) + b"<html><script>alert(1)</script></html>"
    got = uploaded(alice, polyglot, "x.html", content_type="text/html")
    assert got["content_type"] == "image/gif"
    response = alice.client.get(got["url"])
    assert response["Content-Type"] == "image/gif"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert body(response) == polyglot


def test_a_jpeg_named_pdf_is_a_jpeg(person):
    alice = person("alice")
    got = uploaded(alice, image_bytes("JPEG"), "report.pdf", content_type="application/pdf")
    assert got["content_type"] == "image/jpeg"
    assert got["name"] == "report.pdf"
    response = alice.client.get(got["url"])
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"].startswith("inline;")


def test_a_pdf_is_a_download_card_not_an_image(person):
    alice = person("alice")
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
    got = uploaded(alice, pdf, "minutes.pdf", content_type="image/png")
    assert got["content_type"] == "application/pdf"
    assert got["thumbnail"] is None
    response = alice.client.get(got["url"])
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")


def png_bomb() -> bytes:
    """74 bytes of PNG that claim 100,000 x 100,000 pixels (10 gigapixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_never_decoded_and_is_only_a_download(person):
    alice = person("alice")
    got = uploaded(alice, png_bomb(), "bomb.png")
    assert got["content_type"] == "image/png"
    assert got["width"] is None and got["thumbnail"] is None
    response = alice.client.get(got["url"])
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


# --- Thumbnails ------------------------------------------------------------


def test_thumbnails_fit_the_box_keep_the_shape_and_are_served_inline(person, settings):
    settings.UPLOADS_THUMBNAIL_SIZE = (480, 360)
    alice = person("alice")
    got = uploaded(alice, image_bytes("PNG", (2000, 1000)), "wide.png")
    thumb = got["thumbnail"]
    assert (got["width"], got["height"]) == (2000, 1000)
    assert (thumb["width"], thumb["height"]) == (480, 240)
    response = alice.client.get(thumb["url"])
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    served = Image.open(io.BytesIO(body(response)))
    assert served.size == (480, 240)
    assert response["Content-Type"] == Image.MIME[served.format]


def test_thumbnails_are_upright_and_carry_no_exif_or_gps(person):
    alice = person("alice")
    original = exif_jpeg()
    assert b"Exif" in original
    got = uploaded(alice, original, "holiday.jpg")
    # The size as shown: the stored 200x100 stands upright as 100x200.
    assert (got["width"], got["height"]) == (100, 200)
    assert (got["thumbnail"]["width"], got["thumbnail"]["height"]) == (100, 200)

    data = body(alice.client.get(got["thumbnail"]["url"]))
    assert b"Exif" not in data
    thumb = Image.open(io.BytesIO(data))
    assert dict(thumb.getexif()) == {}
    assert thumb.size == (100, 200)
    red, _, blue = thumb.convert("RGB").getpixel((50, 20))
    assert red > 200 and blue < 50  # what was stored on the left is now on top
    red, _, blue = thumb.convert("RGB").getpixel((50, 180))
    assert blue > 200 and red < 50


# --- Names and headers -------------------------------------------------------


def test_names_lose_paths_controls_and_bidi_tricks_and_are_never_empty():
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert clean_name("photo\u202egnp.exe") == "photognp.exe"
    assert clean_name("a\x00b\nc.txt") == "abc.txt"
    assert clean_name("  ") == "file"
    assert clean_name("...") == "file"
    long = clean_name("x" * 500 + ".pdf")
    assert len(long) == 200 and long.endswith(".pdf")


def test_non_ascii_and_quoted_names_get_an_rfc_5987_header_and_an_ascii_fallback(person):
    alice = person("alice")
    name = 'Größe "final" 報告.pdf'
    got = uploaded(alice, b"%PDF-1.4\n%%EOF\n", name)
    assert got["name"] == name
    header = alice.client.get(got["url"])["Content-Disposition"]
    kind, fallback, extended = (part.strip() for part in header.split(";"))
    assert kind == "attachment"
    match = re.fullmatch(r'filename="([\x20-\x7e]*)"', fallback)
    assert match and '"' not in match.group(1) and "\\" not in match.group(1)
    assert match.group(1).startswith("Gro")
    assert extended.startswith("filename*=UTF-8''")
    encoded = extended.removeprefix("filename*=UTF-8''")
    assert re.fullmatch(r"[A-Za-z0-9%!#$&+\-.^_`|~]*", encoded)
    assert unquote(encoded) == name


# --- Refusals ---------------------------------------------------------------


def test_anonymous_uploads_are_refused(client):
    response = client.post("/api/uploads/", {"file": SimpleUploadedFile("a.txt", b"hi")})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"other": SimpleUploadedFile("a.txt", b"hello")},
        {"file": SimpleUploadedFile("empty.txt", b"")},
        {"file": [SimpleUploadedFile("a.txt", b"a"), SimpleUploadedFile("b.txt", b"b")]},
    ],
    ids=["no file", "wrong field", "empty", "two files"],
)
def test_a_missing_empty_or_extra_file_is_a_clear_400_and_stores_nothing(
    person, files, uploads_dir
):
    alice = person("alice")
    response = alice.client.post("/api/uploads/", files)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert response.json()["detail"]
    assert not Upload.objects.exists()


def test_json_instead_of_a_file_is_refused(person):
    alice = person("alice")
    response = alice.post("/api/uploads/", {"file": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_a_file_over_the_limit_is_413_and_stops_being_read_at_the_limit(
    person, settings, monkeypatch, uploads_dir
):
    settings.UPLOADS_MAX_BYTES = 256 * 1024
    written = []
    real = TemporaryFileUploadHandler.receive_data_chunk

    def counting(self, raw_data, start):
        written.append(len(raw_data))
        return real(self, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", counting)
    alice = person("alice")
    response = upload(alice, b"\0" * (4 * 1024 * 1024), "big.bin")
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert "256 KiB" in response.json()["detail"]
    # Parsing stopped at the limit: what reached the disk is not the whole 4 MiB.
    assert sum(written) <= settings.UPLOADS_MAX_BYTES
    assert not Upload.objects.exists()
    assert not uploads_dir.exists() or not any(p.is_file() for p in uploads_dir.rglob("*"))


def test_even_a_small_file_is_parsed_to_disk_not_memory(person, monkeypatch):
    from django.core.files.uploadedfile import TemporaryUploadedFile

    from chat.uploads import services

    seen = []
    real = services.upload_create

    def recording(**kwargs):
        seen.append(type(kwargs["file"]))
        return real(**kwargs)

    monkeypatch.setattr(services, "upload_create", recording)
    alice = person("alice")
    uploaded(alice, b"tiny", "tiny.txt")
    assert seen == [TemporaryUploadedFile]


def test_a_file_at_the_limit_is_accepted(person, settings):
    settings.UPLOADS_MAX_BYTES = 64 * 1024
    alice = person("alice")
    assert upload(alice, b"a" * (64 * 1024), "exact.txt").status_code == 201


def test_the_quota_counts_what_the_user_keeps(person, settings):
    settings.UPLOADS_QUOTA_BYTES = 10_000
    alice, bob = person("alice"), person("bob")
    uploaded(alice, b"a" * 6000, "one.txt")
    response = upload(alice, b"b" * 6000, "two.txt")
    assert response.status_code == 413
    assert response.json()["error"] == "quota_exceeded"
    assert Upload.objects.filter(uploader=alice.user).count() == 1
    uploaded(alice, b"c" * 4000, "fits.txt")
    # Another person's quota is their own.
    uploaded(bob, b"d" * 6000, "bobs.txt")


def test_uploading_too_fast_is_429_and_stores_nothing(person, monkeypatch):
    monkeypatch.setattr(ratelimit.uploads, "rate", 0.001)
    monkeypatch.setattr(ratelimit.uploads, "burst", 2.0)
    alice = person("alice")
    uploaded(alice, b"one", "1.txt")
    uploaded(alice, b"two", "2.txt")
    response = upload(alice, b"three", "3.txt")
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert Upload.objects.count() == 2


def test_only_post(person):
    alice = person("alice")
    response = alice.client.get("/api/uploads/")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


# --- Downloads ----------------------------------------------------------------


def test_a_wrong_key_or_id_is_the_same_404_as_no_permission(person):
    alice, bob = person("alice"), person("bob")
    got = uploaded(alice, b"secret notes", "notes.txt")
    upload_id, key = got["id"], Upload.objects.get().key
    wrong_key = alice.client.get(f"/files/{upload_id}/{'A' * len(key)}/notes.txt")
    missing = alice.client.get(f"/files/{upload_id + 1000}/{key}/notes.txt")
    bob_view = bob.client.get(got["url"])
    for response in (wrong_key, missing, bob_view):
        assert response.status_code == 404
        assert response.content == wrong_key.content
        assert response["Content-Type"] == wrong_key["Content-Type"]
    assert bob.client.get(got["url"].replace("/files/", "/thumbs/")).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_room_member_downloads_a_shared_file_and_loses_it_when_the_message_goes(person, channel):
    from chat import services

    alice, bob = person("alice"), person("bob")
    room = channel("design", alice, bob, private=True)
    got = uploaded(alice, image_bytes("PNG"), "mock.png")
    message = MessageFactory(room=room, author=alice.user, body="")
    Upload.objects.filter(pk=got["id"]).update(message=message)
    assert bob.client.get(got["url"]).status_code == 200
    assert bob.client.get(got["thumbnail"]["url"]).status_code == 200
    services.message_delete(actor=alice.user, message_id=message.pk)
    for who in (alice, bob):
        assert who.client.get(got["url"]).status_code == 404
        assert who.client.get(got["thumbnail"]["url"]).status_code == 404


def test_a_file_missing_from_the_storage_is_a_404_not_an_error(person):
    alice = person("alice")
    got = uploaded(alice, b"%PDF-1.4\n%%EOF\n", "gone.pdf")
    uploads_storage().delete(Upload.objects.get().file.name)
    response = alice.client.get(got["url"])
    assert response.status_code == 404


# --- Proxy modes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "header", "prefix"),
    [
        ("x-accel-redirect", "X-Accel-Redirect", "/_uploads/"),
        ("x-sendfile", "X-Sendfile", "/srv/up/"),
    ],
)
def test_proxy_modes_hand_the_path_to_the_proxy_after_the_check(
    person, settings, mode, header, prefix
):
    settings.UPLOADS_SERVE = mode
    settings.UPLOADS_INTERNAL_PREFIX = prefix
    alice, bob = person("alice"), person("bob")
    got = uploaded(alice, b"%PDF-1.4\n%%EOF\n", "plan.pdf")
    stored = Upload.objects.get()
    response = alice.client.get(got["url"])
    assert response.status_code == 200
    assert response[header] == prefix + stored.file.name
    assert response.content == b""
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    refused = bob.client.get(got["url"])
    assert refused.status_code == 404 and header not in refused


# --- Pruning ----------------------------------------------------------------


def test_prune_deletes_old_unattached_uploads_with_their_files(
    person, django_capture_on_commit_callbacks
):
    alice = person("alice")
    old = uploaded(alice, image_bytes("PNG"), "old.png")
    sent = uploaded(alice, image_bytes("PNG"), "sent.png")
    fresh = uploaded(alice, b"fresh", "fresh.txt")
    day_ago = timezone.now() - timedelta(hours=25)
    Upload.objects.filter(pk__in=[old["id"], sent["id"]]).update(created=day_ago)
    Upload.objects.filter(pk=sent["id"]).update(message=MessageFactory(author=alice.user))
    old_row = Upload.objects.get(pk=old["id"])
    paths = [old_row.file.name, old_row.thumbnail.name]
    assert all(uploads_storage().exists(p) for p in paths)

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("uploads_prune", stdout=out)
    assert "Deleted 1 upload" in out.getvalue()
    assert set(Upload.objects.values_list("id", flat=True)) == {sent["id"], fresh["id"]}
    assert not any(uploads_storage().exists(p) for p in paths)
    assert alice.client.get(old["url"]).status_code == 404
    assert alice.client.get(fresh["url"]).status_code == 200
