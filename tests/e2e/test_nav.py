"""Getting around by keyboard, the colour theme and the emoji picker, in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from chat import services
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import message, message_menu, online, room_link, say, sent

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def rooms(alice):
    """Channels alice is in besides #general: in sidebar (name) order, general, planning, zoo."""
    for name in ["zoo", "planning"]:
        off_the_loop(services.room_create, actor=alice, name=name)
    return ["general", "planning", "zoo"]


def arrived(page, slug: str) -> None:
    """The room's page loaded and its scripts run (a key pressed before would go nowhere)."""
    expect(page).to_have_url(re.compile(rf"/r/{slug}/$"))
    online(page)


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
    arrived(page, "planning")

    # A person without a conversation yet: Enter opens one.
    page.keyboard.press("Control+k")
    search = page.get_by_role("combobox", name="Jump to a room or person")
    search.press_sequentially("bo")
    option = (
        page.get_by_role("listbox", name="Rooms and people")
        .get_by_role("option")
        .filter(has_text="bob")
    )
    expect(option).to_contain_text("person")
    expect(
        page.get_by_role("listbox", name="Rooms and people").get_by_role("option")
    ).to_have_count(1)
    search.press("Enter")
    expect(page.locator("#room-name")).to_have_text("bob")

    # Arrow keys choose among several; Esc closes without going anywhere.
    here = page.url
    page.keyboard.press("Control+k")
    search = page.get_by_role("combobox", name="Jump to a room or person")
    search.press_sequentially("o")  # bob's conversation, zoo, planning (fuzzy), ...
    first = page.get_by_role("listbox", name="Rooms and people").get_by_role("option").nth(0)
    second = page.get_by_role("listbox", name="Rooms and people").get_by_role("option").nth(1)
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
    arrived(page, "zoo")
    page.keyboard.press("Alt+ArrowUp")
    arrived(page, "planning")
    page.keyboard.press("Alt+ArrowUp")
    arrived(page, "general")

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
    expect(mine.locator(".unread-divider")).to_have_count(1)

    # Esc in an open menu closes the menu only.
    menu = message_menu(mine, first)
    mine.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(room_link(mine, "general").locator(".unread-count")).to_have_text("2")

    mine.locator("#composer-input").focus()
    mine.keyboard.press("Escape")
    expect(room_link(mine, "general").locator(".unread-count")).to_have_count(0)
    expect(mine.locator(".unread-divider")).to_have_count(0)
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
    for what in [
        "Jump to a room or person",
        "Next room in the sidebar",
        "Next unread room",
        "Mark this room as read",
        "Show these keyboard shortcuts",
    ]:
        expect(dialog.get_by_role("row").filter(has_text=what)).to_have_count(1)
    expect(dialog.get_by_role("row").filter(has_text="Jump to")).to_contain_text("Ctrl")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Also from a button, for those who do not know the key.
    page.get_by_role("button", name="Keyboard shortcuts").click()
    expect(dialog).to_be_visible()


def test_react_with_any_emoji_from_the_searchable_picker(alice, bob, pages):
    mine = pages.open(alice)
    theirs = pages.open(bob)
    say(mine, "we shipped it")
    mid = sent(mine, "alice", "we shipped it")

    li = theirs.locator(f"#m-{mid}")
    li.hover()
    li.get_by_role("button", name="Add reaction").click()
    theirs.get_by_role("menuitem", name="More emoji").click()
    picker = theirs.get_by_role("dialog", name="Add reaction")
    search = picker.get_by_role("combobox", name="Search emoji")
    expect(search).to_be_focused()
    expect(picker.get_by_role("group", name="Frequently used")).to_have_count(0)
    search.fill("tada")  # a shortcode
    expect(picker.get_by_role("option").first).to_have_text("🎉")
    search.press("Enter")
    expect(picker).to_be_hidden()
    expect(mine.locator(f"#m-{mid} button.reaction[data-emoji='🎉'] .reaction-count")).to_have_text(
        "1"
    )

    # By name, with the arrow keys through the results.
    li.hover()
    li.get_by_role("button", name="Add reaction").click()
    theirs.get_by_role("menuitem", name="More emoji").click()
    search.fill("octopus")
    expect(picker.get_by_role("option", name="octopus")).to_have_attribute("aria-selected", "true")
    search.fill("rocket")
    expect(picker.get_by_role("option", name="rocket", exact=True)).to_be_visible()
    search.fill("")
    frequent = picker.get_by_role("group", name="Frequently used")
    expect(frequent.get_by_role("option")).to_have_text(["🎉"])
    first = picker.get_by_role("option").nth(0)
    second = picker.get_by_role("option").nth(1)
    expect(first).to_have_attribute("aria-selected", "true")
    search.press("ArrowRight")
    expect(second).to_have_attribute("aria-selected", "true")
    search.press("Escape")
    expect(picker).to_be_hidden()
    expect(li.get_by_role("button", name="Add reaction")).to_be_focused()


