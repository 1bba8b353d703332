"""Notification settings in the browser: a muted room stays quiet, a loud one does not."""

import re

import pytest
from playwright.sync_api import expect

from chat import services
from tests.e2e.a11y import assert_accessible
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import TAB_VISIBILITY, online, room_link, set_tab_hidden
from tests.factories import MembershipFactory, RoomFactory

pytestmark = [pytest.mark.browser, pytest.mark.processes]

# The browser's Notification, already allowed, recording what the page raises.
FAKE_NOTIFICATIONS = """
(() => {
  window.__notes = [];
  class FakeNotification {
    constructor(title, options) {
      this.title = title;
      this.body = options && options.body;
      window.__notes.push(this);
    }
    close() {}
    static get permission() { return "granted"; }
    static requestPermission() { return Promise.resolve("granted"); }
  }
  window.Notification = FakeNotification;
})();
"""


def rooms_with(*users) -> None:
    for slug in ("loud", "quiet"):
        room = RoomFactory(slug=slug, name=slug, created_by=users[0])
        for user in users:
            MembershipFactory(room=room, user=user)


def say_as(user, room: str, body: str) -> None:
    off_the_loop(services.message_send, author=user, room=room, body=body, nonce=None)


def notes(page) -> list[list[str]]:
    return page.evaluate("window.__notes.map(n => [n.title, n.body])")


def choose_level(page, room: str, label: str) -> None:
    page.goto(page.url.split("/r/")[0] + f"/r/{room}/")
    online(page)
    choice = page.get_by_role("combobox", name="Notifications")
    choice.select_option(label=label)
    expect(page.locator("#status-announcer")).to_have_text(f"Notifications for this room: {label}.")


def test_a_muted_room_does_not_notify_and_is_left_out_of_the_title(alice, bob, pages):
    off_the_loop(rooms_with, alice, bob)
    context = pages.context_for(bob)
    context.add_init_script(FAKE_NOTIFICATIONS)
    context.add_init_script(TAB_VISIBILITY)
    page = pages.open(bob, "/r/loud/")
    # The header shows the current choice: a channel's default is "mentions only".
    expect(page.get_by_role("combobox", name="Notifications")).to_have_value("default")
    expect(page.locator("#notify-level option[value='default']")).to_have_text(
        "Default (Mentions only)"
    )
    choose_level(page, "loud", "All messages")
    choose_level(page, "quiet", "Nothing (muted)")
    expect(room_link(page, "quiet")).to_have_class(re.compile(r"\bis-muted\b"))

    page.goto(pages.base + "/r/general/")
    online(page)
    # Muted, as the server says: dimmed from the first paint, and said in words.
    quiet = room_link(page, "quiet")
    expect(quiet).to_have_class(re.compile(r"\bis-muted\b"))
    expect(quiet).to_have_accessible_name(re.compile(r"^quiet\s*, muted$"))
    expect(room_link(page, "loud")).not_to_have_class(re.compile(r"\bis-muted\b"))
    set_tab_hidden(page, True)

    say_as(alice, "quiet", "plain words in the muted room")
    say_as(alice, "quiet", "@bob even a mention in the muted room")
    say_as(alice, "loud", "anything at all in the loud room")
    expect(room_link(page, "loud").locator(".unread-count")).to_have_text("1")
    expect(quiet.locator(".unread-count")).to_have_text("2")
    # The title counts the loud room's message and the muted room's mention, not its unread.
    expect(page).to_have_title("(1, @1) #general · TeamChat")
    assert notes(page) == [["alice in #loud", "anything at all in the loud room"]]

    # Do not disturb silences the loud room too, until it is ended.
    page.get_by_role("button", name="Pause notifications").click()
    assert_accessible(page, "a muted room in the sidebar and the pause menu open")
    page.get_by_role("button", name="For 30 minutes").click()
    expect(page.locator("#dnd-state")).to_contain_text("Notifications paused until")
    say_as(alice, "loud", "while bob is paused")
    expect(page).to_have_title("(2, @1) #general · TeamChat")
    page.get_by_role("button", name="Resume notifications").click()
    expect(page.locator("#dnd-state")).to_be_hidden()
    say_as(alice, "loud", "after bob resumed")
    expect(page).to_have_title("(3, @1) #general · TeamChat")
    assert [body for _, body in notes(page)] == [
        "anything at all in the loud room",
        "after bob resumed",
    ]


def test_groups_and_the_whole_room_are_offered_and_a_pause_shows_on_the_card(alice, bob, pages):
    from chat.models import UserGroup

    def design_group() -> None:
        UserGroup.objects.create(handle="design", name="Designers").members.set([bob])

    off_the_loop(design_group)
    theirs = pages.open(bob)
    mine = pages.open(alice)
    box = mine.locator("#composer-input")
    box.press_sequentially("@de")
    expect(mine.get_by_role("option", name="Designers (1 person) @design")).to_be_visible()
    box.press("Enter")
    expect(box).to_have_value("@design ")
    box.press_sequentially("and @ch")
    expect(mine.get_by_role("option", name="Everyone in this room @channel")).to_be_visible()
    box.press("Enter")
    expect(box).to_have_value("@design and @channel ")
    box.press_sequentially("look")
    box.press("Enter")
    line = theirs.locator("#messages li.message[data-user='alice']")
    expect(line.locator(".mention")).to_have_text(["@design", "@channel"])

    # Bob pauses his notifications; alice sees it on his card.
    theirs.get_by_role("button", name="Pause notifications").click()
    theirs.get_by_role("button", name="For 1 hour").click()
    expect(theirs.locator("#dnd-state")).to_contain_text("Notifications paused until")
    box.fill("")
    box.press_sequentially("hi bob")
    box.press("Enter")
    theirs.locator("#composer-input").fill("hello")
    theirs.locator("#composer-input").press("Enter")
    author = mine.locator("#messages li.message[data-user='bob'] .message-user")
    author.click()
    card = mine.get_by_role("dialog", name="bob")
    expect(card.locator(".profile-dnd")).to_contain_text("Notifications paused, until")
