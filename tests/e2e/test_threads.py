"""Threads in a real browser: replies beside the room, counts that follow live, the Threads view."""

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from chat import services
from tests.e2e.a11y import assert_accessible
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import message, message_menu, online, room_link, say, sent

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def random_room(alice, bob, carol):
    """A public channel alice created, with bob and carol in it."""

    def make():
        services.room_create(actor=alice, name="random", topic="Anything goes")
        services.room_join(actor=bob, room="random")
        services.room_join(actor=carol, room="random")

    off_the_loop(make)
    return "random"


def panel(page: Page) -> Locator:
    return page.locator("#thread-panel")


def reply_in_panel(page: Page, text: str, *, also_to_room: bool = False) -> None:
    box = page.locator("#thread-input")
    box.fill(text)
    if also_to_room:
        page.locator("#thread-in-channel").check()
    box.press("Enter")
    expect(box).to_have_value("")
    reply = panel(page).locator("#thread-replies li.message").filter(has_text=text)
    expect(reply).to_have_attribute("data-state", "sent")


def open_thread_from_menu(page: Page, li: Locator) -> None:
    menu = message_menu(page, li)
    menu.get_by_role("menuitem", name="Reply in thread").click()
    expect(panel(page)).to_be_visible()
    expect(page.locator("#thread-input")).to_be_focused()


def test_a_reply_shows_live_in_the_open_thread_and_on_its_root_elsewhere(
    pages, alice, bob, random_room
):
    alice_page = pages.open(alice, f"/r/{random_room}/")
    bob_page = pages.open(bob, f"/r/{random_room}/")

    say(alice_page, "Where do we meet?")
    root_id = sent(alice_page, "alice", "Where do we meet?")
    bob_root = message(bob_page, "alice", "Where do we meet?")
    expect(bob_root).to_be_visible()

    open_thread_from_menu(bob_page, bob_root)
    expect(panel(bob_page).locator("#thread-root li.message")).to_contain_text("Where do we meet?")
    expect(bob_page).to_have_url(re.compile(rf"\?thread={root_id}$"))
    assert_accessible(bob_page, "thread panel open")

    alice_root = message(alice_page, "alice", "Where do we meet?")
    open_thread_from_menu(alice_page, alice_root)
    reply_in_panel(alice_page, "In the big room at ten")

    # Bob's open thread gets the reply; the room's list does not; the root counts it.
    expect(panel(bob_page).locator("#thread-replies li.message")).to_have_count(1)
    expect(panel(bob_page).locator("#thread-replies")).to_contain_text("In the big room at ten")
    expect(bob_page.locator("#messages")).not_to_contain_text("In the big room at ten")
    summary = bob_root.locator("button.thread-summary")
    expect(summary).to_contain_text("1 reply")
    expect(summary.locator(".thread-replier")).to_have_text(["A"])
    expect(panel(bob_page).locator("#thread-count")).to_have_text("1 reply")

    # A reply also sent to the room shows there, with a link to its thread.
    reply_in_panel(bob_page, "See you there", also_to_room=True)
    in_room = message(alice_page, "bob", "See you there")
    expect(in_room).to_be_visible()
    expect(in_room.locator("button.thread-link")).to_have_text("replied to a thread")
    expect(panel(alice_page).locator("#thread-replies")).to_contain_text("See you there")
    expect(alice_root.locator("button.thread-summary")).to_contain_text("2 replies")
    expect(alice_root.locator(".thread-replier")).to_have_text(["B", "A"])

    # Escape closes the panel and gives the focus back; the link opens the thread again.
    alice_page.locator("#thread-input").press("Escape")
    expect(panel(alice_page)).to_be_hidden()
    expect(alice_page).to_have_url(f"{pages.base}/r/{random_room}/")
    in_room.locator("button.thread-link").click()
    expect(panel(alice_page)).to_be_visible()
    expect(panel(alice_page).locator("#thread-replies li.message")).to_have_count(2)

    # An edit and a reaction inside the thread reach the other page's panel.
    own = panel(alice_page).locator("#thread-replies li.message").filter(has_text="In the big room")
    menu = message_menu(alice_page, own)
    menu.get_by_role("menuitem", name="Edit message").click()
    editor = own.locator("textarea.message-edit-input")
    editor.fill("In the small room at ten")
    editor.press("Enter")
    expect(panel(bob_page).locator("#thread-replies")).to_contain_text("In the small room at ten")
    theirs = panel(bob_page).locator("#thread-replies li.message").filter(has_text="small room")
    theirs.hover()
    theirs.get_by_role("button", name="Add reaction").click()
    bob_page.get_by_role("menuitem", name="thumbs up").click()
    mine = panel(alice_page).locator("#thread-replies li.message").filter(has_text="small room")
    expect(mine.locator("button.reaction")).to_have_attribute("aria-label", "👍 1: bob")

    # The root deleted: a placeholder stays in the room, and still opens its thread.
    root_menu = message_menu(alice_page, alice_root)
    root_menu.get_by_role("menuitem", name="Delete message").click()
    alice_page.locator("#confirm-ok").click()
    placeholder = bob_page.locator(f"#messages #m-{root_id}")
    expect(placeholder).to_contain_text("This message was deleted.")
    expect(placeholder).not_to_contain_text("Where do we meet?")
    expect(panel(bob_page).locator("#thread-note")).to_contain_text("This message was deleted.")
    bob_page.locator("#thread-close").click()
    expect(panel(bob_page)).to_be_hidden()
    placeholder.locator("button.thread-summary").click()
    expect(panel(bob_page).locator("#thread-replies li.message")).to_have_count(2)


