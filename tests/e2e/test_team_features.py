"""Team-chat features in a real browser: channels, DMs, edits, reactions, unread, reconnects."""

import re

import pytest
from playwright.sync_api import Page, expect

from chat import services
from chat.models import Message
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import (
    TAB_VISIBILITY,
    expect_presence,
    message,
    message_menu,
    online,
    room_link,
    say,
    sent,
    set_tab_hidden,
)
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.processes]

HOSTILE = "**bold** <img src=x onerror=alert(1)> [x](javascript:alert(1))"


@pytest.fixture
def random_room(alice, bob):
    """A public channel alice created and bob joined."""
    services.room_create(actor=alice, name="random", topic="Anything goes")
    services.room_join(actor=bob, room="random")
    return "random"


def same_document(page: Page) -> None:
    """Mark the page, to check later that it was not reloaded."""
    page.evaluate("window.__sameDocument = true")


def still_same_document(page: Page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_a_private_channel_created_and_shared_through_the_ui(alice, bob, carol, pages):
    alice_page = pages.open(alice)
    bob_page = pages.open(bob)
    same_document(bob_page)

    alice_page.get_by_role("button", name="Create a channel").click()
    dialog = alice_page.locator("#create-room-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill("secret-plans")
    dialog.get_by_label("Topic").fill("Nobody else needs to know")
    dialog.get_by_label(re.compile("Private")).check()
    dialog.get_by_role("button", name="Create").click()
    expect(alice_page).to_have_url(f"{pages.base}/r/secret-plans/")
    online(alice_page)
    expect(alice_page.locator("#room-topic")).to_have_text("Nobody else needs to know")
    expect(room_link(alice_page, "secret-plans").locator(".lock-icon")).to_have_count(1)

    alice_page.get_by_role("button", name="Invite").click()
    invite = alice_page.locator("#invite-dialog")
    invite.get_by_role("combobox").fill("bo")
    invite.get_by_role("option", name="bob").click()
    expect(invite.locator(".picked-user")).to_have_text(["bob×"])
    invite.get_by_role("button", name="Invite", exact=True).click()
    expect(invite).to_be_hidden()

    # Bob's open page gets the channel in its sidebar, without a reload.
    link = room_link(bob_page, "secret-plans")
    expect(link).to_be_visible()
    expect(link.locator(".lock-icon")).to_have_count(1)
    assert still_same_document(bob_page)
    expect(bob_page.locator("#notice")).to_contain_text("alice added you to #secret-plans")

    link.click()
    expect(bob_page).to_have_url(f"{pages.base}/r/secret-plans/")
    online(bob_page)
    say(bob_page, "count me in")
    expect(message(alice_page, "bob", "count me in")).to_have_count(1)

    carol_page = pages.open(carol)
    response = carol_page.goto(f"{pages.base}/r/secret-plans/")
    assert response.status == 404
    carol_page.goto(f"{pages.base}/r/general/")
    online(carol_page)
    expect(room_link(carol_page, "secret-plans")).to_have_count(0)


def test_a_direct_message_through_the_picker_reaches_the_other_sidebar(alice, bob, pages):
    alice_page = pages.open(alice)
    bob_page = pages.open(bob)
    same_document(bob_page)

    def start_dm_with_bob() -> str:
        alice_page.get_by_role("button", name="New message").first.click()
        dialog = alice_page.locator("#dm-dialog")
        expect(dialog).to_be_visible()
        box = dialog.get_by_role("combobox")
        box.fill("bo")
        expect(dialog.get_by_role("option", name="bob")).to_be_visible()
        box.press("Enter")  # picks the highlighted person
        expect(dialog.locator(".picked-user")).to_have_count(1)
        dialog.get_by_role("button", name="Start conversation").click()
        expect(alice_page).to_have_url(re.compile(r"/r/dm-[0-9a-f]+/$"))
        online(alice_page)
        return alice_page.url

    first = start_dm_with_bob()
    slug = first.rstrip("/").rsplit("/", 1)[1]
    expect(alice_page.locator("#room-name")).to_have_text("bob")
    expect_presence(room_link(alice_page, slug), "bob", "online")  # rendered by the server
    say(alice_page, "a quiet word")

    dm = bob_page.locator("#dm-list a.room-link", has_text="alice")
    expect(dm).to_be_visible()
    expect(dm.locator(".unread-count")).to_have_text("1")
    expect_presence(dm, "alice", "online")  # added by the page as it happened
    expect(bob_page).to_have_title("(1) #general · TeamChat")
    assert still_same_document(bob_page)

    alice_page.goto(f"{pages.base}/r/general/")
    online(alice_page)
    assert start_dm_with_bob() == first, "the same two people got a second conversation"
    expect(message(alice_page, "alice", "a quiet word")).to_have_count(1)

    dm.click()
    online(bob_page)
    expect(message(bob_page, "alice", "a quiet word")).to_have_count(1)
    expect(room_link(bob_page, slug).locator(".unread-count")).to_have_count(0)


def test_an_edit_shows_on_the_other_page_with_an_edited_marker(alice, bob, pages):
    alice_page = pages.open(alice)
    bob_page = pages.open(bob)

    alice_page.locator("#composer-input").fill("see you at")
    expect(bob_page.locator("#typing-indicator")).to_have_text("alice is typing…")
    say(alice_page, "see you at 10")
    expect(bob_page.locator("#typing-indicator")).to_have_text("")
    mid = sent(alice_page, "alice", "see you at 10")
    theirs = bob_page.locator(f"#m-{mid}")
    expect(theirs.locator(".message-body")).to_have_text("see you at 10")

    # Escape leaves it as it was.
    mine = alice_page.locator(f"#m-{mid}")
    message_menu(alice_page, mine).get_by_role("menuitem", name="Edit message").click()
    editor = mine.get_by_role("textbox", name="Edit message")
    expect(editor).to_have_value("see you at 10")
    editor.fill("never mind")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(mine.locator(".message-body")).to_have_text("see you at 10")

    message_menu(alice_page, mine).get_by_role("menuitem", name="Edit message").click()
    editor = mine.get_by_role("textbox", name="Edit message")
    editor.fill("see you at **11**")
    editor.press("Enter")

    expect(theirs.locator(".message-body")).to_have_text("see you at 11")
    expect(theirs.locator(".message-body strong")).to_have_text("11")
    expect(theirs.locator(".message-edited")).to_have_text("(edited)")
    expect(mine.locator(".message-edited")).to_have_text("(edited)")

    # Bob may not edit or delete alice's message.
    items = message_menu(bob_page, theirs).get_by_role("menuitem")
    expect(items).to_have_text(["Reply in thread", "Mark unread from here", "Copy link"])
    bob_page.keyboard.press("Escape")


def test_a_deleted_message_disappears_from_the_other_page(alice, bob, pages):
    alice_page = pages.open(alice)
    bob_page = pages.open(bob)
    say(alice_page, "oops, wrong room")
    say(alice_page, "this one stays")
    mid = sent(alice_page, "alice", "oops, wrong room")
    expect(bob_page.locator(f"#m-{mid}")).to_have_count(1)

    message_menu(alice_page, alice_page.locator(f"#m-{mid}")).get_by_role(
        "menuitem", name="Delete message"
    ).click()
    confirm = alice_page.locator("#confirm-dialog")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Delete").click()

    expect(bob_page.locator(f"#m-{mid}")).to_have_count(0)
    expect(alice_page.locator(f"#m-{mid}")).to_have_count(0)
    expect(message(bob_page, "alice", "this one stays")).to_have_count(1)
    bob_page.reload()
    online(bob_page)
    expect(bob_page.locator(f"#m-{mid}")).to_have_count(0)


def test_a_reaction_toggles_on_both_pages(alice, bob, pages):
    alice_page = pages.open(alice)
    bob_page = pages.open(bob)
    say(alice_page, "lunch at noon?")
    mid = sent(alice_page, "alice", "lunch at noon?")

    theirs = bob_page.locator(f"#m-{mid}")
    theirs.hover()
    theirs.get_by_role("button", name="Add reaction").click()
    bob_page.get_by_role("menuitem", name="thumbs up").click()

    chip = alice_page.locator(f"#m-{mid} button.reaction[data-emoji='👍']")
    expect(chip.locator(".reaction-count")).to_have_text("1")
    expect(chip).to_have_attribute("aria-pressed", "false")
    expect(chip).to_have_attribute("title", "bob")
    bobs_chip = theirs.locator("button.reaction[data-emoji='👍']")
    expect(bobs_chip).to_have_attribute("aria-pressed", "true")

    bobs_chip.click()
    expect(chip).to_have_count(0)
    expect(bobs_chip).to_have_count(0)


def test_a_mention_is_completed_counted_and_highlighted(alice, bob, random_room, pages):
    alice_page = pages.open(alice)
    bob_page = pages.open(bob, "/r/random/")

    box = alice_page.locator("#composer-input")
    box.press_sequentially("@bo")
    option = alice_page.get_by_role("option", name="bob")
    expect(option).to_be_visible()
    expect(option).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expect(box).to_have_value("@bob ")
    box.press_sequentially("can you look at this?")
    box.press("Enter")
    mid = sent(alice_page, "alice", "can you look at this?")

    general = room_link(bob_page, "general")
    expect(general.locator(".mention-count")).to_have_text("@1")
    expect(general.locator(".unread-count")).to_have_text("1")
    expect(bob_page).to_have_title("(1, @1) #random · TeamChat")

    general.click()
    online(bob_page)
    mentioned = bob_page.locator(f"#m-{mid}")
    expect(mentioned).to_have_class(re.compile(r"\bis-mention\b"))
    expect(mentioned.locator("span.mention")).to_have_text("@bob")
    expect(room_link(bob_page, "general").locator(".mention-count")).to_have_count(0)
    expect(bob_page).to_have_title("#general · TeamChat")


def test_reading_in_one_tab_clears_the_badge_in_the_other(alice, bob, random_room, pages):
    alice_page = pages.open(alice, "/r/random/")
    first = pages.open(bob)
    second = pages.open(bob)

    say(alice_page, "one")
    say(alice_page, "two")
    for tab in (first, second):
        expect(room_link(tab, "random").locator(".unread-count")).to_have_text("2")
        expect(room_link(tab, "random")).to_have_class(re.compile(r"\bhas-unread\b"))
    expect(first).to_have_title("(2) #general · TeamChat")

    room_link(second, "random").click()
    online(second)
    expect(message(second, "alice", "two")).to_have_count(1)

    expect(room_link(first, "random").locator(".unread-count")).to_have_count(0)
    expect(room_link(first, "random")).not_to_have_class(re.compile(r"\bhas-unread\b"))
    expect(first).to_have_title("#general · TeamChat")

    # "Mark unread from here" in the second tab counts again in the first.
    li = message(second, "alice", "one")
    message_menu(second, li).get_by_role("menuitem", name="Mark unread from here").click()
    expect(second.locator("li.message:has(> .unread-divider)")).to_have_attribute(
        "data-id", li.get_attribute("data-id")
    )
    expect(room_link(first, "random").locator(".unread-count")).to_have_text("2")
    expect(first).to_have_title("(2) #general · TeamChat")


def test_hostile_formatting_stays_text_in_the_browser(alice, bob, pages):
    alice_page = pages.open(alice)
    bob_page = pages.open(bob)
    say(alice_page, HOSTILE)
    mid = sent(alice_page, "alice", "bold")

    for page in (bob_page, alice_page):
        body = page.locator(f"#m-{mid} .message-body")
        expect(body.locator("strong")).to_have_text("bold")
        expect(body).to_contain_text("<img src=x onerror=alert(1)>")
        expect(body).to_contain_text("[x](javascript:alert(1))")
    bob_page.reload()
    online(bob_page)
    body = bob_page.locator(f"#m-{mid} .message-body")
    expect(body.locator("strong")).to_have_text("bold")
    expect(body).to_contain_text("<img src=x onerror=alert(1)>")
    for page in (bob_page, alice_page):
        assert page.locator("#messages img").count() == 0
        assert page.locator("a[href^='javascript' i]").count() == 0
    # No dialog fired: the `pages` fixture fails the test at teardown otherwise.


@pytest.fixture
def long_history(alice, general_room):
    """120 messages in #general: more than two pages."""
    Message.objects.bulk_create(
        [Message(room=general_room, author=alice, body=f"note {i}") for i in range(120)]
    )
    return list(Message.objects.filter(room=general_room).values_list("id", flat=True))


def test_a_link_to_an_old_message_loads_and_highlights_it(alice, bob, long_history, pages):
    target = long_history[3]
    bob_page = pages.open(bob, f"/r/general/?m={target}#m-{target}")
    li = bob_page.locator(f"#m-{target}")
    expect(li).to_have_class(re.compile(r"\bis-target\b"))
    expect(li.locator(".message-body")).to_have_text("note 3")
    expect(li).to_be_in_viewport()
    # Everything from it to the newest, once each and in order (older ones may
    # come too: the pane loads more when it sits at the top).
    ids = bob_page.locator("#messages li.message").evaluate_all(
        "items => items.map(li => Number(li.dataset.id))"
    )
    assert ids[ids.index(target) :] == long_history[3:]


def test_the_member_list_shows_presence_live(alice, bob, random_room, pages):
    alice_page = pages.open(alice, "/r/random/")
    alice_page.get_by_role("button", name="Members").click()
    panel = alice_page.locator("#member-panel")
    expect(panel.get_by_role("heading")).to_have_text("Members (2)")
    bob_row = panel.locator("li.member[data-user='bob']")
    expect(bob_row).to_have_attribute("data-presence", "offline")
    expect(bob_row.get_by_role("button", name="Remove bob from #random")).to_be_visible()

    bob_page = pages.open(bob, "/r/random/")
    expect(bob_row).to_have_attribute("data-presence", "online")
    expect(bob_row.locator(".member-presence")).to_have_text(", online")  # for screen readers
    bob_page.close()
    expect(bob_row).to_have_attribute("data-presence", "offline")
    expect(bob_row.locator(".member-presence")).to_have_text(", offline")


@pytest.mark.server_env(CHAT_TYPING_RATE_LIMIT="0.001", CHAT_TYPING_RATE_BURST="1")
def test_a_typing_hint_refused_for_its_rate_shows_no_notice(alice, pages):
    """A typing hint is a hint: one the server refuses as too many is no news to the typist."""
    alice_page = pages.open(alice)
    say(alice_page, "first")  # its typing hint takes the one the server allows
    say(alice_page, "second")  # its typing hint is refused: rate_limited
    # The socket answers in order: the refusal came before the message.
    sent(alice_page, "alice", "second")
    expect(alice_page.locator("#notice")).to_be_hidden()


def snapshot(page: Page) -> dict:
    """What the person sees: the messages (id, author, text, edited, reactions) and the sidebar."""
    return page.evaluate(
        """() => ({
        messages: Array.from(document.querySelectorAll('#messages li.message'), li => ({
          id: li.dataset.id,
          user: li.querySelector('.message-user').textContent,
          body: li.querySelector('.message-body').textContent.trim(),
          edited: !!li.querySelector('.message-edited'),
          reactions: Array.from(li.querySelectorAll('button.reaction'), b => [
            b.dataset.emoji, b.querySelector('.reaction-count').textContent,
            b.getAttribute('aria-pressed'), b.title]),
        })),
        rooms: Array.from(document.querySelectorAll('nav#rooms a.room-link'), a => [
          a.dataset.room, a.querySelector('.room-name').textContent.trim(),
          (a.querySelector('.unread-count') || {}).textContent || '',
          (a.querySelector('.mention-count') || {}).textContent || '']),
      })"""
    )


@pytest.fixture
def random_history(alice, bob, random_room):
    """Four messages in #random, and a second channel both are in."""
    sent_ = [
        services.message_send(author=author, room="random", body=body, nonce=None).message
        for author, body in [
            (alice, "keep me"),
            (alice, "edit me"),
            (alice, "delete me"),
            (bob, "react to me"),
        ]
    ]
    services.room_create(actor=alice, name="design")
    services.room_join(actor=bob, room="design")
    return sent_


def test_after_an_outage_the_page_equals_a_fresh_load(alice, bob, random_history, pages):
    keep, edit, gone, mine = random_history

    links = []
    offline = {"on": False}

    def relay(ws):
        if offline["on"]:
            ws.close(code=1011, reason="network down")  # the server is out of reach
            return
        server = ws.connect_to_server()
        links.append(ws)
        server.on_message(lambda m: ws.send(m))
        ws.on_message(lambda m: server.send(m))

    bob_page = pages.new_page(bob)
    bob_page.route_web_socket(re.compile(r"/ws/chat/"), relay)
    bob_page.goto(f"{pages.base}/r/random/")
    online(bob_page)
    alice_page = pages.open(alice, "/r/random/")
    expect(bob_page.locator(f"#m-{gone.id}")).to_have_count(1)

    offline["on"] = True
    links[-1].close(code=4000, reason="network gone")
    expect(bob_page.locator("#connection-status")).not_to_have_attribute("data-state", "online")

    ours = alice_page.locator(f"#m-{edit.id}")
    message_menu(alice_page, ours).get_by_role("menuitem", name="Edit message").click()
    editor = ours.get_by_role("textbox", name="Edit message")
    editor.fill("edited while you were away")
    editor.press("Enter")
    expect(ours.locator(".message-edited")).to_have_count(1)

    message_menu(alice_page, alice_page.locator(f"#m-{gone.id}")).get_by_role(
        "menuitem", name="Delete message"
    ).click()
    alice_page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(alice_page.locator(f"#m-{gone.id}")).to_have_count(0)

    theirs = alice_page.locator(f"#m-{mine.id}")
    theirs.hover()
    theirs.get_by_role("button", name="Add reaction").click()
    alice_page.get_by_role("menuitem", name="party").click()
    expect(theirs.locator("button.reaction")).to_have_count(1)

    say(alice_page, "posted while you were away")
    off_the_loop(
        services.message_send, author=alice, room="design", body="over here too", nonce=None
    )

    alice_page.get_by_role("button", name="Members").click()
    alice_page.locator("#member-panel").get_by_role(
        "button", name="Remove bob from #random"
    ).click()
    alice_page.locator("#confirm-dialog").get_by_role("button", name="Remove").click()
    expect(alice_page.locator("#member-panel li.member[data-user='bob']")).to_have_count(0)

    offline["on"] = False
    # The next attempt of the page's backoff gets through.
    expect(bob_page.locator("#connection-status")).to_have_attribute(
        "data-state", "online", timeout=30_000
    )
    expect(bob_page.locator(f"#m-{gone.id}")).to_have_count(0)
    expect(room_link(bob_page, "random")).to_have_count(0)
    expect(bob_page.locator("#composer-input")).to_be_disabled()
    expect(bob_page.locator("#composer-note")).to_contain_text("alice removed you from #random")
    expect(message(bob_page, "alice", "posted while you were away")).to_have_count(1)
    expect(room_link(bob_page, "design").locator(".unread-count")).to_have_text("1")

    fresh = pages.new_page(bob)
    fresh.goto(f"{pages.base}/r/random/")
    online(fresh)
    expect(fresh.locator("#composer-note")).to_contain_text("Join it to post here")
    after, reloaded = snapshot(bob_page), snapshot(fresh)
    assert after == reloaded
    by_id = {m["id"]: m for m in after["messages"]}
    assert by_id[str(edit.id)]["body"] == "edited while you were away"
    assert by_id[str(edit.id)]["edited"] is True
    assert by_id[str(mine.id)]["reactions"] == [["🎉", "1", "false", "alice"]]
    assert str(gone.id) not in by_id and str(keep.id) in by_id
    assert [r[0] for r in after["rooms"]] == ["design", "general"]
    assert len(links) >= 2, "the page did not reconnect"


def test_renames_archives_and_removals_reach_open_pages(alice, bob, random_room, pages):
    alice_page = pages.open(alice, "/r/random/")
    bob_page = pages.open(bob, "/r/random/")
    same_document(bob_page)

    alice_page.get_by_role("button", name="Settings").click()
    settings = alice_page.locator("#room-settings-dialog")
    settings.get_by_label("Name").fill("watercooler")
    settings.get_by_label("Topic").fill("Weekend plans")
    settings.get_by_role("button", name="Save").click()
    expect(settings).to_be_hidden()
    expect(bob_page.locator("#room-name")).to_have_text("watercooler")
    expect(bob_page.locator("#room-topic")).to_have_text("Weekend plans")
    expect(room_link(bob_page, "random").locator(".room-name")).to_have_text("watercooler")
    expect(bob_page).to_have_title("#watercooler · TeamChat")

    # Removed while looking at it: told so, cannot post, still reads it live.
    alice_page.get_by_role("button", name="Members").click()
    alice_page.locator("#member-panel").get_by_role(
        "button", name="Remove bob from #watercooler"
    ).click()
    alice_page.locator("#confirm-dialog").get_by_role("button", name="Remove").click()
    expect(bob_page.locator("#notice")).to_have_text("alice removed you from #watercooler.")
    expect(bob_page.locator("#composer-input")).to_be_disabled()
    expect(room_link(bob_page, "random")).to_have_count(0)
    online(bob_page)
    say(alice_page, "still readable?")
    expect(message(bob_page, "alice", "still readable?")).to_have_count(1)

    # Back in through the directory.
    bob_page.goto(f"{pages.base}/rooms/")
    row = bob_page.locator("li.channel-row[data-room='random']")
    expect(row.locator(".channel-topic")).to_have_text("Weekend plans")
    expect(row.locator(".channel-members")).to_have_text("1 member")
    row.get_by_role("button", name="Join #watercooler").click()
    expect(bob_page).to_have_url(f"{pages.base}/r/random/")
    online(bob_page)
    expect(bob_page.locator("#composer-input")).to_be_enabled()
    same_document(bob_page)

    settings_button = alice_page.get_by_role("button", name="Settings")
    settings_button.click()
    settings.get_by_role("button", name="Archive").click()
    alice_page.locator("#confirm-dialog").get_by_role("button", name="Archive").click()
    expect(bob_page.locator("#archived-badge")).to_be_visible()
    expect(bob_page.locator("#composer-note")).to_contain_text("is archived: it is read-only")
    expect(bob_page.locator("#composer-input")).to_be_disabled()
    expect(room_link(bob_page, "random")).to_have_count(0)
    assert still_same_document(bob_page)


def test_rooms_deleted_by_an_admin_leave_open_pages(alice, bob, random_room, dm_room, pages):
    root = off_the_loop(UserFactory, username="root", is_staff=True, is_superuser=True)
    bob_page = pages.open(bob, "/r/random/")
    same_document(bob_page)
    expect(room_link(bob_page, dm_room)).to_have_count(1)

    # Another room of the sidebar: it goes, and the page says why.
    off_the_loop(services.room_delete, actor=root, room=dm_room)
    expect(room_link(bob_page, dm_room)).to_have_count(0)
    expect(bob_page.locator("#notice")).to_have_text(
        "Your conversation with alice was deleted by root."
    )
    expect(bob_page.locator("#composer-input")).to_be_enabled()

    # The room being read: told so, nothing left to write or join.
    off_the_loop(services.room_delete, actor=root, room="random")
    expect(bob_page.locator("#notice")).to_have_text("#random was deleted by root.")
    expect(bob_page.locator("#composer-note")).to_contain_text("#random was deleted by root.")
    expect(bob_page.locator("#composer-input")).to_be_disabled()
    expect(bob_page.locator("#join-button")).to_be_hidden()
    expect(room_link(bob_page, "random")).to_have_count(0)
    expect(room_link(bob_page, "general")).to_have_count(1)
    assert still_same_document(bob_page)


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
    static get permission() { return window.__permission || "default"; }
    static requestPermission() {
      window.__permission = "granted";
      return Promise.resolve("granted");
    }
  }
  window.Notification = FakeNotification;
})();
"""


@pytest.fixture
def dm_room(alice, bob):
    return services.dm_open(actor=alice, usernames=["bob"]).slug


def test_notifications_for_mentions_and_dms_in_a_hidden_tab(alice, bob, dm_room, pages):
    """The browser's Notification and page visibility are stand-ins; the page's choices are real."""
    alice_page = pages.open(alice)
    bob_context = pages.context_for(bob)
    bob_context.add_init_script(FAKE_NOTIFICATIONS)
    bob_context.add_init_script(TAB_VISIBILITY)
    bob_page = pages.open(bob)

    bob_page.get_by_role("button", name="Enable notifications").click()
    expect(bob_page.get_by_role("button", name="Enable notifications")).to_be_hidden()
    set_tab_hidden(bob_page, True)

    say(alice_page, "nobody in particular")
    say(alice_page, "@bob see <b>this</b> " + "x" * 300)
    mid = sent(alice_page, "alice", "@bob see")
    expect(bob_page).to_have_title("(2, @1) #general · TeamChat")
    alice_page.goto(f"{pages.base}/r/{dm_room}/")
    online(alice_page)
    say(alice_page, "psst, **bob**")
    dm_mid = sent(alice_page, "alice", "psst")
    expect(bob_page).to_have_title("(3, @1) #general · TeamChat")

    notes = bob_page.evaluate("window.__notes.map(n => [n.title, n.body])")
    assert len(notes) == 2, notes
    (title, body), dm_note = notes
    assert title == "alice in #general"
    assert body.startswith("@bob see <b>this</b> xxx") and len(body) == 200 and body.endswith("…")
    assert dm_note == ["alice (direct message)", "psst, **bob**"]

    bob_page.evaluate("window.__hidden = false; window.__notes[0].onclick()")
    expect(bob_page.locator(f"#m-{mid}")).to_have_class(re.compile(r"\bis-target\b"))
    expect(bob_page).to_have_title("(1) #general · TeamChat")

    bob_page.evaluate("window.__notes[1].onclick()")
    expect(bob_page).to_have_url(f"{pages.base}/r/{dm_room}/?m={dm_mid}#m-{dm_mid}")
    expect(bob_page.locator(f"#m-{dm_mid}")).to_have_class(re.compile(r"\bis-target\b"))
    expect(bob_page).to_have_title("alice · TeamChat")


def test_a_direct_message_shows_the_other_persons_presence(alice, bob, carol, dm_room, pages):
    group = off_the_loop(services.dm_open, actor=alice, usernames=["bob", "carol"]).slug
    pages.context_for(bob).add_init_script(TAB_VISIBILITY)
    alice_page = pages.open(alice)
    dm = room_link(alice_page, dm_room)
    expect_presence(dm, "bob", "offline")
    # A group conversation shows no one's.
    expect(room_link(alice_page, group).locator(".room-presence")).to_have_count(0)
    expect(room_link(alice_page, group)).to_have_accessible_name(re.compile(r"^bob, carol$"))

    bob_page = pages.open(bob)
    expect_presence(dm, "bob", "online")
    set_tab_hidden(bob_page, True)  # bob switches to another tab
    expect_presence(dm, "bob", "away")
    set_tab_hidden(bob_page, False)
    expect_presence(dm, "bob", "online")
    bob_page.close()
    expect_presence(dm, "bob", "offline")


@pytest.mark.server_env(CHAT_PRESENCE_RATE_LIMIT="0.3", CHAT_PRESENCE_RATE_BURST="1")
def test_a_presence_change_refused_for_its_rate_is_said_again(alice, bob, dm_room, pages):
    """A tab's away or active, refused by the presence bucket, is sent again, quietly."""
    pages.context_for(bob).add_init_script(TAB_VISIBILITY)
    alice_page = pages.open(alice)
    dm = room_link(alice_page, dm_room)
    bob_page = pages.open(bob)  # his subscription (to alice) takes the one frame allowed
    expect_presence(dm, "bob", "online")
    set_tab_hidden(bob_page, True)  # refused until the bucket has refilled (about 3 s)
    dot = dm.locator(".room-presence")
    expect(dot).to_have_attribute("data-presence", "away", timeout=20_000)
    expect(bob_page.locator("#notice")).to_be_hidden()  # a notice stays up 6 s


