"""Files in a real browser: attaching (button, paste, drop), progress and
cancel, refusals in words, the other person's live thumbnail, the viewer and
downloads."""

import base64
import io

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from chat.models import Upload
from tests.e2e.a11y import assert_accessible
from tests.e2e.conftest import SERVER_ENV, off_the_loop
from tests.e2e.helpers import message, say
from tests.servers import start_server

pytestmark = [pytest.mark.browser, pytest.mark.processes]

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


@pytest.fixture
def live_server_process(request, transactional_db, tmp_path):
    """The server, storing uploads in a directory of this test's own."""
    marker = request.node.get_closest_marker("server_env")
    env = {**SERVER_ENV, "UPLOADS_DIR": str(tmp_path / "uploads")}
    server = start_server(**{**env, **(marker.kwargs if marker else {})})
    yield server
    server.stop()


def png(size=(1200, 800), colour=(30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def stored_uploads() -> int:
    return off_the_loop(Upload.objects.count)


def chip(page: Page, name: str):
    return page.locator("#composer-files li.file-chip").filter(has_text=name)


def attach_by_button(page: Page, name: str, mime: str, data: bytes) -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files({"name": name, "mimeType": mime, "buffer": data})


PASTE = """
([name, type, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type }));
  const box = document.getElementById("composer-input");
  box.focus();
  const init = { clipboardData: data, bubbles: true, cancelable: true };
  const paste = new ClipboardEvent("paste", init);
  return box.dispatchEvent(paste);
}
"""

DRAG = """
([kind, target, name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "application/pdf" }));
  const drag = new DragEvent(kind, { dataTransfer: data, bubbles: true, cancelable: true });
  document.querySelector(target).dispatchEvent(drag);
}
"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_an_image_by_the_button_shows_live_for_the_other_person_and_opens_full_size(
    alice, bob, pages
):
    page = pages.open(alice)
    other = pages.open(bob)
    attach_by_button(page, "harbour.png", "image/png", png())
    done = chip(page, "harbour.png")
    expect(done).to_have_attribute("data-state", "done")
    expect(done).to_contain_text("harbour.png")
    expect(page.get_by_role("button", name="Remove harbour.png")).to_be_visible()
    assert_accessible(page, "the composer with a file chip")

    say(page, "the view from here")
    expect(page.locator("#composer-files li")).to_have_count(0)

    # Bob's page shows the thumbnail with its size given before the picture loads.
    li = message(other, "alice", "the view from here")
    thumb = li.locator("img.attachment-thumb")
    expect(thumb).to_have_attribute("alt", "harbour.png")
    expect(thumb).to_have_attribute("width", "480")
    expect(thumb).to_have_attribute("height", "320")
    other.wait_for_function(
        "img => img.complete && img.naturalWidth === 480", arg=thumb.element_handle()
    )
    box = thumb.bounding_box()
    assert (round(box["width"]), round(box["height"])) == (480, 320)

    opener = li.get_by_role("button", name="Open harbour.png")
    opener.click()
    viewer = other.get_by_role("dialog", name="harbour.png")
    expect(viewer).to_be_visible()
    full = viewer.locator("img.viewer-image")
    other.wait_for_function(
        "img => img.complete && img.naturalWidth === 1200", arg=full.element_handle()
    )
    expect(viewer.get_by_role("link", name="Download")).to_have_attribute("download", "harbour.png")
    assert_accessible(other, "the image viewer open")
    other.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(opener).to_be_focused()

    # The backdrop closes it too.
    opener.click()
    expect(viewer).to_be_visible()
    other.mouse.click(5, 5)
    expect(viewer).to_be_hidden()


def test_a_pasted_image_is_sent_without_text_and_text_still_pastes(alice, bob, pages):
    page = pages.open(alice)
    other = pages.open(bob)
    # Plain text on the clipboard is not a file: the browser pastes it as usual.
    pasted = page.evaluate(
        """() => {
          const data = new DataTransfer();
          data.setData("text/plain", "words");
          return document.getElementById("composer-input").dispatchEvent(
            new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
        }"""
    )
    assert pasted is True, "a text paste was cancelled"
    expect(page.locator("#composer-files li")).to_have_count(0)

    # A file on the clipboard: the page takes it (the browser's own paste is cancelled).
    assert page.evaluate(PASTE, ["image.png", "image/png", b64(png((300, 200)))]) is False
    expect(chip(page, "image.png")).to_have_attribute("data-state", "done")
    page.locator("#composer-input").press("Enter")
    expect(page.locator("#composer-files li")).to_have_count(0)

    thumb = other.locator("#messages li.message[data-user='alice'] img.attachment-thumb")
    expect(thumb).to_have_attribute("width", "300")
    expect(thumb).to_have_attribute("height", "200")


def test_a_pdf_is_a_card_the_other_person_downloads(alice, bob, pages):
    page = pages.open(alice)
    other = pages.open(bob)
    page.locator("#composer-file").set_input_files(
        {"name": "Q3 report.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    expect(chip(page, "Q3 report.pdf")).to_have_attribute("data-state", "done")
    say(page, "the report")

    card = message(other, "alice", "the report").locator("li.attachment-file")
    expect(card).to_have_attribute("data-kind", "pdf")
    expect(card.locator(".attachment-name")).to_have_text("Q3 report.pdf")
    expect(card.locator(".attachment-size")).to_have_text(f"{len(PDF)} bytes")
    with other.expect_download() as download:
        card.get_by_role("link", name="Download Q3 report.pdf").click()
    assert download.value.suggested_filename == "Q3 report.pdf"
    with open(download.value.path(), "rb") as got:
        assert got.read() == PDF


def test_files_dropped_on_the_room_are_attached(alice, pages):
    page = pages.open(alice)
    zone = page.locator("#drop-zone")
    expect(zone).to_be_hidden()
    page.evaluate(DRAG, ["dragenter", "#message-pane", "notes.pdf", b64(PDF)])
    expect(zone).to_be_visible()
    expect(zone).to_have_text("Drop files to attach them")
    page.evaluate(DRAG, ["drop", "#message-pane", "notes.pdf", b64(PDF)])
    expect(zone).to_be_hidden()
    expect(chip(page, "notes.pdf")).to_have_attribute("data-state", "done")
    expect(page.locator("#composer-input")).to_be_focused()


def throttle(cdp, upload: int) -> None:
    """Uploads at `upload` bytes a second (-1: unlimited)."""
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload},
    )


def slow_uploads(page: Page):
    """Uploads at 20 kB/s: slow enough to watch and cancel."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    throttle(cdp, 20_000)
    return cdp


def test_cancelling_an_upload_sends_and_stores_nothing(alice, bob, pages):
    page = pages.open(alice)
    other = pages.open(bob)
    cdp = slow_uploads(page)
    data = png((1500, 1500), (0, 0, 0)) + b"\0" * 400_000
    with page.expect_request(lambda r: r.method == "POST" and "/api/uploads/" in r.url) as up:
        attach_by_button(page, "big.png", "image/png", data)
    key = up.value.headers["x-upload-key"]
    uploading = chip(page, "big.png")
    expect(uploading).to_have_attribute("data-state", "uploading")
    bar = uploading.get_by_role("progressbar", name="Uploading big.png")
    expect(bar).to_be_visible()
    with page.expect_response(lambda r: r.request.method == "DELETE") as cancelled:
        page.get_by_role("button", name="Cancel the upload of big.png").click()
    assert cancelled.value.url.endswith(f"/api/uploads/pending/{key}/")
    assert cancelled.value.status == 204
    expect(page.locator("#composer-files li")).to_have_count(0)
    throttle(cdp, -1)
    # The whole file may have reached the server before the cancel: stored
    # already, the cancel deleted it; still to be stored, it is refused.
    assert stored_uploads() == 0

    say(page, "nothing attached")
    li = message(other, "alice", "nothing attached")
    expect(li).to_be_visible()
    expect(li.locator(".attachments")).to_have_count(0)
    assert stored_uploads() == 0


def test_enter_while_uploading_sends_once_the_files_are_up(alice, bob, pages):
    page = pages.open(alice)
    other = pages.open(bob)
    cdp = slow_uploads(page)
    attach_by_button(page, "later.pdf", "application/pdf", PDF + b"%" * 50_000)
    expect(chip(page, "later.pdf")).to_have_attribute("data-state", "uploading")
    box = page.locator("#composer-input")
    box.fill("with the file")
    box.press("Enter")
    status = page.locator("#composer-files-status")
    expect(status).to_have_text("Sending when the files are uploaded…")
    expect(box).to_have_value("with the file")
    throttle(cdp, -1)  # (the running upload may keep its pace: 2.5 s in all)

    expect(box).to_have_value("", timeout=15_000)
    card = message(other, "alice", "with the file").locator("li.attachment-file")
    expect(card.locator(".attachment-name")).to_have_text("later.pdf")


@pytest.mark.server_env(UPLOADS_MAX_BYTES="4000")
def test_a_file_over_the_limit_is_refused_in_words_and_left_out(alice, pages):
    page = pages.open(alice)
    attach_by_button(page, "huge.pdf", "application/pdf", PDF + b"%" * 5000)
    refused = chip(page, "huge.pdf")
    expect(refused).to_have_attribute("data-state", "failed")
    error = refused.locator(".file-chip-error")
    expect(error).to_have_text("Too large to upload: the limit is 3.9 KB.")
    assert_accessible(page, "a refused file chip")
    page.emulate_media(color_scheme="dark")
    assert_accessible(page, "a refused file chip, dark theme")
    page.get_by_role("button", name="Remove huge.pdf").click()
    expect(page.locator("#composer-files li")).to_have_count(0)
    assert stored_uploads() == 0


@pytest.mark.server_env(UPLOADS_QUOTA_BYTES="1000")
def test_the_servers_refusal_is_said_on_the_chip(alice, pages):
    page = pages.open(alice)
    attach_by_button(page, "report.pdf", "application/pdf", PDF + b"%" * 2000)
    refused = chip(page, "report.pdf")
    expect(refused).to_have_attribute("data-state", "failed")
    expect(refused.locator(".file-chip-error")).to_have_text("Your storage for files is full.")
    assert stored_uploads() == 0


def test_more_files_than_a_message_takes_are_refused_up_front(alice, pages):
    page = pages.open(alice)
    page.locator("#composer-file").set_input_files(
        [{"name": f"f{i}.pdf", "mimeType": "application/pdf", "buffer": PDF} for i in range(11)]
    )
    expect(page.locator("#composer-files-status")).to_have_text(
        "At most 10 files per message: 10 more can be added."
    )
    expect(page.locator("#composer-files li")).to_have_count(0)