def test_emoji_in_the_composer_from_the_picker_and_by_shortcode(alice, pages):
    page = pages.open(alice)
    box = page.locator("#composer-input")
    box.fill("nice ")
    page.get_by_role("button", name="Insert an emoji").click()
    picker = page.get_by_role("dialog", name="Insert an emoji")
    picker.get_by_role("combobox", name="Search emoji").fill("octopus")
    picker.get_by_role("option", name="octopus").click()
    expect(box).to_have_value("nice 🐙")
    expect(box).to_be_focused()

    box.press_sequentially(" and :tad")
    suggestions = page.get_by_role("listbox", name="Emoji")
    expect(suggestions.get_by_role("option").first).to_contain_text("🎉")
    box.press("Tab")
    expect(box).to_have_value("nice 🐙 and 🎉 ")
    expect(suggestions).to_be_hidden()
    box.press("Enter")
    expect(message(page, "alice", "nice 🐙 and 🎉")).to_have_count(1)

    # A time is not a shortcode.
    box.press_sequentially("at 10:30")
    box.press("Enter")
    expect(message(page, "alice", "at 10:30")).to_have_count(1)


def test_strikethrough_shows_struck_text(alice, pages):
    page = pages.open(alice)
    say(page, "~~old plan~~ new plan")
    struck = message(page, "alice", "new plan").locator(".message-body s")
    expect(struck).to_have_text("old plan")
    expect(struck).to_have_css("text-decoration-line", "line-through")


# The colours a person sees, and whether text is readable on them (WCAG contrast).
CONTRAST = """
(selectors) => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = c.map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const bg = getComputedStyle(node).backgroundColor;
      if (bg && !bg.startsWith("rgba(0, 0, 0, 0)") && bg !== "transparent") return rgb(bg);
    }
    return [255, 255, 255];
  };
  return selectors.map((selector) => {
    const node = document.querySelector(selector);
    const [a, b] = [lum(rgb(getComputedStyle(node).color)), lum(background(node))];
    return [selector, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  });
}
"""

BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"
WHITE = "rgb(255, 255, 255)"


def is_dark(color: str) -> bool:
    return sum(int(v) for v in re.findall(r"\d+", color)[:3]) < 3 * 80


# Records the theme the page has when its <body> starts, before anything is painted.
FIRST_PAINT = """
new MutationObserver((changes, observer) => {
  if (document.body) {
    window.__themeAtFirstPaint = document.documentElement.getAttribute("data-theme");
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
"""


def test_dark_theme_follows_the_system_and_a_choice_sticks(alice, pages, live_server_process):
    page = pages.open(alice, color_scheme="dark")
    say(page, "readable in the dark")
    dark = page.evaluate(BACKGROUND)
    assert is_dark(dark)
    readable = [
        ".message-body",
        ".message-time",
        ".composer-hint",
        ".room-link .room-name",
        "#composer-input",
        ".theme-choice",
    ]
    for selector, ratio in page.evaluate(CONTRAST, readable):
        assert ratio >= 4.5, f"{selector}: contrast {ratio:.2f}"

    # The other pages follow the system too: the directory, an account page, an error page.
    other = pages.new_page(alice)
    for path in ["/rooms/", "/accounts/password/change/", "/r/no-such-room/"]:
        other.goto(pages.base + path)
        assert is_dark(other.evaluate(BACKGROUND)), path

    # A choice made here sticks, from the first paint of the next page.
    choice = page.get_by_role("combobox", name="Colour theme")
    expect(choice).to_have_value("system")
    choice.select_option(label="Light theme")
    expect(page.locator("body")).to_have_css("background-color", WHITE)
    page.add_init_script(FIRST_PAINT)
    page.reload()
    assert page.evaluate("window.__themeAtFirstPaint") == "light"
    expect(page.locator("body")).to_have_css("background-color", WHITE)
    expect(page.get_by_role("combobox", name="Colour theme")).to_have_value("light")
    other.goto(pages.base + "/rooms/")
    assert not is_dark(other.evaluate(BACKGROUND))

    # Dark on a light system, chosen on the directory page.
    light = pages.browser.new_context(color_scheme="light")
    light.add_cookies(pages.contexts["alice"].cookies())
    directory = light.new_page()
    directory.goto(pages.base + "/rooms/")
    light_background = directory.evaluate(BACKGROUND)
    assert not is_dark(light_background)
    directory.get_by_role("combobox", name="Colour theme").select_option(label="Dark theme")
    expect(directory.locator("body")).not_to_have_css("background-color", light_background)
    assert is_dark(directory.evaluate(BACKGROUND))
    directory.goto(pages.base + "/r/general/")
    expect(directory.locator("body")).to_have_css("background-color", dark)
    light.close()
