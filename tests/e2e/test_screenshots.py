"""The room page at a laptop's and a phone's size, light and dark: it fits, and here it is.

Each run leaves the pictures in test-artifacts/screenshots/; the ones in
docs/screenshots/ were taken this way.
"""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from chat import services
from chat.models import Message
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import message
from tests.e2e.test_nav import BACKGROUND, is_dark
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.processes]

OUT = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

SIZES = {"laptop": {"width": 1366, "height": 800}, "phone": {"width": 390, "height": 844}}

CONVERSATION = [
    ("maria", "Morning all! The **release notes** draft is up, comments welcome."),
    ("maria", "Also: staging is green again :)"),
    ("sam", "Nice. I'll read it after stand-up. @maria did the ~~migration~~ backfill finish?"),
    ("maria", "It did, 1.2M rows in 4 minutes:\n```\nbackfill: 1,204,311 rows, 0 errors\n```"),
    ("lee", "> staging is green again\n\nFinally 🎉"),
    ("sam", "Let's ship it on Thursday then. Checklist: https://example.com/release"),
]

THREAD = [
    ("sam", "Left two comments on the changelog wording."),
    ("lee", "The upgrade section needs the new `uploads_prune` cron line."),
    ("maria", "Both fixed, thanks! @lee can you double-check the cron syntax?"),
]


@pytest.fixture
def team(transactional_db):
    def make():
        people = {name: UserFactory(username=name) for name in ["maria", "sam", "lee"]}
        services.room_create(actor=people["maria"], name="release", topic="Thursday's release")
        for name in ["sam", "lee"]:
            services.room_join(actor=people[name], room="release")
        services.room_create(actor=people["sam"], name="design", topic="Pixels and words")
        services.room_join(actor=people["maria"], room="design")
        ids = []
        for n, (name, body) in enumerate(CONVERSATION):
            sent = services.message_send(
                author=people[name], room="release", body=body, nonce=f"s{n}"
            )
            ids.append(sent.message.pk)
        services.reaction_toggle(actor=people["sam"], message_id=ids[0], emoji="👍")
        services.reaction_toggle(actor=people["lee"], message_id=ids[0], emoji="👍")
        services.reaction_toggle(actor=people["lee"], message_id=ids[4], emoji="🎉")
        for n, (name, body) in enumerate(THREAD):
            services.message_send(
                author=people[name], room="release", body=body, nonce=f"t{n}", thread=ids[0]
            )
        dm = services.dm_open(actor=people["lee"], usernames=["maria"])
        services.message_send(author=people["lee"], room=dm.slug, body="got a minute?", nonce="d1")
        services.message_send(
            author=people["sam"], room="design", body="@maria new mocks", nonce="d2"
        )
        return people

    return off_the_loop(make)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_the_room_page_fits_and_follows_the_theme(pages, team, size, scheme):
    viewport = SIZES[size]
    page = pages.open(team["maria"], "/r/release/", viewport=viewport, color_scheme=scheme)
    expect(message(page, "sam", "Let's ship it")).to_be_visible()
    expect(page.locator(".room-link[data-room='design'] .mention-count")).to_have_text("@1")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], "the page scrolls sideways"
    assert is_dark(page.evaluate(BACKGROUND)) == (scheme == "dark")
    OUT.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=OUT / f"room-{size}-{scheme}.png")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_thread_opens_beside_the_room(pages, team, scheme):
    viewport = SIZES["laptop"]
    root = off_the_loop(lambda: Message.objects.get(nonce="s0").pk)
    page = pages.open(
        team["maria"], f"/r/release/?thread={root}", viewport=viewport, color_scheme=scheme
    )
    panel = page.locator("#thread-panel")
    expect(panel.get_by_text("cron syntax")).to_be_visible()
    summary = message(page, "maria", "release notes").locator(".thread-summary")
    expect(summary).to_contain_text("3 replies")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], "the page scrolls sideways"
    OUT.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=OUT / f"thread-laptop-{scheme}.png")
