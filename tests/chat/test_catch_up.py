"""Catching up from the event log: a reconnecting socket misses nothing and sees nothing twice."""

import asyncio
import json
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import Q

from chat import selectors, services
from chat.models import Event, Membership, Message

pytestmark = pytest.mark.django_db(transaction=True)


def say(who, room: str, body: str) -> int:
    return services.message_send(author=who.user, room=room, body=body, nonce=None).message.id


async def receive_until(sock, kind: str, timeout: float = 10) -> list[dict]:
    """Every event up to and including the first of `kind`."""
    received = []
    while True:
        event = await sock.receive(timeout=timeout)
        received.append(event)
        if event["type"] == kind:
            return received


def visible_after(user, seq: int) -> list[int]:
    """What the contract says a reconnecting user is owed: every logged event after `seq`
    of the rooms they are in now or addressed to them, without messages deleted since."""
    rooms = Membership.objects.filter(user=user).values("room_id")
    return list(
        Event.objects.filter(Q(room_id__in=rooms) | Q(user=user), seq__gt=seq)
        .exclude(message__is_deleted=True)
        .order_by("seq")
        .values_list("seq", flat=True)
    )


# --- a client's state, and the same state loaded fresh --------------------------------


# What a room entry says of the user's reading, as `read` and `resumed` carry it.
COUNTS = ("last_read_id", "unread", "mentions", "thread_unread", "thread_mentions")


