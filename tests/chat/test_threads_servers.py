"""Thread counts across two real daphne processes sharing Redis and PostgreSQL."""

import asyncio
import json

import pytest
from django.test import Client

from chat import services
from tests.chat.test_real_servers import connect, next_event, two_servers  # noqa: F401
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
]

PER_SENDER = 10


def test_thread_counts_agree_on_both_processes_after_concurrent_replies(
    two_servers,  # noqa: F811
    login_cookie,
):
    a, b = two_servers
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    root = services.message_send(author=carol, room="general", body="plans?", nonce=None).message
    cookies = {u.username: login_cookie(u) for u in (alice, bob, carol)}

    async def scenario():
        async with (
            connect(a, cookies["alice"]) as wa,
            connect(b, cookies["bob"]) as wb,
            connect(a, cookies["carol"]) as ca,
            connect(b, cookies["carol"]) as cb,
        ):

            async def blast(ws, who):
                for i in range(PER_SENDER):
                    frame = {"type": "send", "room": "general", "body": f"{who}{i}"}
                    await ws.send(json.dumps({**frame, "thread": root.id, "nonce": f"{who}{i}"}))

            async def counts(ws):
                """Carol's thread_read events on this socket, until all the replies count."""
                seen = []
                while not seen or seen[-1]["unread"] < 2 * PER_SENDER:
                    event = await next_event(ws)
                    if event["type"] == "thread_read":
                        seen.append(event)
                return seen

            _, _, on_a, on_b = await asyncio.gather(
                blast(wa, "a"), blast(wb, "b"), counts(ca), counts(cb)
            )
            return on_a, on_b

    on_a, on_b = asyncio.run(scenario())
    # Both processes delivered the same logged counts, in the same order, each exact
    # at its place in the log (one per batch of replies stored together): growing,
    # and ending at every reply, none doubled or lost.
    assert [(e["seq"], e["unread"]) for e in on_a] == [(e["seq"], e["unread"]) for e in on_b]
    unread = [e["unread"] for e in on_a]
    assert unread == sorted(set(unread)) and unread[-1] == 2 * PER_SENDER
    assert all(e["root"] == root.id and e["following"] for e in on_a)
    # And the database agrees, whichever process is asked.
    client = Client()
    client.force_login(carol)
    [general] = [r for r in client.get("/api/rooms/").json()["rooms"] if r["slug"] == "general"]
    assert general["thread_unread"] == 2 * PER_SENDER
    [thread] = client.get("/api/threads/").json()["threads"]
    assert (thread["unread"], thread["root"]["replies"]) == (2 * PER_SENDER, 2 * PER_SENDER)
    assert len(thread["root"]["repliers"]) == 2
