"""A publish that fails is not a silent gap: every process sends the event from the log.

Two real server processes on PostgreSQL and Redis; process A reaches Redis
through a relay the test cuts, so what A commits meanwhile is published to
nobody, A's own sockets included.
"""

import asyncio
import json
import os
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


@pytest.fixture
def servers_b_waits_for_the_next_event(relay):
    # B never looks at the log by itself: only the next event can show it the gap.
    a = start_server(REDIS_URL=through(relay, settings.REDIS_URL), CHAT_GAP_CHECK_SECONDS="0.5")
    b = start_server(CHAT_GAP_CHECK_SECONDS="3600")
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


async def frames_until(ws, wanted: set[str], seen: list[dict]) -> None:
    """Read `ws` (recording every frame but presence) until the message bodies `wanted` all came."""
    bodies = set()
    while not wanted <= bodies:
        event = await next_event(ws)
        seen.append(event)
        if event["type"] == "message":
            bodies.add(event["body"])


async def back_live(ws, seen: list[dict]) -> None:
    """Read `ws` until it was told `status` live:true (unless it already was)."""
    while not any(e == {"type": "status", "live": True, "seq": None} for e in seen):
        seen.append(await next_event(ws))


def test_one_lost_publish_among_others_reaches_every_socket_on_both_processes_once(
    servers_b_waits_for_the_next_event, relay, login_cookie
):
    a, b = servers_b_waits_for_the_next_event
    names = ["alice", "carol", "bob", "dave"]
    people = {name: UserFactory(username=name) for name in names}
    cookies = {name: login_cookie(user) for name, user in people.items()}
    lost_body = f"lost-{os.getpid()}-{id(relay)}"
    sent = ["one", lost_body, "three", "four"]

    async def scenario():
        on_a = [connect(a, cookies["alice"]), connect(a, cookies["carol"])]
        on_b = [connect(b, cookies["bob"]), connect(b, cookies["dave"]), connect(b, cookies["bob"])]
        sockets = [await c.__aenter__() for c in (*on_a, *on_b)]
        try:
            sender = sockets[0]
            # Every socket is live: each hears a first message.
            await sender.send(json.dumps({"type": "send", "room": "general", "body": "hello"}))
            for ws in sockets:
                await frames_until(ws, {"hello"}, [])

            # The publish of one message never reaches Redis (its connection
            # drops mid-command, the retry too); those before and after do.
            relay.refuse_carrying(lost_body.encode())
            seen: list[list[dict]] = [[] for _ in sockets]
            for body in sent:
                # One at a time (each its own publish): B is sent "three" right
                # after "one", and must see the hole itself.
                await sender.send(json.dumps({"type": "send", "room": "general", "body": body}))
                await frames_until(sender, {body}, seen[0])
            await asyncio.gather(
                *(
                    frames_until(ws, set(sent), log)
                    for ws, log in zip(sockets[1:], seen[1:], strict=True)
                )
            )
            # The publisher's sockets are told its live path failed and came back.
            await asyncio.gather(
                *(back_live(ws, log) for ws, log in zip(sockets[:2], seen[:2], strict=True))
            )
            # One more after everything settled: no late copy comes before it.
            relay.refuse_carrying()
            for ws, log in zip(sockets, seen, strict=True):
                if ws is sockets[0]:
                    await ws.send(json.dumps({"type": "send", "room": "general", "body": "end"}))
                await frames_until(ws, {"end"}, log)
            return seen
        finally:
            for ws in sockets:
                await ws.close()

    seen = asyncio.run(scenario())
    assert relay.refused >= 1  # the publish really failed
    stored = [stored_id(people["alice"], body) for body in [*sent, "end"]]
    for index, log in enumerate(seen):
        messages = [event for event in log if event["type"] == "message"]
        # Every event, in order, exactly once, on every socket of both processes.
        assert [m["id"] for m in messages] == stored, (index, messages)
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(set(seqs))
        statuses = [event["live"] for event in log if event["type"] == "status"]
        if index < 2:
            assert statuses == [False, True], log
        else:
            assert statuses == [], log  # B's live path never failed
