"""Search in a real browser: a person pages through every result and sees the right total."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import off_the_loop
from tests.factories import MessageFactory, RoomFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.processes]

MATCHES = 130


def test_paging_through_every_result_with_the_right_total(pages):
    def history():
        reader = UserFactory(username="reader")
        author = UserFactory(username="alice")
        ops = RoomFactory(slug="ops", name="ops")
        ids = [
            MessageFactory(room=ops, author=author, body=f"**incident** {i} closed").id
            for i in range(MATCHES)
        ]
        MessageFactory(room=ops, author=author, body="nothing to see")
        return reader, ids

    reader, ids = off_the_loop(history)
    page = pages.open(reader, "/search/", wait_online=False)
    box = page.get_by_role("searchbox", name="Search messages")
    box.fill("incident")
    box.press("Enter")

    seen: list[int] = []
    for first, last in ((1, 50), (51, 100), (101, MATCHES)):
        status = page.get_by_role("status")
        expect(status).to_have_text(re.compile(rf"Results {first}–{last} of {MATCHES} results"))
        hits = page.locator("li.search-hit")
        expect(hits).to_have_count(last - first + 1)
        # The rendered message, not its Markdown: bold, highlighted, no asterisks.
        expect(hits.first.locator("strong mark")).to_have_text("incident")
        expect(hits.first).not_to_contain_text("**")
        seen += [int(i) for i in hits.evaluate_all("els => els.map(e => e.dataset.id)")]
        older = page.get_by_role("link", name="Older results")
        if last < MATCHES:
            older.click()
        else:
            expect(older).to_have_count(0)

    assert seen == sorted(ids, reverse=True)
    page.get_by_role("link", name="Newest results").click()
    expect(page.get_by_role("status")).to_have_text(re.compile(rf"Results 1–50 of {MATCHES}"))
