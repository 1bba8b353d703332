"""Who may do what: every endpoint and every frame refuses outsiders and tells them nothing.

An outsider (never a member), a removed member, and an anonymous visitor are
refused. For a private room, the refusal is the one a room or message that does
not exist gets, byte for byte: the tests ask, then delete the room, ask again
with the same names, and compare.
"""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chat import services
from chat.models import Room

pytestmark = pytest.mark.django_db(transaction=True)

# Every request of the HTTP API table in docs/protocol.md, plus the history API.
# {room}: a room's slug; {mid}: a message id; {user}: a member's username.
ENDPOINTS = [
    ("get", "/api/rooms/", None),
    ("get", "/api/rooms/?browse=1", None),
    ("post", "/api/rooms/", {"name": "new"}),
    ("patch", "/api/rooms/{room}/", {"topic": "mine now"}),
    ("get", "/api/rooms/{room}/messages/", None),
    ("post", "/api/rooms/{room}/join/", None),
    ("post", "/api/rooms/{room}/leave/", None),
    ("get", "/api/rooms/{room}/members/", None),
    ("post", "/api/rooms/{room}/members/", {"username": "{user}"}),
    ("delete", "/api/rooms/{room}/members/{user}/", None),
    ("post", "/api/rooms/{room}/read/", {"id": "{mid}"}),
    ("post", "/api/dms/", {"users": ["{user}"]}),
    ("get", "/api/users/?q=a&room={room}", None),
    ("patch", "/api/messages/{mid}/", {"body": "defaced"}),
    ("delete", "/api/messages/{mid}/", None),
    ("post", "/api/messages/{mid}/reactions/", {"emoji": "👍"}),
    ("get", "/api/search/?q=classified&room={room}", None),
    ("get", "/api/rooms/{room}/messages/?thread={mid}", None),
    ("post", "/api/threads/{mid}/follow/", None),
    ("delete", "/api/threads/{mid}/follow/", None),
    ("post", "/api/threads/{mid}/read/", {"id": "{mid}"}),
    ("get", "/api/threads/", None),
]
ROOM_SCOPED = [e for e in ENDPOINTS if "{room}" in e[1] or "{mid}" in e[1]]


def request(client: Client, method: str, path: str, data, names: dict):
    path = path.format(**names)
    if data is None:
        return getattr(client, method)(path)
    body = json.dumps(data)
    for key, value in names.items():
        body = body.replace(f'"{{{key}}}"', json.dumps(value))
    return getattr(client, method)(path, body, content_type="application/json")


def endpoint_id(endpoint) -> str:
    return f"{endpoint[0].upper()} {endpoint[1]}"


@pytest.fixture
def secret(person):
    """#secret, private: alice and dave are in it; bob never was; carol was removed.

    Returns the people and the names the requests use: the room, a message of
    carol's from when she was a member, and a member's username.
    """
    alice, bob, carol, dave = (person(n) for n in ("alice", "bob", "carol", "dave"))
    services.room_create(actor=alice.user, name="secret", private=True)
    services.room_invite(actor=alice.user, room="secret", username="carol")
    services.room_invite(actor=alice.user, room="secret", username="dave")
    mid = services.message_send(
        author=carol.user, room="secret", body="classified", nonce=None
    ).message.id
    services.room_member_remove(actor=alice.user, room="secret", username="carol")
    return {"outsider": bob, "removed": carol, "member": alice}, {
        "room": "secret",
        "mid": mid,
        "user": "dave",
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=endpoint_id)
def test_anonymous_requests_get_401_with_json(secret, endpoint):
    _, names = secret
    response = request(Client(), *endpoint, names)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.parametrize("endpoint", ROOM_SCOPED, ids=endpoint_id)
