"""What one busy or hostile client can make the server do: bounded, and nothing for refusals.

Read markers and typing hints come from every tab all the time; a client can
also send them as fast as it likes. Those past the per-user buckets are
refused without touching the database, a marker that does not move takes no
lock, and many moves end where the last one put the marker, in every tab.
"""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import eventlog, services
from chat.models import Event, Membership
from chat.ratelimit import SendRateLimiter
from chat.realtime import consumers
from chat.realtime.fanout import local_fanout
from chat.services import ReadRequest
from teamchat import metrics

pytestmark = pytest.mark.django_db(transaction=True)


def say(who, room: str, body: str) -> int:
    return services.message_send(author=who.user, room=room, body=body, nonce=None).message.id


def queries_run() -> float:
    return metrics.DB_QUERIES._value.get()


@pytest.fixture
async def no_background_queries(monkeypatch):
    """The process's periodic session re-check would query meanwhile; not during these tests."""
    fanout = local_fanout()

    async def nothing():
        return None

    monkeypatch.setattr(fanout, "recheck_sessions", nothing)


@pytest.fixture
def lock_entries(monkeypatch):
    """How many times the global ordering lock was taken."""
    taken = []
    real = eventlog.ordered

    def counting(**kwargs):
        taken.append(1)
        return real(**kwargs)

    monkeypatch.setattr(eventlog, "ordered", counting)
    return taken


async def test_reads_and_typing_past_their_buckets_are_refused_without_a_query(
    people, sockets, monkeypatch, no_background_queries
):
    monkeypatch.setattr(consumers, "read_limiter", SendRateLimiter(1.0, 0))
    monkeypatch.setattr(consumers, "typing_limiter", SendRateLimiter(1.0, 0))
    alice, bob = await people("alice", "bob")
    mid = await sync_to_async(say)(bob, "general", "read me")
    sock = await sockets(alice)
    before = queries_run()
    for i in range(50):
        await sock.send({"type": "read", "room": "general", "id": mid, "nonce": f"r{i}"})
        await sock.send({"type": "typing", "room": "general", "nonce": f"t{i}"})
    answers = [await sock.receive() for _ in range(100)]
    assert {(a["type"], a["code"]) for a in answers} == {("error", "rate_limited")}
    assert sorted(a["nonce"] for a in answers) == sorted(
        [f"r{i}" for i in range(50)] + [f"t{i}" for i in range(50)]
    )
    assert queries_run() == before
    # The refusals cost nothing; the marker never moved.
    marker = await sync_to_async(
        Membership.objects.filter(user=alice.user, room__slug="general").get
    )()
    assert marker.last_read_id != mid


async def test_typing_in_a_room_the_socket_carries_costs_no_query(
    people, sockets, no_background_queries
):
    alice, bob = await people("alice", "bob")
    a = await sockets(alice)
    b = await sockets(bob)
    # The process counts the room's members once (a minute), for whoever types first.
    await b.send({"type": "typing", "room": "general"})
    assert (await a.receive())["user"] == "bob"
    before = queries_run()
    await a.send({"type": "typing", "room": "general"})
    assert await b.receive() == {"type": "typing", "room": "general", "user": "alice", "seq": None}
    assert queries_run() == before


async def test_a_read_that_does_not_move_the_marker_takes_no_lock_and_tells_nobody(
    people, channel, sockets, lock_entries
):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("design", alice, bob)
    mid = await sync_to_async(say)(bob, "general", "hello")
    elsewhere = await sync_to_async(say)(bob, "design", "in another room")
    a = await sockets(alice)
    before = len(lock_entries)
    await a.send({"type": "read", "room": "general", "id": mid})
    moved = await a.receive()
    assert (moved["type"], moved["last_read_id"], moved["unread"]) == ("read", mid, 0)
    taken = len(lock_entries)
    assert taken == before + 1
    events = await sync_to_async(Event.objects.filter(kind="read").count)()

    for _ in range(5):
        await a.send({"type": "read", "room": "general", "id": mid})
    # Past the newest message is where the marker already is, too.
    await a.send({"type": "read", "room": "general", "id": mid + 1000})
    # A move in another room, asked for last: its answer comes once the
    # requests before it are dealt with (a new message in #general instead
    # would give the read past the newest one somewhere to move to).
    await a.send({"type": "read", "room": "design", "id": elsewhere})
    moved = await a.receive()
    assert (moved["type"], moved["room"], moved["last_read_id"]) == ("read", "design", elsewhere)
    assert len(lock_entries) == taken + 1  # that move only
    assert await sync_to_async(Event.objects.filter(kind="read").count)() == events + 1


