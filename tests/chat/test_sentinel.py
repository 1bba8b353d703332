"""Redis behind Sentinel: a failover mid-conversation loses nothing and doubles nothing.

A private primary, its replica and a sentinel (Debian's redis-sentinel);
two real server processes configured with REDIS_SENTINELS; the primary is
killed while people chat. Sends keep committing, every socket is told
`status` live:false then live:true, and each catches up from the log.
"""

import asyncio
import json
import os
import time

import pytest
import websockets
from django.db import connection

from chat.models import Message
from tests.factories import UserFactory
from tests.faults import PrivateRedis, PrivateSentinel
from tests.servers import start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
    pytest.mark.sentinel,
]


def replicated(replica: PrivateRedis) -> bool:
    import redis

    with redis.Redis(port=replica.port, socket_timeout=2, decode_responses=True) as client:
        return client.info("replication").get("master_link_status") == "up"


def wait_for(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.1)  # polling a service's state, not waiting for an event


@pytest.fixture
def sentinel_setup():
    name = f"tc{os.getpid()}"
    primary = PrivateRedis().start()
    replica = PrivateRedis().start("--replicaof", "127.0.0.1", str(primary.port))
    sentinel = None
    try:
        wait_for(lambda: replicated(replica), "the replica in sync")
        sentinel = PrivateSentinel(name, primary.port).start()
        wait_for(
            lambda: len(sentinel.command("SENTINEL", "replicas", name)) == 1,
            "the sentinel knowing the replica",
        )
        yield primary, replica, sentinel
    finally:
        for process in (sentinel, replica, primary):
            if process is not None:
                process.stop()


def connect(server, cookie):
    return websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": cookie, "Origin": server.http_url},
        open_timeout=10,
    )


async def frame(ws) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=40))
        if event["type"] not in ("presence", "typing"):
            return event


def stored_bodies() -> list[str]:
    try:
        return list(Message.objects.order_by("id").values_list("body", flat=True))
    finally:
        connection.close()  # this thread's own connection


def test_a_failover_mid_conversation_loses_nothing(sentinel_setup, login_cookie):
    primary, replica, sentinel = sentinel_setup
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{primary.port}/0",
        "REDIS_SENTINELS": f"127.0.0.1:{sentinel.port}",
        "REDIS_SENTINEL_MASTER": sentinel.name,
        "CHANNEL_LAYER_PREFIX": f"tc-sentinel-{os.getpid()}",
    }
    a, b = start_server(**env), start_server(**env)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    cookies = login_cookie(alice), login_cookie(bob)

    async def scenario():
        async with connect(a, cookies[0]) as wa, connect(b, cookies[1]) as wb:
            seen: dict[str, list] = {"alice": [], "bob": []}

            async def until(ws, who: str, done) -> None:
                while not done(seen[who]):
                    seen[who].append(await frame(ws))

            def bodies(events) -> list[str]:
                return [e["body"] for e in events if e["type"] == "message"]

            await wa.send(json.dumps({"type": "send", "room": "general", "body": "m0"}))
            await until(wa, "alice", lambda s: "m0" in bodies(s))
            await until(wb, "bob", lambda s: "m0" in bodies(s))

            primary.kill()  # the primary dies mid-conversation
            # One message through each process while the live path is down,
            # m1 stored before m2 is sent (sent at once, either may commit first).
            for i, ws in ((1, wa), (2, wb)):
                frame_ = {"type": "send", "room": "general", "body": f"m{i}", "nonce": f"n{i}"}
                await ws.send(json.dumps(frame_))
                for _ in range(200):
                    if f"m{i}" in await asyncio.to_thread(stored_bodies):
                        break
                    await asyncio.sleep(0.1)  # polling the database for the commit
                else:
                    pytest.fail(f"m{i} did not commit during the failover")

            # The sentinel promotes the replica; both processes follow it.
            all_three = lambda s: {"m1", "m2"} <= set(bodies(s))  # noqa: E731
            await asyncio.gather(until(wa, "alice", all_three), until(wb, "bob", all_three))
            assert sentinel.primary() == replica.port

            await wb.send(json.dumps({"type": "send", "room": "general", "body": "m3"}))
            await until(wa, "alice", lambda s: "m3" in bodies(s))
            await until(wb, "bob", lambda s: "m3" in bodies(s))
            return seen

    seen = asyncio.run(scenario())
    a.stop()
    b.stop()
    for who, events in seen.items():
        statuses = [e["live"] for e in events if e["type"] == "status"]
        assert statuses and statuses[0] is False and statuses[-1] is True, (who, statuses)
        messages = [e for e in events if e["type"] == "message"]
        assert [m["body"] for m in messages] == ["m0", "m1", "m2", "m3"], who  # once, in order
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(seqs), who
    assert stored_bodies() == ["m0", "m1", "m2", "m3"]
