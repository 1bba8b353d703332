"""Threads on the socket: replies, `thread` and `thread_read` events, `read_thread`, catch-up,
and the send path's cost with replies and many followers."""


import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import selectors, services
from chat.models import Message, ThreadFollow
from chat.services import ChatError, SendRequest
from chat.threads import services as thread_services
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def say(who, room: str, body: str, **kwargs) -> int:
    return services.message_send(
        author=who.user, room=room, body=body, nonce=None, **kwargs
    ).message.id


async def next_of(sock, kind: str, timeout: float = 5) -> dict:
    """The next event of this type (others on the way are passed over)."""
    while True:
        event = await sock.receive(timeout=timeout)
        if event["type"] == kind:
            return event


async def nothing_more(sock, kind: str) -> None:
    """No event of this type arrives before a ping of our own comes back."""
    await sock.send({"type": "read_thread", "root": 0, "id": 0, "nonce": "ping"})
    while True:
        event = await sock.receive()
        assert event["type"] != kind, event
        if event["type"] == "error" and event["nonce"] == "ping":
            return


async def test_a_reply_reaches_the_room_and_counts_reach_only_each_followers_sockets(
    people, sockets
):
    alice, bob, carol = await people("alice", "bob", "carol")
    root = await sync_to_async(say)(alice, "general", "plans?")
    a1, a2, b, c = (
        await sockets(alice),
        await sockets(alice),
        await sockets(bob),
        await sockets(carol),
    )
    await b.send(
        {"type": "send", "room": "general", "body": "monday", "thread": root, "nonce": "r1"}
    )
    for sock in (a1, a2, b, c):
        message = await next_of(sock, "message")
        assert (message["thread"], message["in_channel"], message["nonce"]) == (root, False, "r1")
        assert "replies" not in message
        thread = await next_of(sock, "thread")
        assert (thread["root"], thread["replies"], thread["repliers"]) == (root, 1, ["bob"])
        assert thread["last_reply"] == message["created"]
    # Alice started the thread: she follows it now, with one unread reply, on both tabs.
    for sock in (a1, a2):
        read = await next_of(sock, "thread_read")
        assert read == {
            "type": "thread_read",
            "room": "general",
            "root": root,
            "following": True,
            "last_read_id": 0,
            "unread": 1,
            "mentions": 0,
            "seq": read["seq"],
        }
    mine = await next_of(b, "thread_read")
    assert (mine["following"], mine["last_read_id"], mine["unread"]) == (True, message["id"], 0)
    # Carol does not follow: no counts for her.
    await nothing_more(c, "thread_read")


async def test_read_thread_moves_the_marker_on_every_tab_and_answers_when_it_does_not_move(
    people, sockets
):
    alice, bob = await people("alice", "bob")
    root = await sync_to_async(say)(alice, "general", "root")
    first = await sync_to_async(say)(bob, "general", "@alice one", thread=root)
    await sync_to_async(say)(bob, "general", "two", thread=root)
    a1, a2 = await sockets(alice), await sockets(alice)
    await a1.send({"type": "read_thread", "root": root, "id": first})
    moved = [await next_of(sock, "thread_read") for sock in (a1, a2)]
    assert moved[0] == moved[1]
    assert (moved[0]["last_read_id"], moved[0]["unread"], moved[0]["mentions"]) == (first, 1, 0)
    assert moved[0]["seq"] is not None
    # The same place again: only the asking tab hears, and nothing is logged.
    await a1.send({"type": "read_thread", "root": root, "id": first})
    again = await next_of(a1, "thread_read")
    assert again == {**moved[0], "seq": None}
    await nothing_more(a2, "thread_read")


async def test_a_private_thread_on_the_socket_is_as_unknown_as_a_missing_one(
    people, channel, sockets
):
    alice, eve = await people("alice", "eve")
    await sync_to_async(channel)("secret", alice, private=True)
    root = await sync_to_async(say)(alice, "secret", "hidden")
    sock = await sockets(eve)
    answers = []
    for target in (root, root + 999):
        await sock.send({"type": "read_thread", "root": target, "id": target, "nonce": "n"})
        answers.append(await next_of(sock, "error"))
        await sock.send(
            {"type": "send", "room": "secret", "body": "hi", "thread": target, "nonce": "s"}
        )
        answers.append(await next_of(sock, "error"))
    assert answers[:2] == answers[2:]
    assert (answers[0]["code"], answers[0]["detail"]) == ("not_found", "No such thread.")
    assert answers[1]["code"] == "no_such_room"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "send", "room": "general", "body": "x", "thread": "1"},
        {"type": "send", "room": "general", "body": "x", "thread": True},
        {"type": "send", "room": "general", "body": "x", "thread": 0},
        {"type": "send", "room": "general", "body": "x", "thread": 5, "in_channel": "yes"},
        {"type": "read_thread", "id": 1},
        {"type": "read_thread", "root": -1, "id": 1},
    ],
)
async def test_malformed_thread_fields_are_invalid_and_the_socket_stays_usable(
    people, sockets, frame
):
    [alice] = await people("alice")
    sock = await sockets(alice)
    await sock.send({**frame, "nonce": "bad"})
    error = await next_of(sock, "error")
    assert (error["code"], error["nonce"]) == ("invalid", "bad")
    await sock.send({"type": "send", "room": "general", "body": "still here"})
    assert (await next_of(sock, "message"))["body"] == "still here"