async def test_many_marker_moves_end_where_the_last_put_it_in_every_tab(people, sockets):
    alice, bob = await people("alice", "bob")
    ids = [await sync_to_async(say)(bob, "general", f"m{i}") for i in range(6)]
    one = await sockets(alice)
    two = await sockets(alice)
    for mid in ids:
        await one.send({"type": "read", "room": "general", "id": mid})

    async def markers_until_last(sock) -> list[tuple[int, int]]:
        seen = []
        while not seen or seen[-1][0] != ids[-1]:
            event = await sock.receive()
            assert event["type"] == "read", event
            seen.append((event["last_read_id"], event["unread"]))
        return seen

    for sock in (one, two):
        seen = await markers_until_last(sock)
        # In order, each with its exact count, ending read up to the newest.
        assert seen == sorted(seen) and seen[-1] == (ids[-1], 0)
        assert all(unread == len([i for i in ids if i > marker]) for marker, unread in seen)

    # "Unread from here" from the other tab: both see the same counts.
    await two.send({"type": "read", "room": "general", "id": ids[2]})
    for sock in (one, two):
        event = await sock.receive()
        assert (event["last_read_id"], event["unread"]) == (ids[2], 3)


def test_a_batch_of_read_markers_costs_the_same_queries_for_1_or_40_people(person):
    from chat.models import Room

    room = Room.objects.get(slug="general")
    people = [person(f"reader{i}") for i in range(40)]
    mid = say(people[0], "general", "read me")

    def queries_for(readers) -> int:
        requests = [ReadRequest(p.user, "general", mid) for p in readers]
        with CaptureQueriesContext(connection) as ctx:
            results = services.read_markers_set(requests)
        assert all(r is None or r["last_read_id"] == mid for r in results)
        return len(ctx)

    assert queries_for(people[1:2]) == queries_for(people[2:])
    assert set(
        Membership.objects.filter(room=room, user__in=[p.user for p in people[1:]]).values_list(
            "last_read_id", flat=True
        )
    ) == {mid}


def test_the_last_request_per_marker_in_a_batch_wins(person):
    alice, bob = person("alice"), person("bob")
    ids = [say(bob, "general", f"m{i}") for i in range(3)]
    results = services.read_markers_set(
        [
            ReadRequest(alice.user, "general", ids[2]),
            ReadRequest(alice.user, "general", ids[0]),
            ReadRequest(alice.user, "nowhere", ids[0]),
        ]
    )
    assert results[0] is None  # replaced by the later one
    assert (results[1]["last_read_id"], results[1]["unread"]) == (ids[0], 2)
    assert isinstance(results[2], services.ChatError) and results[2].code == "no_such_room"
    assert Event.objects.filter(kind="read", user=alice.user).count() == 1


async def test_a_tab_flipping_its_presence_is_limited_and_announced_as_one_change(
    people, sockets, settings, monkeypatch
):
    from chat.realtime.presence import local_presence

    monkeypatch.setattr(consumers, "presence_limiter", SendRateLimiter(0.001, 20))
    settings.CHAT_PRESENCE_ANNOUNCE_SECONDS = 3600
    alice, bob = await people("alice", "bob")
    local = local_presence()
    try:
        a = await sockets(alice)
        await a.send({"type": "presence_sub", "users": ["bob"]})
        assert (await a.receive(skip=()))["users"] == {"bob": "offline"}
        b = await sockets(bob)
        for i in range(200):
            await b.send({"type": "presence", "state": ("away", "active")[i % 2], "nonce": f"p{i}"})
        refused = [await b.receive() for _ in range(200 - 20)]
        assert {(e["type"], e["code"]) for e in refused} == {("error", "rate_limited")}
        await local.announce()
        # Bob ended where the 20 accepted frames left him (active), announced once.
        assert (await a.receive(skip=()))["users"] == {"bob": "online"}
        await sync_to_async(say)(bob, "general", "marker")
        assert (await a.receive(skip=()))["body"] == "marker"
    finally:
        if local._announcing is not None:
            local._announcing.cancel()
        local._changed.clear()
