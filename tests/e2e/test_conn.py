"""The connection and the composer as a person meets them: confirmations, room order,
reconnecting after a restart, a deactivated account, bursts of messages, phone keyboards."""

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from accounts.services import user_deactivate
from chat import services
from chat.models import Room
from tests.e2e.conftest import SERVER_ENV, off_the_loop
from tests.e2e.helpers import message, online, room_link, say, sent
from tests.factories import UserFactory
from tests.servers import start_server

pytestmark = [pytest.mark.browser, pytest.mark.processes]

# A restarted server is answered within this (the page retries about every second).
BACK_WITHIN_MS = 3000


@pytest.fixture
def admin(transactional_db):
    return UserFactory(username="root", role=User.Role.ADMIN)


def status(page: Page):
    return page.locator("#connection-status")


def own_dot(page: Page):
    return page.locator("#current-user")


def sidebar_channels(page: Page) -> list[str]:
    return page.locator("#channel-list a.room-link .room-name").all_text_contents()


def directory(page: Page) -> list[str]:
    return page.locator("#channel-directory li.channel-row").evaluate_all(
        "rows => rows.map(row => row.dataset.name)"
    )


def archived(slug: str) -> bool:
    return Room.objects.get(slug=slug).is_archived


def bodies(page: Page) -> list[str]:
    return page.locator("#messages li.message .message-body").all_inner_texts()


# --- 2. archiving asks first -----------------------------------------------------------


def test_archiving_a_channel_asks_first(alice, pages):
    off_the_loop(services.room_create, actor=alice, name="plans")
    page = pages.open(alice, "/r/plans/")

    page.get_by_role("button", name="Settings").click()
    settings = page.locator("#room-settings-dialog")
    settings.get_by_role("button", name="Archive").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_be_visible()
    expect(confirm.locator("#confirm-title")).to_have_text("Archive #plans?")
    expect(confirm).to_contain_text("read-only for everyone")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#archived-badge")).to_be_hidden()
    expect(page.locator("#composer-input")).to_be_enabled()
    assert not off_the_loop(archived, "plans")

    settings.get_by_role("button", name="Archive").click()
    confirm.get_by_role("button", name="Archive").click()
    expect(page.locator("#archived-badge")).to_be_visible()
    expect(settings).to_be_hidden()
    expect(page.locator("#composer-note")).to_contain_text("archived")
    expect(room_link(page, "plans")).to_have_count(0)
    assert off_the_loop(archived, "plans")


# --- 3. rooms in name order, ignoring case --------------------------------------------


def test_rooms_are_listed_ignoring_case_live_and_after_a_reload(alice, pages):
    for name in ("Project Plans", "apple", "Design"):
        off_the_loop(services.room_create, actor=alice, name=name)
    page = pages.open(alice)
    expect(page.locator("#channel-list a.room-link")).to_have_count(4)
    assert sidebar_channels(page) == ["apple", "Design", "general", "Project Plans"]

    # Renamed while the page is open: it moves to its new place at once...
    off_the_loop(services.room_update, actor=alice, room="apple", name="Zoo")
    expect(page.locator("#channel-list a.room-link .room-name")).to_have_text(
        ["Design", "general", "Project Plans", "Zoo"]
    )
    off_the_loop(services.room_update, actor=alice, room="design", name="roadmap")
    expect(page.locator("#channel-list a.room-link .room-name")).to_have_text(
        ["general", "Project Plans", "roadmap", "Zoo"]
    )
    # ...which is where a fresh load puts it, and the directory too.
    page.reload()
    online(page)
    assert sidebar_channels(page) == ["general", "Project Plans", "roadmap", "Zoo"]
    page.goto(pages.base + "/rooms/")
    assert directory(page) == ["general", "Project Plans", "roadmap", "Zoo"]


# --- 4. back at once after a server restart ---------------------------------------------