def test_a_followed_thread_shows_its_unread_replies_in_the_threads_view(
    pages, alice, bob, carol, random_room
):
    alice_page = pages.open(alice, f"/r/{random_room}/")
    say(alice_page, "Lunch plans?")
    root_id = sent(alice_page, "alice", "Lunch plans?")

    # Carol opens the thread from its address and follows it by hand.
    carol_page = pages.open(carol, f"/r/{random_room}/?thread={root_id}")
    expect(panel(carol_page).locator("#thread-root")).to_contain_text("Lunch plans?")
    follow = carol_page.locator("#thread-follow")
    expect(follow).to_have_text("Follow")
    follow.click()
    expect(follow).to_have_text("Unfollow")
    expect(follow).to_have_attribute("aria-pressed", "true")

    carol_page.goto(f"{pages.base}/r/general/")
    online(carol_page)
    threads_button = carol_page.locator("#threads-button")
    expect(carol_page.locator("#threads-total")).to_be_hidden()

    bob_page = pages.open(bob, f"/r/{random_room}/?thread={root_id}")
    reply_in_panel(bob_page, "Tacos at noon")

    # Carol's page counts the reply: on the Threads entry and on the room's link.
    expect(carol_page.locator("#threads-total")).to_have_text("1")
    expect(room_link(carol_page, random_room).locator(".thread-activity")).to_be_visible()
    expect(room_link(carol_page, random_room)).to_have_accessible_name(
        re.compile("1 unread in threads")
    )

    threads_button.click()
    view = carol_page.locator("#threads-view")
    expect(view).to_be_visible()
    item = view.locator("a.thread-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Lunch plans?")
    expect(item).to_contain_text("1 reply")
    expect(item.locator(".unread-count")).to_have_text("1")
    assert_accessible(carol_page, "threads view open")

    # A second reply arrives while the view is open: the count follows.
    reply_in_panel(bob_page, "Or sushi")
    expect(item.locator(".unread-count")).to_have_text("2")
    expect(item).to_contain_text("2 replies")

    # Opening it goes to its room with the thread open; reading it clears the counts.
    item.click()
    expect(carol_page).to_have_url(f"{pages.base}/r/{random_room}/?thread={root_id}")
    online(carol_page)
    expect(panel(carol_page).locator("#thread-replies li.message")).to_have_count(2)
    expect(carol_page.locator("#threads-total")).to_be_hidden()
    expect(room_link(carol_page, random_room).locator(".thread-activity")).to_have_count(0)


