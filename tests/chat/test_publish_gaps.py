"""A publish that fails is not a silent gap: every process sends the event from the log.

Two real server processes on PostgreSQL and Redis; process A reaches Redis
through a relay the test cuts, so what A commits meanwhile is published to
nobody, A's own sockets included.
"""

import asyncio
import json
from urllib.parse import urlsplit, urlunsplit

import pytest
import websockets
from django.conf import settings
from django.db import connection

from chat.models import Message
from tests.factories import UserFactory
from tests.proxy import CuttableRelay
from tests.servers import start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
]


def through(relay: CuttableRelay, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{relay.port}"))


@pytest.fixture
def relay():
    parts = urlsplit(settings.REDIS_URL)
    relay = CuttableRelay((parts.hostname or "127.0.0.1", parts.port or 6379))
    yield relay
    relay.close()


@pytest.fixture
def servers(relay):
    a = start_server(REDIS_URL=through(relay, settings.REDIS_URL), CHAT_GAP_CHECK_SECONDS="0.5")
    b = start_server(CHAT_GAP_CHECK_SECONDS="0.5")
    yield a, b
    a.stop()
    b.stop()


def connect(server, cookie):
    return websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": cookie, "Origin": server.http_url},
        open_timeout=10,
    )


async def next_event(ws) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=15))
        if event["type"] != "presence":
            return event


def stored_id(author, body: str) -> int:
    try:
        return Message.objects.get(author=author, body=body).pk
    finally:
        connection.close()  # this thread's own connection


def test_an_event_whose_publish_failed_reaches_every_socket_once_in_order(
    servers, relay, login_cookie
):
    a, b = servers
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    alice_cookie, bob_cookie = login_cookie(alice), login_cookie(bob)

    async def scenario():
        async with connect(a, alice_cookie) as wa, connect(b, bob_cookie) as wb:
            await wa.send(json.dumps({"type": "send", "room": "general", "body": "before"}))
            assert (await next_event(wa))["body"] == "before"
            assert (await next_event(wb))["body"] == "before"

            relay.cut()  # A's link to Redis is gone: its live path fails
            assert await next_event(wa) == {"type": "status", "live": False, "seq": None}
            await wa.send(
                json.dumps({"type": "send", "room": "general", "body": "lost", "nonce": "n-1"})
            )

            # B was never sent it; it notices the log is ahead and sends it from there.
            missed = await next_event(wb)
            assert (missed["type"], missed["body"], missed["nonce"]) == ("message", "lost", "n-1")
            assert (await next_event(wb))["type"] == "resumed"
            stored = await asyncio.to_thread(stored_id, alice, "lost")
            assert missed["id"] == stored

            relay.restore()  # A's sockets are told, then sent what they missed
            assert await next_event(wa) == {"type": "status", "live": True, "seq": None}
            acked = await next_event(wa)
            assert (acked["id"], acked["nonce"]) == (stored, "n-1")
            assert (await next_event(wa))["type"] == "resumed"

            await wb.send(json.dumps({"type": "send", "room": "general", "body": "after"}))
            after_a, after_b = await next_event(wa), await next_event(wb)
            assert after_a["body"] == after_b["body"] == "after"
            assert after_a["seq"] > missed["seq"]

            # Nothing arrives twice: the next event on both is the next message.
            await wa.send(json.dumps({"type": "send", "room": "general", "body": "last"}))
            assert (await next_event(wa))["body"] == "last"
            assert (await next_event(wb))["body"] == "last"

    asyncio.run(scenario())
