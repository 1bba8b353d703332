"""axe-core finds nothing wrong on any page, in any state a person can bring it to."""

import pytest
from playwright.sync_api import expect

from chat import services
from tests.e2e.a11y import assert_accessible
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import (
    TAB_VISIBILITY,
    message,
    message_menu,
    online,
    room_link,
    say,
    set_tab_hidden,
)
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def design(alice, bob):
    """A channel alice manages, with bob in it and a few messages alice has not read."""

    def make():
        services.room_create(actor=alice, name="design", topic="Pixels")
        services.room_join(actor=bob, room="design")
        services.message_send(author=alice, room="design", body="Kick-off at **ten**", nonce="a1")
        for n in range(3):
            services.message_send(
                author=bob, room="design", body=f"@alice point {n}", nonce=f"b{n}"
            )

    off_the_loop(make)
    return "design"


def test_the_room_page_in_every_state(pages, alice, bob, design):
    page = pages.open(alice, f"/r/{design}/")
    expect(page.locator("#messages li.message")).to_have_count(4)
    assert_accessible(page, "room with unread messages")

    say(page, "Reacting to this one")
    li = message(page, "alice", "Reacting to this one")
    menu = message_menu(page, li)
    assert_accessible(page, "message menu open")
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()

    box = page.locator("#composer-input")
    box.click()
    box.press_sequentially("@b")
    expect(page.locator("#mention-list")).to_be_visible()
    assert_accessible(page, "mention completion open")
    box.fill("")

    page.locator("#members-button").click()
    expect(page.locator("#member-panel")).to_be_visible()
    assert_accessible(page, "member panel open")
    page.locator("#member-panel-close").click()

    for opener, dialog in [
        ("#create-room-button", "#create-room-dialog"),
        ("#new-dm-button", "#dm-dialog"),
        ("#invite-button", "#invite-dialog"),
        ("#room-settings-button", "#room-settings-dialog"),
        ("#leave-button", "#confirm-dialog"),
    ]:
        page.locator(opener).click()
        expect(page.locator(dialog)).to_be_visible()
        assert_accessible(page, f"{dialog} open")
        page.keyboard.press("Escape")
        expect(page.locator(dialog)).to_be_hidden()


def test_the_room_page_on_a_phone_with_the_sidebar_open(pages, alice, design):
    page = pages.open(alice, f"/r/{design}/", viewport={"width": 390, "height": 844})
    assert_accessible(page, "phone")
    page.locator("#sidebar-toggle").click()
    expect(page.locator("#sidebar")).to_be_visible()
    assert_accessible(page, "phone, sidebar open")


def test_directory_search_and_error_pages(pages, alice, design):
    page = pages.open(alice, "/rooms/", wait_online=False)
    expect(page.locator("main")).to_be_visible()
    assert_accessible(page, "directory")

    page.goto(pages.base + "/search/?q=point")
    expect(page.get_by_text("point 2")).to_be_visible()
    assert_accessible(page, "search results")

    page.goto(pages.base + "/search/?q=from:nobody-here")
    assert_accessible(page, "search with a bad filter")

    response = page.goto(pages.base + "/r/no-such-room/")
    assert response.status == 404
    assert_accessible(page, "404 page")


def test_account_pages_for_someone_signed_out(browser, live_server_process):
    page = browser.new_context().new_page()
    for path in ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]:
        page.goto(live_server_process.http_url + path)
        expect(page.locator("form").first).to_be_visible()
        assert_accessible(page, path)
    page.context.close()


def test_the_message_list_with_runs_folds_the_new_messages_pill_and_an_invite_offer(
    pages, alice, bob, design
):
    carol = off_the_loop(UserFactory, username="carol")
    assert carol.username == "carol"

    def post(body: str, n: int) -> None:
        services.message_send(author=bob, room=design, body=body, nonce=f"list-{n}")

    off_the_loop(post, "\n\n".join(f"line {i}" for i in range(40)), 0)
    for n in range(1, 30):
        off_the_loop(post, f"filler {n}", n)
    # Opened in a background tab: nothing is read yet, so the current room's
    # entry in the sidebar shows its unread count (33) on the current-room blue.
    page = pages.new_page(alice)
    page.add_init_script(TAB_VISIBILITY + "\nwindow.__hidden = true;")
    page.goto(f"{pages.base}/r/{design}/")
    online(page)
    expect(room_link(page, design).locator(".unread-count")).to_have_text("33")
    expect(message(page, "bob", "line 39").get_by_role("button", name="Show more")).to_have_count(1)
    assert_accessible(page, "runs of one author, a folded long message, a date divider")

    set_tab_hidden(page, False)  # alice looks: the room is read
    expect(room_link(page, design).locator(".unread-count")).to_have_count(0)

    page.locator("#message-pane").evaluate("pane => { pane.scrollTop = 0; }")
    off_the_loop(post, "arrived while you read above", 99)
    expect(page.get_by_role("button", name="New messages")).to_be_visible()
    assert_accessible(page, "the new messages pill")

    say(page, "welcome @carol ")
    expect(page.locator("#mention-invite")).to_be_visible()
    assert_accessible(page, "the offer to invite someone mentioned")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_switcher_shortcuts_and_emoji_picker_in_light_and_dark(pages, alice, bob, design, scheme):
    page = pages.open(alice, f"/r/{design}/", color_scheme=scheme)
    assert_accessible(page, f"room page, {scheme}")

    page.keyboard.press("Control+k")
    switcher = page.get_by_role("dialog", name="Jump to a room or person")
    expect(switcher).to_be_visible()
    switcher.get_by_role("combobox").fill("des")
    assert_accessible(page, f"quick switcher, {scheme}")
    page.keyboard.press("Escape")
    expect(switcher).to_be_hidden()

    page.locator("#message-pane").click()
    page.keyboard.press("?")
    shortcuts = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(shortcuts).to_be_visible()
    assert_accessible(page, f"keyboard shortcuts, {scheme}")
    page.keyboard.press("Escape")
    expect(shortcuts).to_be_hidden()

    page.get_by_role("button", name="Insert an emoji").click()
    picker = page.get_by_role("dialog", name="Insert an emoji")
    picker.get_by_role("combobox", name="Search emoji").fill("party")
    expect(picker.get_by_role("option").first).to_be_visible()
    assert_accessible(page, f"emoji picker, {scheme}")
    page.keyboard.press("Escape")

    page.locator("#composer-input").press_sequentially(":tad")
    expect(page.get_by_role("listbox", name="Emoji")).to_be_visible()
    assert_accessible(page, f"shortcode completion, {scheme}")
