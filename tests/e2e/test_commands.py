"""Slash commands in the browser: "/" lists them, a command runs and says what it did,
"//" sends a slash as text, and a bot's message carries its BOT mark."""

import re

import pytest
from playwright.sync_api import expect

from accounts.models import User
from chat import services
from integrations.tokens import token_create
from tests.e2e.conftest import off_the_loop
from tests.e2e.helpers import message, online, sent

pytestmark = [pytest.mark.browser, pytest.mark.processes]


def test_typing_a_slash_lists_the_commands_and_they_run(alice, bob, pages):
    off_the_loop(services.room_create, actor=alice, name="launch", topic="")
    off_the_loop(services.room_invite, actor=alice, room="launch", username="bob")
    page = pages.open(alice, "/r/launch/")
    other = pages.open(bob, "/r/launch/")
    online(page)
    box = page.locator("#composer-input")

    box.fill("/")
    listed = page.locator("#mention-list .command-option")
    expect(listed.first).to_be_visible()
    expect(listed.filter(has_text="/shrug")).to_have_count(1)
    box.fill("/sh")
    expect(listed).to_have_count(1)
    box.press("Enter")  # picks /shrug
    expect(box).to_have_value("/shrug ")
    box.type("well")
    box.press("Enter")
    expect(box).to_have_value("")
    expect(message(other, "alice", "well ¯\\_(ツ)_/¯")).to_have_count(1)

    box.fill("/topic Ship on Friday")
    box.press("Enter")
    expect(page.locator("#notice")).to_contain_text("Topic set.")
    expect(other.locator("#room-topic")).to_have_text("Ship on Friday")

    box.fill("/me is testing")
    box.press("Enter")
    action = message(other, "alice", "is testing")
    expect(action).to_have_class(re.compile(r"\bis-me\b"))
    expect(action.locator(".message-body")).to_have_text("is testing")

    box.fill("/nonsense")
    box.press("Enter")
    expect(page.locator("#notice")).to_contain_text("There is no command /nonsense")

    box.fill("//topic is a word")
    box.press("Enter")
    sent(page, "alice", "/topic is a word")


def test_a_bots_message_is_marked_as_a_bots(alice, bob, pages):
    bot = off_the_loop(User.objects.create, username="ci-bot", is_bot=True, bot_owner=alice)
    off_the_loop(token_create, user=bot, name="ci")
    page = pages.open(bob, "/r/general/")
    online(page)
    off_the_loop(services.message_send, author=bot, room="general", body="build green", nonce=None)
    posted = message(page, "ci-bot", "build green")
    expect(posted.locator(".bot-badge")).to_have_text("Bot")
    expect(message(page, "alice", "anything").locator(".bot-badge")).to_have_count(0)
