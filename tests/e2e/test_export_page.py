"""The Export page in a browser: asking for one's data shows it being made, then a download."""

import io
import re
import zipfile

import pytest
from playwright.sync_api import expect

from chat import services
from tests.e2e.conftest import off_the_loop

pytestmark = [pytest.mark.browser, pytest.mark.processes]


def test_a_person_exports_their_data_and_downloads_it(alice, pages):
    off_the_loop(
        services.message_send, author=alice, room="general", body="mine to keep", nonce=None
    )
    page = pages.open(alice, "/settings/export/", wait_online=False)
    expect(page.get_by_role("button", name="Export the organization")).to_have_count(0)
    page.get_by_role("button", name="Export my data").click()
    row = page.locator("#export-list tr[data-export]").first
    # Ready with its size, whether the page was rendered before or after it was made.
    expect(row.locator(".export-state")).to_have_text(
        re.compile(r"^Ready \(\d+(\.\d)?\s(bytes|KB|MB)\)$"), timeout=20_000
    )
    with page.expect_download() as info:
        row.get_by_role("link", name="Download").click()
    data = open(info.value.path(), "rb").read()
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert b"mine to keep" in archive.read("messages.jsonl")
