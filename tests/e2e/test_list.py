"""Reading the message list and writing in the composer, as a person in a team chat expects."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from chat import services
from chat.models import Membership, Message
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import message, message_menu, online, room_link, say, sent

pytestmark = [pytest.mark.browser, pytest.mark.processes]

BERLIN = ZoneInfo("Europe/Berlin")
IN_BERLIN = {"timezone_id": "Europe/Berlin", "locale": "en-US"}
CONTINUATION = re.compile(r"\bis-continuation\b")


@pytest.fixture
def random_room(alice, bob):
    """A public channel alice created and bob joined."""
    services.room_create(actor=alice, name="random", topic="")
    services.room_join(actor=bob, room="random")
    return "random"


def post(author, body: str, created: datetime | None = None, room: str = "random") -> int:
    """A message stored (and broadcast) by the server, optionally dated `created`."""

    def send():
        stored = services.message_send(author=author, room=room, body=body, nonce=None).message
        if created is not None:
            Message.objects.filter(pk=stored.pk).update(created=created)
        return stored.pk

    return off_the_loop(send)


def read_all(user, room: str = "random") -> None:
    """`user` has read everything so far: the page opens at the newest message."""
    last = off_the_loop(lambda: Message.objects.filter(room__slug=room).latest("id").pk)
    off_the_loop(services.read_marker_set, user=user, room=room, message_id=last)


def list_is_valid(page: Page) -> bool:
    """The message list holds only plain list items (what axe's `list` rule asks)."""
    return page.evaluate(
        """() => Array.from(document.getElementById('messages').children).every(
          (child) => child.tagName === 'LI' && !child.hasAttribute('role'))"""
    )


# --- mentions of people who are not in the room ------------------------------


def test_mentioning_someone_outside_the_channel_offers_to_invite_them(
    alice, bob, carol, random_room, pages
):
    page = pages.open(alice, "/r/random/")
    note = page.locator("#mention-invite")

    say(page, "thanks @bob, and @nobody ")
    sent(page, "alice", "thanks")
    say(page, "hey @Carol and @bob, look")
    sent(page, "alice", "hey")
    expect(note).to_be_visible()
    expect(note).to_contain_text("carol is not in #random.")
    expect(note).not_to_contain_text("nobody")
    expect(note).not_to_contain_text("bob")

    note.get_by_role("button", name="Invite carol").click()
    expect(page.locator("#notice")).to_have_text("Invited carol to #random.")
    expect(note).to_be_hidden()
    expect(page.locator("#composer-input")).to_be_focused()
    page.get_by_role("button", name="Members").click()
    expect(page.locator("#member-panel li.member[data-user='carol']")).to_have_count(1)

    # Now a member: mentioning her again offers nothing.
    say(page, "welcome @carol ")
    sent(page, "alice", "welcome")
    expect(note).to_be_hidden()


def test_dont_invite_dismisses_and_a_conversation_only_says_who_is_not_notified(
    alice, bob, carol, random_room, pages
):
    page = pages.open(alice, "/r/random/")
    note = page.locator("#mention-invite")
    say(page, "ping @carol ")
    note.get_by_role("button", name="Don't invite").click()
    expect(note).to_be_hidden()
    assert not off_the_loop(
        lambda: Membership.objects.filter(room__slug="random", user=carol).exists()
    )

    dm = off_the_loop(lambda: services.dm_open(actor=alice, usernames=["bob"]).slug)
    page.goto(f"{pages.base}/r/{dm}/")
    online(page)
    say(page, "shall we ask @carol?")
    expect(note).to_have_text("carol is not in this conversation, so carol won't be notified. OK")
    expect(note.get_by_role("button", name="Invite carol")).to_have_count(0)
    note.get_by_role("button", name="OK").click()
    expect(note).to_be_hidden()


# --- drafts --------------------------------------------------------------------


def test_a_draft_survives_switching_rooms_and_reloading_until_it_is_sent(
    alice, bob, random_room, pages
):
    page = pages.open(alice, "/r/random/")
    box = page.locator("#composer-input")
    box.fill("half a thought for random")

    room_link(page, "general").click()
    online(page)
    expect(box).to_have_value("")
    box.fill("something for general")

    page.reload()
    online(page)
    expect(box).to_have_value("something for general")
    room_link(page, "random").click()
    online(page)
    expect(box).to_have_value("half a thought for random")

    box.press("Enter")
    sent(page, "alice", "half a thought for random")
    page.reload()
    online(page)
    expect(message(page, "alice", "half a thought for random")).to_have_count(1)
    expect(box).to_have_value("")

    # Another person on this browser does not see alice's drafts.
    bob_page = pages.open(bob, "/r/general/")
    expect(bob_page.locator("#composer-input")).to_have_value("")


# --- the list: new messages below, dates, runs, long messages -----------------------


SCROLL_TO_TOP = "pane => { pane.scrollTop = 0; pane.dispatchEvent(new Event('scroll')); }"


def test_new_messages_below_while_scrolled_up(alice, bob, random_room, pages):
    for i in range(40):
        post(bob, f"filler {i}")
    read_all(alice)
    page = pages.open(alice, "/r/random/")
    pill = page.get_by_role("button", name="New messages")
    expect(message(page, "bob", "filler 39")).to_be_in_viewport()
    expect(pill).to_be_hidden()

    # The scroll event goes with it, as a hand's scroll sends it: otherwise the
    # browser dispatches it at its next frame, which a loaded machine can
    # put after the message below arrives (then read as "still at the bottom").
    page.locator("#message-pane").evaluate(SCROLL_TO_TOP)
    expect(message(page, "bob", "filler 39")).not_to_be_in_viewport()
    post(bob, "arrived while you read above")
    expect(message(page, "bob", "arrived while you read above")).to_have_count(1)
    expect(pill).to_be_visible()
    expect(message(page, "bob", "arrived while you read above")).not_to_be_in_viewport()

    pill.click()
    expect(message(page, "bob", "arrived while you read above")).to_be_in_viewport()
    expect(pill).to_be_hidden()

    # At the bottom, news simply shows.
    post(bob, "and one more")
    expect(message(page, "bob", "and one more")).to_be_in_viewport()
    expect(pill).to_be_hidden()

    # Scrolling down by hand puts it away too.
    page.locator("#message-pane").evaluate(SCROLL_TO_TOP)
    post(bob, "yet another")
    expect(pill).to_be_visible()
    page.locator("#message-pane").evaluate("pane => { pane.scrollTop = pane.scrollHeight; }")
    expect(pill).to_be_hidden()


def test_date_dividers_and_runs_on_the_first_page_older_pages_and_live(
    alice, bob, random_room, pages
):
    today = datetime.now(BERLIN).replace(hour=8, minute=0, second=0, microsecond=0)
    long_ago = today - timedelta(days=3)
    post(bob, "three days ago", long_ago)
    post(alice, "early today", today)
    # A first page of 50: all bob's, one minute apart (each within five minutes of the last).
    for i in range(50):
        post(bob, f"run {i}", today + timedelta(minutes=1 + i))
    read_all(alice)

    page = pages.open(alice, "/r/random/", **IN_BERLIN)
    dividers = page.locator("#messages .day-divider")
    expect(dividers).to_have_text(["Today"])
    first = message(page, "bob", "run 0")
    expect(first.locator(".day-divider")).to_have_text("Today")
    expect(first).not_to_have_class(CONTINUATION)
    expect(first.locator(".message-avatar")).to_be_visible()
    expect(message(page, "bob", "run 30")).to_have_class(CONTINUATION)
    expect(message(page, "bob", "run 30").locator(".message-avatar")).to_be_hidden()
    # The name is still there for a screen reader.
    expect(message(page, "bob", "run 30").locator(".message-user")).to_have_text("bob")

    page.get_by_role("button", name="Load older messages").click()
    expect(message(page, "bob", "three days ago")).to_have_count(1)
    expected_date = long_ago.strftime("%A, %B ") + str(long_ago.day)
    expect(dividers).to_have_text([expected_date, "Today"])
    expect(message(page, "alice", "early today").locator(".day-divider")).to_have_text("Today")
    expect(first.locator(".day-divider")).to_have_count(0)
    expect(first.locator(".message-avatar")).to_be_visible()  # alice's is just above it

    # Live: bob a few minutes after his last is a continuation; alice after him is not.
    say(page, "mine now")
    mine = message(page, "alice", "mine now")
    expect(mine).to_have_attribute("data-state", "sent")
    expect(mine.locator(".message-avatar")).to_be_visible()
    expect(dividers).to_have_count(2)
    post(bob, "back to bob")
    post(bob, "bob again")
    expect(message(page, "bob", "back to bob").locator(".message-avatar")).to_be_visible()
    expect(message(page, "bob", "bob again").locator(".message-avatar")).to_be_hidden()
    assert list_is_valid(page)


def test_unread_divider_keeps_the_list_a_list(alice, bob, random_room, pages):
    post(bob, "first")
    post(bob, "second")
    page = pages.open(alice, "/r/random/")
    li = message(page, "bob", "second")
    message_menu(page, li).get_by_role("menuitem", name="Mark unread from here").click()
    expect(li.locator(".unread-divider")).to_have_text("New messages")
    expect(page.locator("#messages .unread-divider")).to_have_count(1)
    # The first unread message shows who wrote it, even within the run.
    expect(li.locator(".message-avatar")).to_be_visible()
    assert list_is_valid(page)


def test_a_long_message_is_folded_behind_show_more(alice, bob, random_room, pages):
    long_body = "\n\n".join(f"line {i}" for i in range(40))
    post(bob, long_body)
    post(bob, "short one")
    page = pages.open(alice, "/r/random/")
    li = message(page, "bob", "line 39")
    body = li.locator(".message-body")
    more = li.get_by_role("button", name="Show more")
    expect(more).to_have_attribute("aria-expanded", "false")
    assert body.bounding_box()["height"] <= 300
    expect(message(page, "bob", "short one").get_by_role("button", name="Show more")).to_have_count(
        0
    )

    more.focus()
    page.keyboard.press("Enter")
    less = li.get_by_role("button", name="Show less")
    expect(less).to_have_attribute("aria-expanded", "true")
    assert body.bounding_box()["height"] > 300
    less.click()
    expect(more).to_be_visible()
    assert body.bounding_box()["height"] <= 300