async def test_a_retried_reply_is_answered_with_the_stored_reply(people, sockets):
    alice, bob = await people("alice", "bob")
    root = await sync_to_async(say)(alice, "general", "root")
    sock = await sockets(bob)
    frame = {"type": "send", "room": "general", "body": "r", "thread": root, "nonce": "once"}
    await sock.send(frame)
    stored = await next_of(sock, "message")
    await sock.send(frame)
    retry = await next_of(sock, "message")
    assert (retry["id"], retry["thread"], retry["seq"]) == (stored["id"], root, None)
    assert await sync_to_async(Message.objects.filter(thread_id=root).count)() == 1


async def test_catch_up_inside_threads(people, sockets):
    alice, bob, carol = await people("alice", "bob", "carol")

    def before():
        start = selectors.latest_seq()
        root = say(alice, "general", "root")
        say(bob, "general", "reply", thread=root)
        return start, root, selectors.latest_seq()

    start, root, seq = await sync_to_async(before)()

    def meanwhile():
        ids = {"r2": say(carol, "general", "@alice look", thread=root)}
        ids["r3"] = say(carol, "general", "and in the room", thread=root, in_channel=True)
        ids["gone"] = say(carol, "general", "oops", thread=root)
        services.message_delete(actor=carol.user, message_id=ids["gone"])
        services.message_delete(actor=alice.user, message_id=root)
        return ids

    ids = await sync_to_async(meanwhile)()
    sock = await sockets(alice, seq=seq)
    replayed = []
    while not replayed or replayed[-1]["type"] != "resumed":
        replayed.append(await sock.receive())
    messages = [e for e in replayed if e["type"] == "message"]
    # Replies come with their root; a deleted reply is left out.
    assert [(m["id"], m["thread"]) for m in messages] == [(ids["r2"], root), (ids["r3"], root)]
    assert messages[1]["in_channel"] is True
    threads = [e for e in replayed if e["type"] == "thread"]
    assert [t["replies"] for t in threads] == [2, 3, 4, 3]
    reads = [e for e in replayed if e["type"] == "thread_read"]
    assert [(r["unread"], r["mentions"]) for r in reads] == [(2, 1), (3, 1), (4, 1), (3, 1)]
    resumed = replayed[-1]
    assert resumed["threads"] == [
        {
            "room": "general",
            "root": root,
            "following": True,
            "last_read_id": 0,
            "unread": 3,
            "mentions": 1,
        }
    ]
    [general] = [r for r in resumed["rooms"] if r["room"] == "general"]
    assert (general["thread_unread"], general["thread_mentions"]) == (3, 1)
    # The root, deleted with replies left, replays as its placeholder.
    sock2 = await sockets(bob, seq=start)
    placeholder = None
    while placeholder is None:
        event = await sock2.receive()
        if event["type"] == "message" and event["id"] == root:
            placeholder = event
    assert (placeholder["deleted"], placeholder["body"], placeholder["replies"]) == (True, "", 3)


# --- the send path's cost -------------------------------------------------------------


def _count_queries(fn) -> int:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx)


def test_sending_replies_costs_the_same_for_1_or_100_replies_and_1_or_60_followers(person):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    crowd = [UserFactory() for _ in range(60)]  # members of #general, as everyone

    def roots(n: int) -> list[int]:
        return [say(alice, "general", f"root {i}") for i in range(n)]

    general = selectors.room_for_reader(alice.user, "general")

    def follow(root: int, users) -> None:
        ThreadFollow.objects.bulk_create(
            [ThreadFollow(user=u, root_id=root, room=general, last_read_id=0) for u in users]
        )

    def send(pairs: list[tuple[int, str]]) -> None:
        results = services.message_send_many(
            [
                SendRequest((bob, carol)[i % 2].user, "general", body, f"n{root}-{i}", thread=root)
                for i, (root, body) in enumerate(pairs)
            ]
        )
        assert not any(isinstance(r, ChatError) for r in results)

    [lone] = roots(1)
    follow(lone, crowd[:1])
    # Alice, whose root gets its first reply, follows it too: the same statements each time.
    one = _count_queries(lambda: send([(lone, f"@{crowd[1].username} first")]))

    many = roots(4)
    for root in many:
        follow(root, crowd)
    batch = [(many[i % 4], f"@{crowd[i % 60].username} reply {i}") for i in range(100)]
    hundred = _count_queries(lambda: send(batch))
    assert hundred == one
    # And it all happened: the summaries, the follows, the counts.
    assert [Message.objects.get(pk=r).reply_count for r in many] == [25, 25, 25, 25]
    state = thread_services.thread_follow_set(user=crowd[0], root_id=many[0], following=True)
    # Replies 0 and 60 went to the first root and mention crowd[0].
    assert (state["unread"], state["mentions"]) == (25, 2)
    # Each root: the crowd, its author, and its one replier (bob the even ones, carol the odd).
    assert ThreadFollow.objects.filter(root_id__in=many, following=True).count() == 4 * 62


def test_a_thread_page_and_the_threads_list_cost_the_same_for_few_or_many(person):
    alice, bob = person("alice"), person("bob")
    root = say(alice, "general", "root")

    def page(n: int) -> None:
        response = alice.get("/api/rooms/general/messages/", thread=root, limit=200)
        assert len(response.json()["messages"]) == n

    def listed(n: int) -> None:
        threads = alice.get("/api/threads/", limit=100).json()["threads"]
        assert len(threads) == n and all(t["root"]["repliers"] == ["bob"] for t in threads)

    say(bob, "general", "@alice one", thread=root)
    one_page, one_list = _count_queries(lambda: page(1)), _count_queries(lambda: listed(1))
    for i in range(99):
        say(bob, "general", f"@alice {i}", thread=root)
    for i in range(29):
        say(bob, "general", "reply", thread=say(alice, "general", f"root {i}"))
    assert _count_queries(lambda: page(100)) == one_page
    assert _count_queries(lambda: listed(30)) == one_list
