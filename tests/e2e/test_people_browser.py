"""People in a real browser: a profile changed in one tab shows at once on
the messages of another person's tab."""

import base64
import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from chat import services
from tests.e2e.a11y import assert_accessible
from tests.e2e.conftest import SERVER_ENV, off_the_loop
from tests.e2e.helpers import message, room_link, say
from tests.servers import start_server

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def live_server_process(request, transactional_db, tmp_path):
    """The server, storing avatars in a directory of this test's own."""
    server = start_server(**{**SERVER_ENV, "UPLOADS_DIR": str(tmp_path / "uploads")})
    yield server
    server.stop()


PATCH = """
async (body) => {
  const token = /(?:^|;\\s*)csrftoken=([^;]+)/.exec(document.cookie)[1];
  const answer = await fetch("/api/profile/", {
    method: "PATCH",
    headers: { "Content-Type": "application/json", "X-CSRFToken": token },
    body: JSON.stringify(body),
  });
  return answer.status;
}
"""

AVATAR = """
async (b64) => {
  const token = /(?:^|;\\s*)csrftoken=([^;]+)/.exec(document.cookie)[1];
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const form = new FormData();
  form.append("file", new File([bytes], "me.png", { type: "image/png" }));
  const answer = await fetch("/api/profile/avatar/", {
    method: "POST", headers: { "X-CSRFToken": token }, body: form,
  });
  return answer.status;
}
"""


def png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 40, 40)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_a_new_name_and_picture_show_live_on_the_other_persons_page(alice, bob, pages):
    mine = pages.open(alice)
    other = pages.open(bob)
    say(mine, "hello from alice")
    li = message(other, "alice", "hello from alice")
    expect(li).to_have_count(1)
    expect(li.locator(".message-avatar img")).to_have_count(0)

    assert mine.evaluate(PATCH, {"display_name": "Alice Liddell"}) == 200
    assert mine.evaluate(AVATAR, png()) == 200

    author = other.locator("#messages li.message[data-user='alice'] .message-user")
    expect(author).to_have_text("Alice Liddell")
    expect(author).to_have_attribute("title", "@alice")
    picture = other.locator("#messages li.message[data-user='alice'] .message-avatar img")
    expect(picture).to_have_attribute("src", "/avatars/" + str(alice.pk) + "/1")
    loaded = "([i]) => i.complete && i.naturalWidth === 256"
    other.wait_for_function(loaded, arg=[picture.element_handle()])

    other.locator("#members-button").click()
    row = other.locator("#member-list li.member[data-user='alice']")
    expect(row.locator(".member-name")).to_have_text("Alice Liddell (@alice)")
    expect(row.locator(".member-avatar img")).to_have_attribute("src", f"/avatars/{alice.pk}/1")
    assert (
        mine.evaluate(PATCH, {"status": {"text": "Lunch", "emoji": "🍜", "expires": None}}) == 200
    )
    expect(row.locator(".member-status")).to_have_attribute("title", "Lunch")
    assert_accessible(other, "member panel with a picture and a status")

    # A page loaded afterwards has the profile from the start.
    again = pages.open(bob)
    expect(again.locator("#messages li.message[data-user='alice'] .message-user")).to_have_text(
        "Alice Liddell"
    )


def test_the_profile_card_shows_status_and_local_time_and_opens_the_dm(alice, bob, pages):
    mine = pages.open(alice)
    other = pages.open(bob)
    say(mine, "ask me anything")
    expect(message(other, "alice", "ask me anything")).to_have_count(1)
    profile = {
        "display_name": "Alice Liddell",
        "title": "Design lead",
        "time_zone": "Asia/Tokyo",
        "status": {"text": "In a meeting", "emoji": "📅", "expires": None},
    }
    assert mine.evaluate(PATCH, profile) == 200

    author = other.locator("#messages li.message[data-user='alice'] .message-user")
    expect(author).to_have_text("Alice Liddell")
    author.click()
    card = other.get_by_role("dialog", name="Alice Liddell")
    expect(card).to_be_visible()
    expect(card.locator(".profile-username")).to_have_text("@alice")
    expect(card.locator(".profile-title")).to_have_text("Design lead")
    expect(card.locator(".profile-status")).to_have_text("📅 In a meeting")
    expect(card.locator(".profile-time")).to_contain_text("local time")
    assert_accessible(other, "the profile card open")

    # The status goes while the card is open: the card follows.
    assert mine.evaluate(PATCH, {"status": None}) == 200
    expect(card.locator(".profile-status")).to_be_hidden()

    card.get_by_role("button", name="Message").click()
    other.wait_for_url("**/r/dm-*/")
    expect(other.locator("#messages")).to_be_visible()


def test_mention_completion_finds_a_display_name_and_shows_both_names(alice, bob, pages):
    theirs = pages.open(bob)
    assert theirs.evaluate(PATCH, {"display_name": "Robert Paulson"}) == 200
    mine = pages.open(alice)
    box = mine.locator("#composer-input")
    box.press_sequentially("@pau")
    option = mine.get_by_role("option", name="Robert Paulson @bob")
    expect(option).to_be_visible()
    box.press("Enter")
    expect(box).to_have_value("@bob ")