class ClientState:
    """What a client keeps: its sidebar (GET /api/rooms/) and each room's messages."""

    def __init__(self, me: str, rooms: list[dict], messages: dict[str, list[dict]]) -> None:
        self.me = me
        self.rooms = {r["slug"]: r for r in rooms}
        self.messages = {slug: {m["id"]: m for m in page} for slug, page in messages.items()}

    @classmethod
    def load(cls, who) -> "ClientState":
        rooms = who.rooms()
        return cls(who.name, rooms, {r["slug"]: who.history(r["slug"], limit=200) for r in rooms})

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one event idempotently, as the protocol asks of clients."""
        kind = event["type"]
        if kind == "message":
            message = {k: v for k, v in event.items() if k not in ("type", "seq")}
            self.messages.setdefault(event["room"], {})[event["id"]] = message
        elif kind == "message_edited":
            found = self.messages.get(event["room"], {}).get(event["id"])
            if found is not None:
                found.update({k: event[k] for k in ("body", "html", "edited", "mentions")})
        elif kind == "message_deleted":
            self.messages.get(event["room"], {}).pop(event["id"], None)
        elif kind == "reaction":
            found = self.messages.get(event["room"], {}).get(event["id"])
            if found is not None:
                if event["users"]:
                    found["reactions"][event["emoji"]] = event["users"]
                else:
                    found["reactions"].pop(event["emoji"], None)
        elif kind == "read":
            found = self.rooms.get(event["room"])
            if found is not None:
                found.update({k: event[k] for k in COUNTS})
        elif kind == "room":
            slug = event["room"]["slug"]
            if event["room"]["archived"]:  # archived rooms leave the sidebar
                self.rooms.pop(slug, None)
                self.messages.pop(slug, None)
            elif slug in self.rooms:
                self.rooms[slug].update(event["room"])
        elif kind == "member" and event["user"] == self.me:
            slug = event["room"]["slug"]
            if event["action"] in ("joined", "invited"):
                entry = {**dict.fromkeys(COUNTS, 0), "members": []}
                self.rooms[slug] = {**entry, **self.rooms.get(slug, {}), **event["room"]}
                self.messages.setdefault(slug, {})
            else:
                self.rooms.pop(slug, None)
                self.messages.pop(slug, None)
        elif kind == "resumed":
            for counts in event["rooms"]:
                found = self.rooms.get(counts["room"])
                if found is not None:
                    found.update({k: counts[k] for k in COUNTS})

    def snapshot(self) -> tuple[dict, dict]:
        messages = {
            slug: [page[mid] for mid in sorted(page)]
            for slug, page in self.messages.items()
            if slug in self.rooms
        }
        return self.rooms, messages


def fresh(who) -> tuple[dict, dict]:
    return ClientState.load(who).snapshot()


def describe(event: dict) -> tuple:
    """An event, briefly, for comparing sequences."""
    kind = event["type"]
    if kind in ("message", "message_edited", "message_deleted"):
        return (kind, event["id"])
    if kind == "reaction":
        return (kind, event["id"], event["emoji"], tuple(event["users"]))
    if kind == "member":
        return (kind, event["room"]["slug"], event["user"], event["action"])
    if kind == "room":
        return (kind, event["room"]["slug"])
    return (kind, event.get("room"))


# --- the central scenario -------------------------------------------------------------


async def test_a_reconnecting_client_gets_every_missed_change_once_in_order(
    people, channel, sockets
):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("team", alice, bob, private=True)
    await sync_to_async(channel)("old", alice, bob)
    for room in ("general", "team", "old"):
        await sync_to_async(say)(alice, room, f"before, in {room}")
    doomed = await sync_to_async(say)(alice, "general", "about to go")

    # Bob loads the page and opens his socket from the page's position.
    page_seq = await sync_to_async(selectors.latest_seq)()
    state = await sync_to_async(ClientState.load)(bob)
    laptop = await sockets(bob, seq=page_seq)
    resumed = await laptop.receive()
    assert resumed["type"] == "resumed" and resumed["seq"] == page_seq
    state.apply(resumed)
    seen = await sync_to_async(say)(alice, "general", "seen live")
    live = await laptop.receive()
    assert live["id"] == seen
    state.apply(live)
    last_seen = live["seq"]
    await laptop.close()

    # While bob is away.
    def meanwhile() -> dict[str, int]:
        ids = {"m1": say(alice, "general", "while you were out, @bob")}
        say(alice, "team", "team talk bob will never see")
        services.message_edit(actor=alice.user, message_id=seen, body="seen live (edited)")
        services.message_edit(actor=alice.user, message_id=ids["m1"], body="still out, @bob?")
        services.message_delete(actor=alice.user, message_id=doomed)
        ids["m2"] = say(alice, "general", "sent and deleted while away")
        services.message_delete(actor=alice.user, message_id=ids["m2"])
        services.reaction_toggle(actor=alice.user, message_id=seen, emoji="👍")
        services.reaction_toggle(actor=alice.user, message_id=ids["m1"], emoji="🎉")
        services.reaction_toggle(actor=alice.user, message_id=ids["m1"], emoji="👀")
        services.reaction_toggle(actor=alice.user, message_id=ids["m1"], emoji="👀")
        services.room_member_remove(actor=alice.user, room="team", username="bob")
        say(alice, "team", "after bob left")
        services.room_create(actor=alice.user, name="new", private=True)
        ids["n1"] = say(alice, "new", "before bob arrives")
        services.room_invite(actor=alice.user, room="new", username="bob")
        services.room_update(actor=alice.user, room="new", topic="fresh")
        ids["n2"] = say(alice, "new", "welcome @bob")
        return ids

    ids = await sync_to_async(meanwhile)()
    phone = await sockets(bob)
    await phone.send({"type": "read", "room": "general", "id": ids["m1"]})
    await receive_until(phone, "read")

    def later() -> None:
        services.room_update(actor=alice.user, room="old", archived=True)
        ids["m3"] = say(alice, "general", "last one")

    await sync_to_async(later)()

    # Bob's laptop comes back.
    laptop = await sockets(bob, seq=last_seen)
    replay = await receive_until(laptop, "resumed")
    events, resumed = replay[:-1], replay[-1]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "each event once, in seq order"
    assert seqs == await sync_to_async(visible_after)(bob.user, last_seen)
    assert resumed["seq"] == seqs[-1]
    assert [describe(e) for e in events] == [
        ("message", ids["m1"]),
        ("message_edited", seen),
        ("message_edited", ids["m1"]),
        ("message_deleted", doomed),
        ("message_deleted", ids["m2"]),
        ("reaction", seen, "👍", ("alice",)),
        ("reaction", ids["m1"], "🎉", ("alice",)),
        ("reaction", ids["m1"], "👀", ("alice",)),
        ("reaction", ids["m1"], "👀", ()),
        ("member", "team", "bob", "removed"),
        ("member", "new", "alice", "joined"),
        ("message", ids["n1"]),
        ("member", "new", "bob", "invited"),
        ("room", "new"),
        ("message", ids["n2"]),
        ("read", "general"),
        ("room", "old"),
        ("message", ids["m3"]),
    ]
    # Replayed messages are as they are now.
    assert events[0]["body"] == "still out, @bob?" and events[0]["edited"] is not None
    assert events[0]["reactions"] == {"🎉": ["alice"]}

    for event in replay:
        state.apply(event)
    assert state.snapshot() == await sync_to_async(fresh)(bob)
    rooms, _ = state.snapshot()
    assert sorted(rooms) == ["general", "new"]
    assert (rooms["general"]["unread"], rooms["general"]["mentions"]) == (1, 0)
    assert (rooms["new"]["unread"], rooms["new"]["mentions"]) == (1, 1)

    # Then live, with nothing repeated.
    await sync_to_async(say)(alice, "new", "live again")
    after = await laptop.receive()
    assert (after["body"], after["seq"] > resumed["seq"]) == ("live again", True)


# --- long and busy replays ------------------------------------------------------------


async def test_a_replay_longer_than_a_page_arrives_complete_and_in_order(people, sockets):
    alice, bob = await people("alice", "bob")
    start = await sync_to_async(selectors.latest_seq)()

    def lots() -> None:
        for i in range(900):
            mid = say(alice, "general", f"m{i}")
            if i % 5 == 0:
                services.reaction_toggle(actor=alice.user, message_id=mid, emoji="👍")
            if i % 50 == 0:
                services.message_edit(actor=alice.user, message_id=mid, body=f"m{i} edited")

    await sync_to_async(lots)()
    expected = await sync_to_async(visible_after)(bob.user, start)
    assert len(expected) > 2 * 500

    sock = await sockets(bob, seq=start)
    replay = await receive_until(sock, "resumed", timeout=30)
    assert [e["seq"] for e in replay[:-1]] == expected
    assert replay[-1]["seq"] == expected[-1]
    bodies = [e["body"] for e in replay if e["type"] == "message"]
    assert bodies == [f"m{i} edited" if i % 50 == 0 else f"m{i}" for i in range(900)]


async def test_live_events_during_a_replay_are_neither_lost_nor_repeated(people, sockets):
    alice, bob, carol = await people("alice", "bob", "carol")
    start = await sync_to_async(selectors.latest_seq)()
    await sync_to_async(services.message_send_many)(
        [services.SendRequest(alice.user, "general", f"old {i}", None) for i in range(1500)]
    )

    def talk(who, n: int) -> None:
        try:
            for i in range(n):
                say(who, "general", f"{who.name} live {i}")
        finally:
            connection.close()  # a thread of its own: give its connection back

    # The replay starts with 1500 events to send; meanwhile two people keep talking,
    # from threads of their own and from a socket.
    carol_socket = await sockets(carol)
    sock = await sockets(bob, seq=start)
    talkers = [
        asyncio.create_task(sync_to_async(talk, thread_sensitive=False)(alice, 40)),
        asyncio.create_task(sync_to_async(talk, thread_sensitive=False)(carol, 40)),
    ]
    for i in range(15):
        await carol_socket.send({"type": "send", "room": "general", "body": f"socket {i}"})
    await asyncio.gather(*talkers)

    received = await receive_until(sock, "resumed", timeout=30)
    total = 1500 + 40 + 40 + 15
    while sum(e["type"] == "message" for e in received) < total:
        received.append(await sock.receive(timeout=10))
    seqs = [e["seq"] for e in received if e["type"] != "resumed"]
    assert seqs == sorted(set(seqs))
    assert seqs == await sync_to_async(visible_after)(bob.user, start)
    # Nothing more is on the way: the next event is a new one.
    await sync_to_async(say)(alice, "general", "marker")
    assert (await sock.receive())["body"] == "marker"


async def test_the_room_page_position_catches_what_happened_before_the_socket_opened(
    people, sockets
):
    alice, bob = await people("alice", "bob")
    await sync_to_async(say)(alice, "general", "already on the page")
    page = (await sync_to_async(bob.get)("/r/general/")).content.decode()
    match = re.search(r'<script id="chat-config" type="application/json">(.*?)</script>', page)
    config = json.loads(match.group(1))
    assert "already on the page" in page

    # Between the page and the socket: a message, an edit, a reaction.
    mid = await sync_to_async(say)(alice, "general", "in between")
    await sync_to_async(services.message_edit)(actor=alice.user, message_id=mid, body="edited")
    await sync_to_async(services.reaction_toggle)(actor=alice.user, message_id=mid, emoji="👍")

    sock = await sockets(bob, seq=config["seq"])
    replay = await receive_until(sock, "resumed")
    assert [describe(e) for e in replay] == [
        ("message", mid),
        ("message_edited", mid),
        ("reaction", mid, "👍", ("alice",)),
        ("resumed", None),
    ]
    assert replay[0]["body"] == "edited"
    assert replay[-1]["rooms"] == [
        {
            "room": "general",
            "last_read_id": 0,
            "unread": 2,
            "mentions": 0,
            "thread_unread": 0,
            "thread_mentions": 0,
        }
    ]


async def test_a_socket_without_seq_gets_no_replay(people, sockets):
    alice, bob = await people("alice", "bob")
    await sync_to_async(say)(alice, "general", "history is the API's job")
    sock = await sockets(bob)
    await sync_to_async(say)(alice, "general", "live")
    assert (await sock.receive())["body"] == "live"


async def test_a_watched_public_room_is_replayed_too(people, channel, sockets):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("random", alice)
    await sync_to_async(channel)("secret", alice, private=True)
    start = await sync_to_async(selectors.latest_seq)()
    news = await sync_to_async(say)(alice, "random", "news")
    await sync_to_async(say)(alice, "secret", "not for bob")
    sock = await sockets(bob, seq=start, watch="random")
    replay = await receive_until(sock, "resumed")
    assert [describe(e) for e in replay] == [("message", news), ("resumed", None)]
    # Watching a private room of others is the same as watching nothing.
    hidden = await sockets(bob, seq=start, watch="secret")
    assert [e["type"] for e in await receive_until(hidden, "resumed")] == ["resumed"]


def test_the_log_records_message_rows_not_copies(person):
    # A replay renders messages as they are now, so a deletion leaves nothing readable.
    alice = person("alice")
    mid = say(alice, "general", "secret plans")
    services.message_delete(actor=alice.user, message_id=mid)
    assert Message.objects.get(pk=mid).body == ""
    assert "secret plans" not in json.dumps(list(Event.objects.values("data")))