def test_the_page_is_back_at_once_after_the_server_restarts(alice, pages, live_server_process):
    page = pages.open(alice)
    expect(own_dot(page)).to_have_attribute("data-connection", "connected")

    live_server_process.stop()
    expect(status(page)).to_have_attribute("data-state", re.compile("offline|connecting"))
    expect(own_dot(page)).to_have_attribute("data-connection", "reconnecting")
    expect(status(page).get_by_role("button", name="Reconnect now")).to_be_visible()
    # A deploy keeps the server away a while: the page tries (and fails) a few
    # times first, which is where a growing backoff used to leave it waiting.
    for _ in range(4):
        page.wait_for_event("websocket")

    restarted = start_server(port=live_server_process.port, **SERVER_ENV)
    try:
        # Bounded by the page's own retries, not by a wait in the test.
        expect(status(page)).to_have_attribute("data-state", "online", timeout=BACK_WITHIN_MS)
        expect(own_dot(page)).to_have_attribute("data-connection", "connected")
        say(page, "back after the restart")
        sent(page, "alice", "back after the restart")
    finally:
        restarted.stop()


def test_reconnect_now_the_online_event_and_showing_the_tab_retry_at_once(
    alice, pages, live_server_process
):
    page = pages.new_page(alice)
    # The page's timers stand still: only the person, the browser's `online`
    # event or the tab being shown can bring the socket back.
    page.clock.install()
    page.goto(pages.base + "/r/general/")
    online(page)
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    server = live_server_process

    def restart():
        nonlocal server
        server.stop()
        expect(status(page)).to_have_attribute("data-state", "offline")
        expect(own_dot(page)).to_have_attribute("data-connection", "reconnecting")
        server = start_server(port=server.port, **SERVER_ENV)

    try:
        restart()
        status(page).get_by_role("button", name="Reconnect now").click()
        online(page)

        restart()
        page.evaluate("window.dispatchEvent(new Event('online'))")
        online(page)

        restart()
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        online(page)
        expect(own_dot(page)).to_have_attribute("data-connection", "connected")
    finally:
        if server is not live_server_process:
            server.stop()


def test_without_a_network_the_own_dot_says_offline(alice, pages, live_server_process):
    page = pages.open(alice)
    context = pages.context_for(alice)
    live_server_process.stop()
    expect(own_dot(page)).to_have_attribute("data-connection", "reconnecting")
    context.set_offline(True)
    expect(status(page)).to_have_attribute("data-state", "no-network")
    expect(own_dot(page)).to_have_attribute("data-connection", "offline")
    restarted = start_server(port=live_server_process.port, **SERVER_ENV)
    try:
        context.set_offline(False)
        expect(status(page)).to_have_attribute("data-state", "online", timeout=BACK_WITHIN_MS)
        expect(own_dot(page)).to_have_attribute("data-connection", "connected")
    finally:
        restarted.stop()


# --- 5. a deactivated account is told so --------------------------------------------------


def test_a_deactivated_account_is_told_so_not_signed_out(alice, admin, pages):
    page = pages.open(alice)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))

    off_the_loop(user_deactivate, actor=admin, user=alice)

    expect(status(page)).to_have_attribute("data-state", "deactivated")
    expect(status(page)).to_contain_text("Your account has been deactivated")
    expect(status(page).locator("a")).to_have_count(0)  # signing in again would not help
    expect(status(page).get_by_role("button")).to_have_count(0)
    expect(own_dot(page)).to_have_attribute("data-connection", "offline")
    expect(page.locator("#composer-input")).to_be_disabled()
    assert sockets == [], "a deactivated account's page does not reconnect"


def test_a_sign_out_elsewhere_in_the_browser_still_says_signed_out(alice, pages):
    page = pages.open(alice)
    other = pages.open(alice, "/r/general/")
    other.get_by_role("button", name="Log out").click()
    expect(status(page)).to_have_attribute("data-state", "signed-out")
    expect(status(page)).to_contain_text("Signed out")
    expect(status(page).get_by_role("link", name="log in again")).to_be_visible()


# --- 6. bursts: paced, in order, one Retry all ----------------------------------------------