def test_a_profile_is_edited_in_its_dialog_and_the_other_person_sees_it(alice, bob, pages):
    mine = pages.open(alice)
    theirs = pages.open(bob)
    say(mine, "morning all")
    message(theirs, "alice", "morning all")

    mine.get_by_role("button", name="Edit your profile").click()
    dialog = mine.get_by_role("dialog", name="Your profile")
    expect(dialog).to_be_visible()
    assert_accessible(mine, "the profile editor")
    dialog.get_by_label("Display name").fill("Alice Liddell")
    dialog.get_by_label("Title").fill("Design lead")
    dialog.get_by_label("Time zone").select_option("Asia/Tokyo")
    dialog.get_by_label("Emoji").fill("📅")
    dialog.get_by_label("What you are doing").fill("In a meeting")
    dialog.get_by_label("Clear after").select_option("1h")
    dialog.locator("input[type=file]").set_input_files(
        {"name": "me.png", "mimeType": "image/png", "buffer": base64.b64decode(png())}
    )
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()

    # Bob's page: the name and the picture on alice's message, live.
    line = message(theirs, "alice", "morning all")
    expect(line.locator(".message-user")).to_have_text("Alice Liddell")
    expect(line.locator(".message-avatar img")).to_have_attribute(
        "src", re.compile(r"^/avatars/\d+/1$")
    )
    line.locator(".message-user").click()
    card = theirs.get_by_role("dialog", name="Alice Liddell")
    expect(card.locator(".profile-title")).to_have_text("Design lead")
    expect(card.locator(".profile-status")).to_contain_text("📅 In a meeting, until")
    expect(card.locator(".profile-time")).to_contain_text("local time")

    # Opened again, the editor shows what was saved; taking the picture away
    # and clearing the status reach bob too.
    mine.get_by_role("button", name="Edit your profile").click()
    expect(dialog.get_by_label("Display name")).to_have_value("Alice Liddell")
    expect(dialog.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
    dialog.get_by_role("button", name="Remove picture").click()
    dialog.get_by_label("Emoji").fill("")
    dialog.get_by_label("What you are doing").fill("")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(card.locator(".profile-status")).to_be_hidden()
    expect(line.locator(".message-avatar img")).to_have_count(0)


def test_a_picture_that_is_not_one_is_refused_in_words(alice, pages):
    mine = pages.open(alice)
    mine.get_by_role("button", name="Edit your profile").click()
    dialog = mine.get_by_role("dialog", name="Your profile")
    dialog.locator("input[type=file]").set_input_files(
        {
            "name": "me.png",
            "mimeType": "image/png",
            "buffer": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        }
    )
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("PNG, JPEG, GIF or WebP")
    expect(dialog).to_be_visible()


def test_a_conversation_in_the_sidebar_shows_the_other_persons_name_and_picture(alice, bob, pages):
    slug = off_the_loop(lambda: services.dm_open(actor=alice, usernames=["bob"]).slug)
    mine = pages.open(alice)
    theirs = pages.open(bob)
    link = room_link(theirs, slug)
    expect(link.locator(".room-name")).to_have_text("alice")
    expect(link.locator(".dm-icon img")).to_have_count(0)

    assert mine.evaluate(PATCH, {"display_name": "Alice Liddell"}) == 200
    assert mine.evaluate(AVATAR, png()) == 200
    expect(link.locator(".room-name")).to_have_text("Alice Liddell")
    expect(link.locator(".dm-icon img")).to_have_attribute("src", f"/avatars/{alice.pk}/1")


def test_search_results_name_their_authors_as_people_see_them(alice, bob, pages):
    mine = pages.open(alice)
    say(mine, "the harbour plans are ready")
    assert mine.evaluate(PATCH, {"display_name": "Alice Liddell"}) == 200
    assert mine.evaluate(AVATAR, png()) == 200
    theirs = pages.open(bob)
    theirs.goto(f"{pages.base}/search/?q=harbour")
    author = theirs.locator(".search-hit-user")
    expect(author).to_have_text("Alice Liddell @alice")
    expect(author.locator("img")).to_have_attribute("src", f"/avatars/{alice.pk}/1")
    assert_accessible(theirs, "search results with a person's picture")


def test_a_status_disappears_when_it_ends_without_a_reload(alice, bob, pages):
    mine = pages.open(alice)
    theirs = pages.open(bob)
    theirs.locator("#members-button").click()
    status = theirs.locator("#member-list li.member[data-user='alice'] .member-status")
    soon = mine.evaluate("() => new Date(Date.now() + 3000).toISOString()")
    change = {"status": {"text": "Back in a moment", "emoji": "☕", "expires": soon}}
    assert mine.evaluate(PATCH, change) == 200
    expect(status).to_have_attribute("title", "Back in a moment")
    expect(status).to_have_count(0, timeout=15_000)


def test_a_status_can_clear_at_a_chosen_time(alice, pages):
    mine = pages.open(alice)
    mine.get_by_role("button", name="Edit your profile").click()
    dialog = mine.get_by_role("dialog", name="Your profile")
    dialog.get_by_label("What you are doing").fill("Off to the dentist")
    dialog.get_by_label("Clear after").select_option("custom")
    at = dialog.get_by_label("Clear at")
    expect(at).to_be_focused()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("a time still to come")

    at.fill("2099-03-01T15:00")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    status = mine.evaluate(
        "async () => (await (await fetch('/api/profile/')).json()).profile.status"
    )
    assert status["text"] == "Off to the dentist"
    assert status["expires"].startswith("2099-03-01")