@pytest.mark.parametrize("who", ["outsider", "removed"])
def test_a_private_room_is_answered_as_if_it_did_not_exist(secret, endpoint, who):
    people, names = secret
    client = people[who].client
    hidden = request(client, *endpoint, names)
    Room.objects.filter(slug="secret").delete()  # its messages go with it
    missing = request(client, *endpoint, names)
    assert missing.status_code == 404
    assert (hidden.status_code, hidden.content) == (missing.status_code, missing.content)
    assert b"classified" not in hidden.content and b"dave" not in hidden.content


@pytest.mark.parametrize("endpoint", ROOM_SCOPED, ids=endpoint_id)
def test_the_same_requests_work_for_a_member(secret, endpoint):
    # The refusals above are about who asks, not about the requests.
    people, names = secret
    if endpoint[1].startswith("/api/messages/"):
        # Carol's message is hers to edit: alice edits one of her own.
        names = {
            **names,
            "mid": services.message_send(
                author=people["member"].user, room="secret", body="mine", nonce=None
            ).message.id,
        }
    if endpoint[1].startswith("/api/rooms/{room}/members/") and endpoint[0] == "post":
        names = {**names, "user": "bob"}
    response = request(people["member"].client, *endpoint, names)
    expected = {"post": (200, 201), "delete": (200, 204)}.get(endpoint[0], (200,))
    assert response.status_code in expected, response.content


# --- the socket ------------------------------------------------------------------------


def frames(names: dict) -> list[dict]:
    room, mid = names["room"], names["mid"]
    return [
        {"type": "send", "room": room, "body": "let me in", "nonce": "send"},
        {"type": "typing", "room": room, "nonce": "typing"},
        {"type": "read", "room": room, "id": mid, "nonce": "read"},
        {"type": "edit", "id": mid, "body": "defaced", "nonce": "edit"},
        {"type": "delete", "id": mid, "nonce": "delete"},
        {"type": "react", "id": mid, "emoji": "👍", "nonce": "react"},
        {"type": "read_thread", "root": mid, "id": mid, "nonce": "read_thread"},
        {"type": "send", "room": room, "body": "re", "thread": mid, "nonce": "reply"},
    ]


@pytest.mark.parametrize("who", ["outsider", "removed"])
async def test_every_frame_about_a_private_room_is_answered_as_if_it_did_not_exist(
    secret, sockets, who
):
    people, names = secret
    sock = await sockets(people[who])
    answers = []
    for frame in frames(names):
        await sock.send(frame)
        answers.append(await sock.receive())
    await sync_to_async(Room.objects.filter(slug="secret").delete)()
    for frame, hidden in zip(frames(names), answers, strict=True):
        await sock.send(frame)
        missing = await sock.receive()
        assert missing["type"] == "error" and missing["nonce"] == frame["nonce"]
        assert missing["code"] in ("no_such_room", "not_found")
        assert hidden == missing, frame["type"]


async def test_nothing_of_a_private_room_reaches_an_outsider_or_a_removed_member(secret, sockets):
    people, names = secret
    outsider = await sockets(people["outsider"], watch="secret")
    removed = await sockets(people["removed"], watch="secret", seq=0)
    # A replay from the start carries carol's own comings and goings, nothing else.
    replay = await _until_resumed(removed)
    assert [(e["type"], e.get("action")) for e in replay] == [
        ("member", "invited"),
        ("member", "removed"),
        ("resumed", None),
    ]
    assert replay[-1]["rooms"] == [
        {
            "room": "general",
            "last_read_id": 0,
            "unread": 0,
            "mentions": 0,
            "thread_unread": 0,
            "thread_mentions": 0,
        }
    ]
    member = await sockets(people["member"])
    await member.send({"type": "send", "room": "secret", "body": "still classified"})
    await member.send({"type": "typing", "room": "secret"})
    await member.send({"type": "send", "room": "general", "body": "marker"})
    assert (await outsider.receive())["body"] == "marker"
    assert (await removed.receive())["body"] == "marker"


async def _until_resumed(sock) -> list[dict]:
    received = [await sock.receive()]
    while received[-1]["type"] != "resumed":
        received.append(await sock.receive())
    return received
