"""/api/docs/ in a real browser: the API's operations render from this site alone, under the CSP."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import off_the_loop
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.processes]


def test_the_docs_render_every_operation_from_this_site_only(pages):
    reader = off_the_loop(UserFactory, username="reader")
    page = pages.new_page(reader)
    origin = urlsplit(pages.base).netloc
    requests: list[str] = []
    console: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))

    page.goto(pages.base + "/api/docs/")

    expect(page.get_by_role("heading", name="TeamChat API")).to_be_visible()
    send = page.locator("#operations-rooms-post_rooms_slug_messages")
    expect(send).to_be_visible()
    expect(send).to_contain_text("/api/rooms/{slug}/messages/")
    # The schema the page fetched is the one /api/schema/ serves, whole.
    expect(page.locator(".opblock")).to_have_count(
        page.evaluate(
            """async () => {
                const doc = await (await fetch("/api/schema/")).json();
                return Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
            }"""
        )
    )
    # Expanding an operation shows its responses with their schemas.
    send.locator(".opblock-summary").click()
    expect(send.locator(".responses-table")).to_contain_text("413")

    elsewhere = [
        url
        for url in requests
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != origin
    ]
    assert elsewhere == [], f"requests to other hosts: {elsewhere}"
    refused = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
    assert refused == [], refused
    errors = [m for m in console if m.startswith("error")]
    assert errors == [], errors
