"""Two people in two browsers sign up and chat in real time."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.processes]

XSS = "<img src=x onerror=alert(1)>"


def sign_up(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=email]", f"{username}@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.locator("form").filter(has=page.locator("input[name=password2]")).locator(
        "button[type=submit], input[type=submit]"
    ).first.click()
    expect(page).to_have_url(f"{base}/r/general/")
    expect(page.locator("#current-user")).to_have_text(username)
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")


def say(page: Page, text: str) -> None:
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def message(page: Page, author: str, body: str):
    return (
        page.locator("#messages li.message")
        .filter(has=page.locator(".message-user", has_text=author))
        .filter(has=page.locator(".message-body", has_text=body))
    )


def test_two_people_chat_in_real_time(live_server_process, browser):
    base = live_server_process.http_url
    dialogs = []
    alice_ctx, bob_ctx = browser.new_context(), browser.new_context()
    alice, bob = alice_ctx.new_page(), bob_ctx.new_page()
    for page in (alice, bob):
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    external = []
    for ctx in (alice_ctx, bob_ctx):
        ctx.on(
            "request",
            lambda r: (
                None if r.url.startswith((base, "ws://127.0.0.1")) else external.append(r.url)
            ),
        )

    sign_up(alice, base, "alice")
    sign_up(bob, base, "bob")

    say(alice, "hello bob")
    expect(message(bob, "alice", "hello bob")).to_have_count(1)
    mine = message(alice, "alice", "hello bob")
    expect(mine).to_have_count(1)
    expect(mine).to_have_attribute("data-state", "sent")

    say(bob, "hi alice")
    expect(message(alice, "bob", "hi alice")).to_have_count(1)

    say(alice, XSS)
    received = message(bob, "alice", "<img")
    expect(received).to_have_count(1)
    expect(received.locator(".message-body")).to_have_text(XSS)
    assert bob.locator("#messages img").count() == 0
    assert dialogs == []

    # A reload renders the same history on the server, still as text.
    bob.reload()
    expect(message(bob, "alice", "<img").locator(".message-body")).to_have_text(XSS)
    assert bob.locator("#messages img").count() == 0
    expect(bob.locator("#messages li.message")).to_have_count(3)
    assert external == []


def test_the_chat_works_on_a_phone_sized_screen(live_server_process, browser):
    base = live_server_process.http_url
    page = browser.new_context(viewport={"width": 360, "height": 640}).new_page()
    sign_up(page, base, "pat")
    expect(page.locator("#composer-input")).to_be_visible()
    expect(page.locator("#sidebar-toggle")).to_be_visible()
    say(page, "from my phone")
    expect(message(page, "pat", "from my phone")).to_have_attribute("data-state", "sent")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, "the page scrolls sideways on a phone"


def test_a_dropped_socket_catches_up_without_gaps_or_duplicates(live_server_process, browser):
    """Bob's socket silently loses events, then drops; on reconnect he sees each message once."""
    base = live_server_process.http_url
    alice = browser.new_context().new_page()
    bob = browser.new_context().new_page()
    links = []
    deaf = {"on": False}

    def relay(ws):
        server = ws.connect_to_server()
        links.append(ws)
        # Server-to-page traffic is dropped while "deaf": the page's socket is
        # open but misses the broadcasts, as on a half-dead connection.
        server.on_message(lambda message: None if deaf["on"] else ws.send(message))
        ws.on_message(lambda message: server.send(message))

    # The socket URL carries the resume position (?seq=…&watch=…).
    bob.route_web_socket(re.compile(r"/ws/chat/"), relay)
    sign_up(alice, base, "alice")
    sign_up(bob, base, "bob")

    say(alice, "before the outage")
    expect(message(bob, "alice", "before the outage")).to_have_count(1)

    deaf["on"] = True
    for i in range(3):
        say(alice, f"missed {i}")
    expect(message(alice, "alice", "missed 2")).to_have_attribute("data-state", "sent")
    expect(message(bob, "alice", "missed")).to_have_count(0)

    deaf["on"] = False
    links[-1].close(code=4000, reason="network gone")
    expect(bob.locator("#connection-status")).to_have_attribute("data-state", "online")
    say(alice, "after the outage")

    expect(message(bob, "alice", "after the outage")).to_have_count(1)
    bodies = bob.locator("#messages li.message .message-body").all_text_contents()
    assert bodies == [
        "before the outage",
        "missed 0",
        "missed 1",
        "missed 2",
        "after the outage",
    ]
    assert len(links) >= 2, "the page did not reconnect"