def test_the_page_follows_presence_again_after_a_reconnect(alice, bob, dm_room, pages):
    links = []
    cut = {"on": False}

    def relay(ws):
        if cut["on"]:
            ws.close(code=1011, reason="network down")  # the server is out of reach
            return
        server = ws.connect_to_server()
        links.append(ws)
        server.on_message(lambda m: ws.send(m))
        ws.on_message(lambda m: server.send(m))

    alice_page = pages.new_page(alice)
    alice_page.route_web_socket(re.compile(r"/ws/chat/"), relay)
    alice_page.goto(f"{pages.base}/r/general/")
    online(alice_page)
    dm = room_link(alice_page, dm_room)
    expect_presence(dm, "bob", "offline")

    status = alice_page.locator("#connection-status")
    cut["on"] = True
    links[-1].close(code=4000, reason="network gone")
    expect(status).not_to_have_attribute("data-state", "online")
    cut["on"] = False
    # The next attempt of the page's backoff gets through, on a new socket.
    expect(status).to_have_attribute("data-state", "online", timeout=30_000)
    assert len(links) == 2

    bob_page = pages.open(bob)
    expect_presence(dm, "bob", "online")
    bob_page.close()
    expect_presence(dm, "bob", "offline")


@pytest.fixture
def design_room(alice):
    """A public channel bob has not joined."""
    services.room_create(actor=alice, name="design")
    return "design"


