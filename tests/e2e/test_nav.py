"""Getting around by keyboard, the colour theme and the emoji picker, in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from chat import services
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import message, message_menu, room_link, say, sent
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def alice(transactional_db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(transactional_db):
    return UserFactory(username="bob")


@pytest.fixture
def rooms(alice):
    """Channels alice is in besides #general: in sidebar (name) order, general, planning, zoo."""
    for name in ["zoo", "planning"]:
        off_the_loop(services.room_create, actor=alice, name=name)
    return ["general", "planning", "zoo"]


def test_the_quick_switcher_finds_rooms_and_people(alice, bob, rooms, pages):
    page = pages.open(alice)
    page.keyboard.press("Control+k")
    dialog = page.get_by_role("dialog", name="Jump to a room or person")
    expect(dialog).to_be_visible()
    search = dialog.get_by_role("combobox")
    expect(search).to_be_focused()

    # Letters in order, not only a prefix: "pln" finds #planning.
    search.press_sequentially("pln")
    expect(dialog.get_by_role("option")).to_have_count(1)
    expect(dialog.get_by_role("option").first).to_contain_text("planning")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"/r/planning/$"))

    # A person without a conversation yet: Enter opens one.
    page.keyboard.press("Control+k")
    search = page.get_by_role("combobox", name="Jump to a room or person")
    search.press_sequentially("bo")
    option = page.get_by_role("option").filter(has_text="bob")
    expect(option).to_contain_text("person")
    expect(page.get_by_role("option")).to_have_count(1)
    search.press("Enter")
    expect(page.locator("#room-name")).to_have_text("bob")

    # Arrow keys choose among several; Esc closes without going anywhere.
    here = page.url
    page.keyboard.press("Control+k")
    search = page.get_by_role("combobox", name="Jump to a room or person")
    search.press_sequentially("o")  # bob's conversation, zoo, planning (fuzzy), ...
    first = page.get_by_role("option").nth(0)
    second = page.get_by_role("option").nth(1)
    expect(first).to_have_attribute("aria-selected", "true")
    search.press("ArrowDown")
    expect(second).to_have_attribute("aria-selected", "true")
    expect(first).to_have_attribute("aria-selected", "false")
    search.press("Escape")
    expect(page.get_by_role("dialog", name="Jump to a room or person")).to_be_hidden()
    assert page.url == here


def test_alt_arrows_move_through_the_sidebar(alice, bob, rooms, pages):
    page = pages.open(alice, "/r/planning/")
    page.locator("#composer-input").focus()
    page.keyboard.press("Alt+ArrowDown")
    expect(page).to_have_url(re.compile(r"/r/zoo/$"))
    page.keyboard.press("Alt+ArrowUp")
    expect(page).to_have_url(re.compile(r"/r/planning/$"))
    page.keyboard.press("Alt+ArrowUp")
    expect(page).to_have_url(re.compile(r"/r/general/$"))

    # With Shift: to the next unread room, skipping read ones.
    page.goto(pages.base + "/r/zoo/")
    off_the_loop(services.message_send, author=bob, room="general", body="hi all", nonce=None)
    expect(room_link(page, "general")).to_have_class(re.compile(r"\bhas-unread\b"))
    page.keyboard.press("Alt+Shift+ArrowDown")
    expect(page).to_have_url(re.compile(r"/r/general/$"))


def test_escape_marks_the_room_read(alice, bob, pages):
    mine = pages.open(alice)
    theirs = pages.open(bob)
    say(theirs, "first news")
    say(theirs, "second news")
    first = message(mine, "bob", "first news")
    sent(theirs, "bob", "second news")
    message_menu(mine, first).get_by_role("menuitem", name="Mark unread from here").click()
    expect(room_link(mine, "general").locator(".unread-count")).to_have_text("2")
    expect(mine.locator("li.unread-divider")).to_have_count(1)

    # Esc in an open menu closes the menu only.
    menu = message_menu(mine, first)
    mine.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(room_link(mine, "general").locator(".unread-count")).to_have_text("2")

    mine.locator("#composer-input").focus()
    mine.keyboard.press("Escape")
    expect(room_link(mine, "general").locator(".unread-count")).to_have_count(0)
    expect(mine.locator("li.unread-divider")).to_have_count(0)
    expect(mine).to_have_title("#general · TeamChat")


def test_question_mark_lists_the_shortcuts_but_types_in_a_field(alice, pages):
    page = pages.open(alice)
    box = page.locator("#composer-input")
    box.press_sequentially("why?")
    expect(box).to_have_value("why?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_hidden()

    page.locator("#message-pane").focus()
    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    for what in ["Jump to a room or person", "Next room in the sidebar", "Next unread room",
                 "Mark this room as read", "Show these keyboard shortcuts"]:
        expect(dialog.get_by_role("row").filter(has_text=what)).to_have_count(1)
    expect(dialog.get_by_role("row").filter(has_text="Jump to")).to_contain_text("Ctrl")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Also from a button, for those who do not know the key.
    page.get_by_role("button", name="Keyboard shortcuts").click()
    expect(dialog).to_be_visible()
