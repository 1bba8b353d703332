"""The 20-line bot of docs/api.md, run as it is against a real server process."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from chat import services
from chat.models import Message
from integrations.tokens import token_create
from tests.factories import UserFactory
from tests.servers import start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
]

BOT = Path(settings.BASE_DIR) / "docs" / "examples" / "pingbot.py"


def test_the_documented_bot_answers_ping_through_the_token_api():
    server = start_server()
    bot_user, bob = UserFactory(username="pingbot"), UserFactory(username="bob")
    _, secret = token_create(user=bot_user, name="pingbot")
    # Said before the bot started: not for it to answer.
    earlier = services.message_send(author=bob, room="general", body="!ping", nonce=None)
    bot = subprocess.Popen(
        [sys.executable, str(BOT), "general"],
        env={"TEAMCHAT_URL": server.http_url, "TEAMCHAT_TOKEN": secret, "PATH": "/usr/bin:/bin"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not bot_user.api_tokens.filter(last_used__isnull=False).exists():
            assert bot.poll() is None, bot.stderr.read() if bot.stderr else ""
            assert time.monotonic() < deadline, "the bot never called the API"
            time.sleep(0.1)
        # Its first request may still be reading where the room stands: a ping
        # that lands before that read is history to it, so ask again until answered.
        pings: list[int] = []
        asked = 0.0
        while not Message.objects.filter(author=bot_user).exists():
            assert bot.poll() is None, bot.stderr.read() if bot.stderr else ""
            assert time.monotonic() < deadline, "no pong within 30 s"
            if time.monotonic() > asked + 5:
                ping = services.message_send(author=bob, room="general", body="!ping", nonce=None)
                pings.append(ping.message.id)
                asked = time.monotonic()
            time.sleep(0.1)
    finally:
        bot.kill()
        bot.wait()
        server.stop()
    pongs = Message.objects.filter(author=bot_user)
    assert {m.body for m in pongs} == {"pong, @bob"}
    assert {m.room.slug for m in pongs} == {"general"}
    assert {m.nonce for m in pongs} <= {f"pong-{i}" for i in pings}
    assert f"pong-{earlier.message.id}" not in {m.nonce for m in pongs}
