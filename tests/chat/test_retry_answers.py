"""A retried send reaches its socket once, whichever comes first: the answer or the event.

A retry can find its message stored by the first try while that message's
event is still on its way: the first try was in hand of a server that was
draining for a restart, and committed it after the client had reconnected
elsewhere and resent. The socket then gets both the retry's answer (no seq)
and the live event (its seq); they are the same message, and a client that
counts what it sees must see it once.

Events are logged for real, but their publish is captured instead of sent,
so the test hands the event to this process's fan-out when it chooses.
"""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from chat import eventlog, events, services
from chat.realtime.fanout import local_fanout
from tests.chat.sockets import connect
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def users(login_cookie):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    return (alice, login_cookie(alice)), (bob, login_cookie(bob))


async def stored_unpublished(monkeypatch, author, body: str, nonce: str):
    """A message stored (and logged) as a first try would; its publish is returned, not sent."""
    payloads: list[dict] = []
    with monkeypatch.context() as held:
        held.setattr(eventlog, "_group_send", payloads.append)
        sent = await sync_to_async(services.message_send)(
            author=author, room="general", body=body, nonce=nonce
        )
    [payload] = payloads
    return sent.message, payload


def held_lookup(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """A retry's look-up that, once started (`looking`), waits for the test (`go_on`)."""
    looking, go_on = threading.Event(), threading.Event()
    answer = events.message_retry_answer

    def slow_answer(found):
        looking.set()
        assert go_on.wait(10)
        return answer(found)

    monkeypatch.setattr(events, "message_retry_answer", slow_answer)
    return looking, go_on


async def next_message(sock) -> dict:
    while True:
        event = await sock.receive()
        if event["type"] == "message":
            return event


async def the_next_message_is(sock, body: str) -> None:
    """Nothing else reaches `sock` before a message sent now (one socket's events keep order)."""
    await sock.send({"type": "send", "room": "general", "body": body})
    assert (await next_message(sock))["body"] == body


async def test_the_event_of_a_message_already_answered_to_a_retry_is_not_sent_again(
    users, monkeypatch
):
    (alice, cookie), (_, bob_cookie) = users
    mine, bobs = await connect(cookie), await connect(bob_cookie)
    message, payload = await stored_unpublished(monkeypatch, alice, "first try", "n-1")

    await mine.send({"type": "send", "room": "general", "body": "first try", "nonce": "n-1"})
    answer = await next_message(mine)
    assert (answer["id"], answer["nonce"], answer["seq"]) == (message.id, "n-1", None)

    # The first try's event arrives late: everyone else gets it, alice's socket had it.
    await local_fanout().handle(payload)
    live = await next_message(bobs)
    assert (live["id"], live["seq"]) == (
        message.id,
        eventlog.Item.from_wire(payload["events"][0]).seq,
    )
    await the_next_message_is(mine, "after")
    # Her next socket is a new stream: a catch-up from before sends the message.
    resumed = await connect(cookie, path=f"/ws/chat/?seq={live['seq'] - 1}")
    assert (await next_message(resumed))["id"] == message.id
    for sock in (mine, bobs, resumed):
        await sock.close()


async def test_an_event_that_arrives_while_a_retry_is_looked_up_is_its_answer(users, monkeypatch):
    (alice, cookie), _ = users
    mine = await connect(cookie)
    message, payload = await stored_unpublished(monkeypatch, alice, "first try", "n-2")
    looking, go_on = held_lookup(monkeypatch)
    await mine.send({"type": "send", "room": "general", "body": "first try", "nonce": "n-2"})
    assert await asyncio.to_thread(looking.wait, 10)
    await local_fanout().handle(payload)
    live = await next_message(mine)
    assert (live["id"], live["nonce"]) == (message.id, "n-2")
    assert live["seq"] is not None
    go_on.set()
    await the_next_message_is(mine, "after")
    await mine.close()


async def test_a_message_answered_to_a_retry_is_left_out_of_a_later_catch_up(users, monkeypatch):
    (alice, cookie), (_, bob_cookie) = users
    mine, bobs = await connect(cookie), await connect(bob_cookie)
    message, _lost = await stored_unpublished(monkeypatch, alice, "first try", "n-3")

    await mine.send({"type": "send", "room": "general", "body": "first try", "nonce": "n-3"})
    assert (await next_message(mine))["id"] == message.id
    # The first try's publish is lost; the next event shows the gap and both
    # sockets are sent it from the log: alice's socket without the message.
    _, later = await stored_unpublished(monkeypatch, alice, "second", "n-4")
    await local_fanout().handle(later)
    assert [(await next_message(bobs))["body"] for _ in range(2)] == ["first try", "second"]
    assert (await next_message(mine))["body"] == "second"
    await the_next_message_is(mine, "after")
    for sock in (mine, bobs):
        await sock.close()


async def test_a_socket_that_began_after_the_message_is_answered_whatever_comes_meanwhile(
    users, monkeypatch
):
    """A bot reconnecting without a position resends: its stream never had the message."""
    (_, cookie), (bob, _) = users
    frame = {"type": "send", "room": "general", "body": "stored", "nonce": "n-6"}
    first = await connect(cookie)
    await first.send(frame)
    stored = await next_message(first)
    await first.close()
    bot = await connect(cookie)
    _, newer = await stored_unpublished(monkeypatch, bob, "meanwhile", "b-1")
    looking, go_on = held_lookup(monkeypatch)
    await bot.send(frame)
    assert await asyncio.to_thread(looking.wait, 10)
    # A newer event reaches the bot while its retry is looked up.
    await local_fanout().handle(newer)
    assert (await next_message(bot))["body"] == "meanwhile"
    go_on.set()
    assert await next_message(bot) == {**stored, "seq": None}
    await bot.close()


async def test_a_retry_of_a_message_the_socket_already_had_is_still_answered(users):
    (_, cookie), _ = users
    mine = await connect(cookie)
    frame = {"type": "send", "room": "general", "body": "once", "nonce": "n-5"}
    await mine.send(frame)
    first = await next_message(mine)
    await mine.send(frame)
    assert await next_message(mine) == {**first, "seq": None}
    await the_next_message_is(mine, "after")
    await mine.close()
