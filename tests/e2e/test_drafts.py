"""Drafts that follow the person: from tab to tab, into the Drafts list, and gone once sent."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from chat import drafts, services
from tests.e2e.a11y import assert_accessible
from tests.e2e.conftest import off_the_loop, session_cookie
from tests.e2e.helpers import message, online, room_link, sent

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def random_room(alice):
    services.room_create(actor=alice, name="random", topic="")
    return "random"


def test_a_draft_typed_in_one_tab_appears_in_the_others_and_sending_clears_it_everywhere(
    alice, random_room, pages
):
    first = pages.open(alice, "/r/general/")
    second = pages.open(alice, "/r/general/")
    elsewhere = pages.open(alice, "/r/random/")

    first.locator("#composer-input").fill("a plan, half written")

    # The other tab on the room shows it in its box; the tab on another room marks the room.
    expect(second.locator("#composer-input")).to_have_value("a plan, half written")
    expect(room_link(elsewhere, "general").locator(".draft-mark")).to_have_count(1)
    expect(room_link(elsewhere, "random").locator(".draft-mark")).to_have_count(0)

    # The Drafts list shows it with its room; choosing it opens the room with the text ready.
    elsewhere.get_by_role("button", name="Drafts").click()
    listed = elsewhere.locator("#drafts-dialog .drafts-link")
    expect(listed).to_have_count(1)
    expect(listed.locator(".drafts-room")).to_have_text("#general")
    expect(listed.locator(".drafts-snippet")).to_have_text("a plan, half written")
    assert_accessible(elsewhere, "drafts list open, a room marked with a draft")
    listed.click()
    expect(elsewhere).to_have_url(f"{pages.base}/r/general/")
    online(elsewhere)
    expect(elsewhere.locator("#composer-input")).to_have_value("a plan, half written")

    # Sent from the first tab: every box is empty, and so is the list, even after a reload.
    first.locator("#composer-input").press("Enter")
    sent(first, "alice", "a plan, half written")
    expect(second.locator("#composer-input")).to_have_value("")
    expect(elsewhere.locator("#composer-input")).to_have_value("")
    second.reload()
    online(second)
    expect(message(second, "alice", "a plan, half written")).to_have_count(1)
    expect(second.locator("#composer-input")).to_have_value("")
    second.get_by_role("button", name="Drafts").click()
    expect(second.locator("#drafts-dialog .drafts-link")).to_have_count(0)
    expect(second.locator("#drafts-dialog .drafts-empty")).to_be_visible()


def test_text_typed_in_two_tabs_at_once_is_shown_both_ways_and_nothing_is_lost(alice, pages):
    first = pages.open(alice, "/r/general/")
    second = pages.open(alice, "/r/general/")
    first.locator("#composer-input").fill("the first tab's text")
    expect(second.locator("#composer-input")).to_have_value("the first tab's text")

    # Both edit before hearing of the other: the second tab saves first.
    second.locator("#composer-input").fill("the second tab's text")
    first.locator("#composer-input").press_sequentially(", edited")
    second.locator("#composer-input").blur()

    bar = first.locator("#draft-conflict")
    expect(bar).to_be_visible()
    expect(bar).to_contain_text("This draft was changed on another device")
    expect(bar.locator(".draft-conflict-theirs")).to_have_text("the second tab's text")
    expect(first.locator("#composer-input")).to_have_value("the first tab's text, edited")
    assert_accessible(first, "a draft conflict shown")

    bar.get_by_role("button", name="Keep mine").click()
    expect(bar).to_be_hidden()
    expect(second.locator("#composer-input")).to_have_value("the first tab's text, edited")
    kept = off_the_loop(drafts.drafts_of, alice)
    assert [d["body"] for d in kept] == ["the first tab's text, edited"]


def test_a_device_back_online_with_an_older_draft_overwrites_nothing_and_shows_both(alice, pages):
    laptop = pages.open(alice, "/r/general/")
    phone_context = pages.browser.new_context()
    phone_context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": off_the_loop(session_cookie, alice),
                "url": pages.base,
            }
        ]
    )
    phone = phone_context.new_page()
    phone.on("pageerror", lambda exc: pages.errors.append(f"phone: {exc}"))
    phone.goto(f"{pages.base}/r/general/")
    online(phone)

    laptop.locator("#composer-input").fill("ship friday")
    expect(phone.locator("#composer-input")).to_have_value("ship friday")

    phone_context.set_offline(True)
    phone.locator("#composer-input").fill("ship monday")
    phone.locator("#composer-input").blur()
    # The laptop's newer text is stored before the phone is back: the phone's
    # save, made on the older version, is then the one refused.
    with laptop.expect_response(
        lambda r: (
            r.url.endswith("/api/drafts/")
            and r.request.method == "PUT"
            and "after QA" in (r.request.post_data or "")
            and r.status == 200
        )
    ):
        laptop.locator("#composer-input").fill("ship friday, after QA")
        laptop.locator("#composer-input").blur()
    phone_context.set_offline(False)

    bar = phone.locator("#draft-conflict")
    expect(bar).to_be_visible()
    expect(bar.locator(".draft-conflict-theirs")).to_have_text("ship friday, after QA")
    expect(phone.locator("#composer-input")).to_have_value("ship monday")
    kept = off_the_loop(drafts.drafts_of, alice)
    assert [d["body"] for d in kept] == ["ship friday, after QA"], "the newer draft stays"

    bar.get_by_role("button", name="Use theirs").click()
    expect(bar).to_be_hidden()
    expect(phone.locator("#composer-input")).to_have_value("ship friday, after QA")
    phone_context.close()
