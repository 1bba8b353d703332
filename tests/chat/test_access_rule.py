"""One rule decides who may read a room, and every path gives the same answer.

The same person asks about rooms of every kind (public or private, a channel
or a direct message, joined or not, archived) by every way in: the page, the
history and members API, search (in a room and everywhere), read markers,
socket sends and typing hints, and a socket watching the room. Each path's
answer is boiled down to "may read" or "may not", and each must match the one
table below: a path that grows a rule of its own fails here.
"""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from asgiref.sync import sync_to_async

from chat import selectors, services
from chat.models import Room
from tests.factories import MembershipFactory, RoomFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

# The room's slug -> whether bob may read it.
READABLE = {
    "pub-joined": True,  # a public channel bob joined
    "pub-other": True,  # a public channel bob never joined
    "pub-archived": True,  # the same, archived: read-only, still readable
    "priv-joined": True,  # a private channel bob was invited to
    "priv-other": False,  # a private channel of others
    "dm-joined": True,  # a conversation with bob in it
    "dm-other": False,  # a conversation between others
    "dm-unflagged": False,  # the same, its private flag cleared by a careless edit
}
WORD = "needle"


@pytest.fixture
def world(person):
    """alice is in every room, each with one message of hers; bob only where "joined"."""
    from chat.ratelimit import searches

    searches.reset()
    alice, bob = person("alice"), person("bob")
    start = selectors.latest_seq()
    messages = {}
    for slug in READABLE:
        kind = Room.Kind.DIRECT if slug.startswith("dm-") else Room.Kind.CHANNEL
        private = slug.startswith(("priv-", "dm-")) and slug != "dm-unflagged"
        room = RoomFactory(slug=slug, kind=kind, is_private=private, created_by=alice.user)
        MembershipFactory(room=room, user=alice.user)
        if slug.endswith("-joined"):
            MembershipFactory(room=room, user=bob.user)
        body = f"{WORD} in {slug}"
        messages[slug] = services.message_send(
            author=alice.user, room=slug, body=body, nonce=None
        ).message.id
    Room.objects.filter(slug="pub-archived").update(is_archived=True)
    return alice, bob, messages, start


def _page(bob, slug, messages):
    response = bob.client.get(f"/r/{slug}/")
    assert response.status_code in (200, 404), response.status_code
    return response.status_code == 200


def _history(bob, slug, messages):
    response = bob.get(f"/api/rooms/{slug}/messages/")
    assert response.status_code in (200, 404), response.content
    if response.status_code == 404:
        return False
    assert [m["id"] for m in response.json()["messages"]] == [messages[slug]]
    return True


def _members(bob, slug, messages):
    response = bob.get(f"/api/rooms/{slug}/members/")
    assert response.status_code in (200, 404), response.content
    return response.status_code == 200


def _search_in_room(bob, slug, messages):
    response = bob.get("/api/search/", q=WORD, room=slug)
    assert response.status_code in (200, 404), response.content
    if response.status_code == 404:
        return False
    assert [hit["id"] for hit in response.json()["results"]] == [messages[slug]]
    return True


def _search_everywhere(bob, slug, messages):
    response = bob.get("/api/search/", q=WORD)
    assert response.status_code == 200, response.content
    return messages[slug] in {hit["id"] for hit in response.json()["results"]}


def _read_marker(bob, slug, messages):
    # Only members move a marker: a readable room bob has not joined is
    # `not_member`, one he may not read is `no_such_room`, as if it did not exist.
    response = bob.post(f"/api/rooms/{slug}/read/", {"id": messages[slug]})
    error = response.json().get("error") if response.status_code != 200 else None
    assert error in (None, "not_member", "no_such_room"), response.content
    return error != "no_such_room"


HTTP_PATHS = {
    "page": _page,
    "history": _history,
    "members": _members,
    "search in room": _search_in_room,
    "search everywhere": _search_everywhere,
    "read marker": _read_marker,
}