def test_a_reply_half_typed_in_one_tab_waits_in_the_same_thread_in_another(
    pages, alice, random_room
):
    first = pages.open(alice, f"/r/{random_room}/")
    say(first, "Budget for next year")
    root_id = sent(first, "alice", "Budget for next year")
    open_thread_from_menu(first, message(first, "alice", "Budget for next year"))
    second = pages.open(alice, f"/r/{random_room}/?thread={root_id}")
    expect(panel(second).locator("#thread-root")).to_contain_text("Budget for next year")

    first.locator("#thread-input").fill("I think we need")
    expect(second.locator("#thread-input")).to_have_value("I think we need")
    expect(second.locator("#composer-input")).to_have_value("", timeout=1000)

    # Sent from the first tab: the other's box empties, and the reply is in both threads.
    first.locator("#thread-input").press("Enter")
    expect(panel(first).locator("#thread-replies li.message")).to_have_attribute(
        "data-state", "sent"
    )
    expect(second.locator("#thread-input")).to_have_value("")
    expect(panel(second).locator("#thread-replies")).to_contain_text("I think we need")


def test_the_reply_box_completes_people_and_emoji_like_the_room_box(pages, alice, bob, random_room):
    alice_page = pages.open(alice, f"/r/{random_room}/")
    say(alice_page, "Who reviews the release notes?")
    root_id = sent(alice_page, "alice", "Who reviews the release notes?")
    bob_page = pages.open(bob, f"/r/{random_room}/?thread={root_id}")
    expect(panel(bob_page).locator("#thread-root")).to_contain_text("release notes")
    open_thread_from_menu(alice_page, message(alice_page, "alice", "Who reviews"))

    box = alice_page.locator("#thread-input")
    expect(box).to_have_attribute("aria-controls", "thread-mention-list")
    box.press_sequentially("@bo")
    people = panel(alice_page).get_by_role("listbox", name="People to mention")
    option = people.get_by_role("option", name="bob")
    expect(option).to_be_visible()
    expect(option).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", "thread-mention-option-0")
    # The list is whole and on top: inside the window and the panel, and what is under its option.
    boxed = option.bounding_box()
    panel_box = panel(alice_page).bounding_box()
    assert boxed is not None and panel_box is not None
    assert (
        boxed["y"] >= panel_box["y"]
        and boxed["y"] + boxed["height"] <= panel_box["y"] + panel_box["height"]
    )
    assert (
        boxed["x"] >= panel_box["x"]
        and boxed["x"] + boxed["width"] <= panel_box["x"] + panel_box["width"]
    )
    assert option.evaluate(
        "(o) => { const r = o.getBoundingClientRect();"
        " return o.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)); }"
    )
    assert_accessible(alice_page, "thread completion open")

    # Escape closes the list only; the panel stays, and typing on opens it again.
    box.press("Escape")
    expect(people).to_be_hidden()
    expect(panel(alice_page)).to_be_visible()
    expect(box).to_be_focused()
    box.press("Backspace")
    box.press_sequentially("o")
    expect(option).to_be_visible()
    box.press("Enter")
    expect(box).to_have_value("@bob ")
    expect(people).to_be_hidden()

    # ":tada" completes to the emoji (Tab picks, as in the room's box).
    box.press_sequentially("can you take it :tada")
    emoji = panel(alice_page).get_by_role("listbox", name="Emoji")
    expect(emoji.get_by_role("option").first).to_contain_text("🎉")
    box.press("Tab")
    expect(box).to_have_value("@bob can you take it 🎉 ")
    box.press("Enter")
    expect(box).to_have_value("")

    mine = (
        panel(alice_page)
        .locator("#thread-replies li.message")
        .filter(has_text="can you take it 🎉")
    )
    expect(mine).to_have_attribute("data-state", "sent")
    expect(mine.locator("span.mention")).to_have_text("@bob")
    # Bob's open thread shows the reply as one mentioning him.
    theirs = (
        panel(bob_page).locator("#thread-replies li.message").filter(has_text="can you take it 🎉")
    )
    expect(theirs).to_have_class(re.compile(r"\bis-mention\b"))
    expect(theirs.locator("span.mention")).to_have_text("@bob")
    # The room's own box is untouched by it.
    expect(alice_page.locator("#mention-list")).to_be_hidden()