@pytest.mark.server_env(CHAT_RATE_LIMIT="5", CHAT_RATE_BURST="3")
def test_many_quick_sends_are_paced_under_the_limit_and_stay_in_order(alice, pages):
    page = pages.open(alice)
    box = page.locator("#composer-input")
    lines = [f"line {i}" for i in range(10)]
    for line in lines:
        box.fill(line)
        box.press("Enter")
    expect(page.locator("#messages li.message[data-state='sent']")).to_have_count(10)
    assert bodies(page) == lines
    expect(page.locator("#messages li.message[data-state='failed']")).to_have_count(0)
    expect(page.locator("#outbox-bar")).to_be_hidden()
    page.reload()
    online(page)
    assert bodies(page) == lines, "stored in the order typed"


# Writes until one is refused (at most `most`): the bucket refills while
# they are answered, so how many it takes depends on the server's speed.
DRAIN_THE_BUCKET = """async most => {
  const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const answers = [];
  while (answers.length < most && !answers.includes(429)) {
    const response = await fetch("/api/rooms/general/join/", {
      method: "POST",
      credentials: "same-origin",
      headers: {"X-CSRFToken": token},
    });
    answers.push(response.status);
  }
  return answers;
}"""

TYPE_QUICKLY = """lines => {
  const box = document.getElementById("composer-input");
  for (const line of lines) {
    box.value = line;
    const enter = {key: "Enter", bubbles: true, cancelable: true};
    box.dispatchEvent(new KeyboardEvent("keydown", enter));
  }
}"""


@pytest.mark.server_env(CHAT_RATE_LIMIT="2", CHAT_RATE_BURST="3")
def test_sends_refused_for_their_rate_stay_in_place_with_one_retry_all(alice, pages):
    page = pages.open(alice)
    # Other writes of alice's spend her whole bucket (one per person, HTTP API included).
    answers = page.evaluate(DRAIN_THE_BUCKET, 30)
    assert answers[-1] == 429, answers
    page.evaluate(TYPE_QUICKLY, ["one", "two", "three"])

    failed = page.locator("#messages li.message[data-state='failed']")
    expect(failed).to_have_count(3)
    assert failed.locator(".message-body").all_inner_texts() == ["one", "two", "three"]
    expect(failed.first.locator(".message-error")).to_contain_text("too fast")
    bar = page.locator("#outbox-bar")
    expect(bar).to_contain_text("3 messages were not sent.")
    expect(page.get_by_role("button", name=re.compile("Retry"))).to_have_count(1)

    bar.get_by_role("button", name="Retry all").click()
    expect(page.locator("#messages li.message[data-state='sent']")).to_have_count(3)
    expect(bar).to_be_hidden()
    assert bodies(page) == ["one", "two", "three"]
    page.reload()
    online(page)
    assert bodies(page) == ["one", "two", "three"]


# --- 13. Enter on a desktop and on a phone ------------------------------------------------


def test_on_a_desktop_enter_sends_and_shift_enter_makes_a_new_line(alice, pages):
    page = pages.open(alice)
    box = page.locator("#composer-input")
    expect(page.locator("#composer-send")).to_be_hidden()
    box.fill("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    expect(box).to_have_value("")
    li = message(page, "alice", "first line")
    expect(li).to_have_attribute("data-state", "sent")
    expect(li.locator(".message-body")).to_have_text(re.compile(r"first line\s+second line"))


PHONE = {
    "viewport": {"width": 390, "height": 844},
    "has_touch": True,
    "is_mobile": True,
    "device_scale_factor": 3,
}


def test_on_a_phone_enter_makes_a_new_line_and_the_send_button_sends(alice, pages):
    page = pages.open(alice, **PHONE)
    box = page.locator("#composer-input")
    send = page.get_by_role("button", name="Send", exact=True)
    expect(send).to_be_visible()
    expect(box).to_have_attribute("enterkeyhint", "enter")
    box.fill("first line")
    box.press("Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(page.locator("#messages li.message")).to_have_count(0)
    send.tap()
    expect(box).to_have_value("")
    li = message(page, "alice", "first line")
    expect(li).to_have_attribute("data-state", "sent")
    expect(li.locator(".message-body")).to_have_text(re.compile(r"first line\s+second line"))