@pytest.mark.parametrize("path", list(HTTP_PATHS))
def test_every_http_path_lets_the_same_people_read_the_same_rooms(world, path):
    _, bob, messages, _ = world
    readable = {slug: HTTP_PATHS[path](bob, slug, messages) for slug in READABLE}
    assert readable == READABLE


async def _typing(sock, slug, messages, watcher) -> bool:
    # Refused: bob is told why. Let through: alice, in every room, hears it.
    await sock.send({"type": "typing", "room": slug, "nonce": "typing"})
    refused = asyncio.ensure_future(_next(sock, lambda e: e.get("nonce") == "typing"))
    heard = asyncio.ensure_future(_next(watcher, lambda e: e["type"] == "typing"))
    done, pending = await asyncio.wait({refused, heard}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if heard in done:
        assert heard.result()["room"] == slug and refused not in done
        return True
    answer = refused.result()
    assert answer["code"] in ("not_member", "no_such_room"), answer
    return answer["code"] != "no_such_room"


async def _next(sock, wanted: Callable[[dict], bool]) -> dict:
    while True:
        event = await sock.receive(skip=("presence",))
        if wanted(event):
            return event


async def _send(sock, slug, messages, watcher) -> bool:
    # Stored and broadcast to bob himself, or refused: either way, one answer.
    await sock.send({"type": "send", "room": slug, "body": "hi", "nonce": f"send-{slug}"})
    event = await _next(sock, lambda e: e.get("nonce") == f"send-{slug}")
    assert event["type"] in ("message", "error"), event
    return event["type"] == "message" or event["code"] != "no_such_room"


SOCKET_PATHS: dict[str, Callable[..., Awaitable[bool]]] = {"typing": _typing, "send": _send}


@pytest.mark.parametrize("path", list(SOCKET_PATHS))
async def test_every_socket_frame_lets_the_same_people_read_the_same_rooms(world, sockets, path):
    alice, bob, messages, _ = world
    sock, watcher = await sockets(bob), await sockets(alice)
    readable = {}
    for slug in READABLE:
        readable[slug] = await SOCKET_PATHS[path](sock, slug, messages, watcher)
    assert readable == READABLE


async def test_a_socket_watches_only_rooms_it_may_read(world, sockets):
    # A tab open on a room it has not joined follows it live and catches up on
    # it: `?watch=`. Its catch-up from before the messages shows what it follows.
    _, bob, messages, start = world
    readable = {}
    for slug in READABLE:
        sock = await sockets(bob, seq=start, watch=slug)
        seen = []
        event = await sock.receive()
        while event["type"] != "resumed":
            seen.append(event.get("id"))
            event = await sock.receive()
        readable[slug] = messages[slug] in seen
    assert readable == READABLE


@pytest.mark.parametrize("hidden", ["priv-other", "dm-other", "dm-unflagged", "nowhere"])
async def test_a_room_one_may_not_read_is_refused_in_the_same_words_everywhere(
    world, sockets, hidden
):
    _, bob, messages, _ = world
    sock = await sockets(bob)
    answers = set()
    for frame in (
        {"type": "send", "room": hidden, "body": "hi", "nonce": "n"},
        {"type": "typing", "room": hidden, "nonce": "n"},
        {"type": "read", "room": hidden, "id": 1, "nonce": "n"},
    ):
        await sock.send(frame)
        event = await sock.receive()
        answers.add((event["type"], event["code"], event["detail"]))
    for method, path, data in (
        ("get", f"/api/rooms/{hidden}/messages/", None),
        ("get", f"/api/rooms/{hidden}/members/", None),
        ("post", f"/api/rooms/{hidden}/join/", {}),
        ("post", f"/api/rooms/{hidden}/read/", {"id": 1}),
        ("get", f"/api/search/?q={WORD}&room={hidden}", None),
    ):
        call = getattr(bob, method)
        response = await sync_to_async(call)(path, *([data] if data is not None else []))
        assert response.status_code == 404, (path, response.content)
        body = response.json()
        answers.add(("error", body["error"], body["detail"]))
    assert answers == {("error", "no_such_room", f"There is no room #{hidden}.")}
