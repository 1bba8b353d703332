"""The 20-line bot of docs/api.md, run as it is against a real server process."""

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets
from asgiref.sync import sync_to_async
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
            time.sleep(0.1)  # the bot is another process: polled, bounded by the deadline
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
            time.sleep(0.1)  # as above
    finally:
        bot.kill()
        bot.wait()
        server.stop()
    pongs = Message.objects.filter(author=bot_user)
    assert {m.body for m in pongs} == {"pong, @bob"}
    assert {m.room.slug for m in pongs} == {"general"}
    assert {m.nonce for m in pongs} <= {f"pong-{i}" for i in pings}
    assert f"pong-{earlier.message.id}" not in {m.nonce for m in pongs}


async def test_a_bot_on_a_real_server_opens_the_socket_with_its_token_alone():
    """Through daphne as deployed: the header reaches the handshake; no cookie, no Origin."""
    server = await sync_to_async(start_server)()
    try:
        bot_user = await sync_to_async(UserFactory)(username="echobot")
        bob = await sync_to_async(UserFactory)(username="bob")
        _, secret = await sync_to_async(token_create)(user=bot_user, name="echo")
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(
                server.ws_url, additional_headers={"Authorization": "Bearer tc_wrong"}
            )
        assert refused.value.response.status_code == 403
        async with websockets.connect(
            server.ws_url, additional_headers={"Authorization": f"Bearer {secret}"}
        ) as ws:
            await sync_to_async(services.message_send)(
                author=bob, room="general", body="anyone?", nonce=None
            )
            while (event := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "message":
                pass
            assert (event["user"], event["body"]) == ("bob", "anyone?")
            await ws.send(
                json.dumps({"type": "send", "room": "general", "body": "here", "nonce": "e1"})
            )
            while (event := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "message":
                pass
            assert (event["user"], event["body"], event["nonce"]) == ("echobot", "here", "e1")
    finally:
        await sync_to_async(server.stop)()
