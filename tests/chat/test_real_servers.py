"""Two real daphne processes sharing Redis and PostgreSQL behave as one chat."""

import asyncio
import json

import pytest
import websockets

from tests.factories import UserFactory
from tests.servers import start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
]


@pytest.fixture
def two_servers():
    servers = [start_server(), start_server()]
    yield servers
    for server in servers:
        server.stop()


def connect(server, cookie, origin=None):
    origin = origin or f"http://127.0.0.1:{server.port}"
    return websockets.connect(
        server.ws_url, additional_headers={"Cookie": cookie, "Origin": origin}, open_timeout=10
    )


async def next_event(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=10))


def test_clients_on_two_processes_see_each_others_messages(two_servers, login_cookie):
    a, b = two_servers
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    alice_cookie, bob_cookie = login_cookie(alice), login_cookie(bob)

    async def scenario():
        async with connect(a, alice_cookie) as wa, connect(b, bob_cookie) as wb:
            await wa.send(json.dumps({"type": "send", "room": "general", "body": "from A"}))
            got_b = await next_event(wb)
            assert (got_b["user"], got_b["body"]) == ("alice", "from A")
            assert (await next_event(wa))["id"] == got_b["id"]

            await wb.send(json.dumps({"type": "send", "room": "general", "body": "from B"}))
            got_a = await next_event(wa)
            assert (got_a["user"], got_a["body"]) == ("bob", "from B")
            assert (await next_event(wb))["id"] == got_a["id"]

    asyncio.run(scenario())


def test_concurrent_senders_on_two_processes_are_delivered_in_id_order(two_servers, login_cookie):
    a, b = two_servers
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    alice_cookie, bob_cookie = login_cookie(alice), login_cookie(bob)
    per_sender = 15

    async def scenario():
        async with connect(a, alice_cookie) as wa, connect(b, bob_cookie) as wb:

            async def blast(ws, who):
                for i in range(per_sender):
                    await ws.send(
                        json.dumps({"type": "send", "room": "general", "body": f"{who}{i}"})
                    )

            async def collect(ws):
                return [await next_event(ws) for _ in range(2 * per_sender)]

            _, _, seen_a, seen_b = await asyncio.gather(
                blast(wa, "a"), blast(wb, "b"), collect(wa), collect(wb)
            )
            return seen_a, seen_b

    seen_a, seen_b = asyncio.run(scenario())
    for seen in (seen_a, seen_b):
        ids = [event["id"] for event in seen]
        assert ids == sorted(ids)
        assert len(set(ids)) == 2 * per_sender
    assert [e["id"] for e in seen_a] == [e["id"] for e in seen_b]


def test_real_server_refuses_anonymous_and_foreign_origin_handshakes_with_403(
    two_servers, login_cookie
):
    a, _ = two_servers
    cookie = login_cookie(UserFactory())

    async def status_of(cookie, origin):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(a, cookie, origin):
                pass
        return refused.value.response.status_code

    assert asyncio.run(status_of("sessionid=none", None)) == 403
    assert asyncio.run(status_of(cookie, "http://evil.example")) == 403


def test_frames_up_to_128_kib_are_read_and_larger_ones_refused(two_servers, login_cookie):
    a, _ = two_servers
    cookie = login_cookie(UserFactory())
    frame = json.dumps({"type": "send", "room": "general", "body": "", "nonce": "big"})
    padding = 128 * 1024 - len(frame)
    at_limit = frame.replace('"body": ""', '"body": "' + "x" * padding + '"')
    assert len(at_limit.encode()) == 128 * 1024

    async def scenario():
        async with connect(a, cookie) as ws:
            await ws.send(at_limit)
            reply = await next_event(ws)
            assert (reply["code"], reply["nonce"]) == ("too_long", "big")
            await ws.send("y" * (128 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=10)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(scenario()) in (1009, None)