def test_a_public_channel_is_read_live_then_joined_from_its_page(alice, bob, design_room, pages):
    alice_page = pages.open(alice, "/r/design/")
    bob_page = pages.open(bob, "/r/design/")
    same_document(bob_page)
    expect(bob_page.locator("#composer")).to_be_hidden()
    expect(room_link(bob_page, "design")).to_have_count(0)

    say(alice_page, "anyone out there?")
    mid = sent(alice_page, "alice", "anyone out there?")
    expect(bob_page.locator(f"#m-{mid}")).to_have_count(1)  # carried as a watched room

    bob_page.get_by_role("button", name="Join #design").click()
    expect(bob_page.locator("#composer-input")).to_be_focused()
    expect(room_link(bob_page, "design")).to_be_visible()
    say(bob_page, "me!")
    expect(message(alice_page, "bob", "me!")).to_have_count(1)

    # Reacting with the keyboard only.
    theirs = bob_page.locator(f"#m-{mid}")
    theirs.get_by_role("button", name="Add reaction").focus()
    bob_page.keyboard.press("Enter")
    expect(bob_page.get_by_role("menuitem", name="thumbs up")).to_be_focused()
    bob_page.keyboard.press("ArrowRight")
    bob_page.keyboard.press("Enter")
    expect(alice_page.locator(f"#m-{mid} button.reaction[data-emoji='❤️']")).to_have_count(1)
    expect(theirs.get_by_role("button", name="Add reaction")).to_be_focused()
    assert still_same_document(bob_page)
