"""Small steps the browser tests share: what a person does and looks at."""

import re

from playwright.sync_api import Locator, Page, expect

# An init script: the tab reports itself hidden while `window.__hidden` is true
# (headless tabs are always visible). set_tab_hidden() switches it the way a
# browser does, with a visibilitychange event.
TAB_VISIBILITY = """
(() => {
  Object.defineProperty(document, "visibilityState", {
    get: () => (window.__hidden ? "hidden" : "visible"),
  });
  Object.defineProperty(document, "hidden", { get: () => !!window.__hidden });
})();
"""


def say(page: Page, text: str) -> None:
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def message(page: Page, author: str, body: str) -> Locator:
    return (
        page.locator("#messages li.message")
        .filter(has=page.locator(".message-user", has_text=author))
        .filter(has=page.locator(".message-body", has_text=body))
    )


def sent(page: Page, author: str, body: str) -> int:
    """The id of a message once the server has stored it."""
    li = message(page, author, body)
    expect(li).to_have_attribute("data-state", "sent")
    return int(li.get_attribute("data-id"))


def message_menu(page: Page, li: Locator) -> Locator:
    """Open a message's "More actions" menu; returns the menu."""
    li.hover()
    li.locator("button.action-more").click()
    menu = page.locator("#message-menu")
    expect(menu).to_be_visible()
    return menu


def room_link(page: Page, slug: str) -> Locator:
    return page.locator(f"nav#rooms a.room-link[data-room='{slug}']")


def online(page: Page) -> None:
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")


def set_tab_hidden(page: Page, hidden: bool) -> None:
    """Hide or show a tab opened with TAB_VISIBILITY, as switching tabs would."""
    page.evaluate(
        """hidden => {
          window.__hidden = hidden;
          document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def expect_presence(link: Locator, name: str, state: str) -> None:
    """A 1:1 conversation's sidebar link shows the other person's state: a dot, and in words."""
    expect(link.locator(".room-presence")).to_have_attribute("data-presence", state)
    said = re.compile(rf"^{re.escape(name)}\s*, {state}(\s*,|$)")  # then any unread count
    expect(link).to_have_accessible_name(said)
