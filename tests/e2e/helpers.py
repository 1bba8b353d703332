"""Small steps the browser tests share: what a person does and looks at."""

from playwright.sync_api import Locator, Page, expect


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
