"""The chat socket, end to end through the real ASGI application."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chat.models import Membership, Message
from tests.chat.sockets import connect, open_socket
from tests.factories import PASSWORD, MembershipFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "another-long-pass-phrase"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # User ids can repeat between tests; buckets must not.
    from chat.realtime import consumers

    consumers.send_limiter.reset()


@pytest.fixture
def alice(login_cookie):
    user = UserFactory(username="alice")
    return user, login_cookie(user)


@pytest.fixture
def bob(login_cookie):
    user = UserFactory(username="bob")
    return user, login_cookie(user)


def stored(**filters) -> list[Message]:
    return list(Message.objects.filter(**filters).select_related("author", "room"))


# --- handshake ----------------------------------------------------------------


async def test_anonymous_handshake_is_rejected():
    connected, _ = await open_socket(cookie=None)
    assert not connected


async def test_inactive_user_is_rejected(login_cookie):
    user = await sync_to_async(UserFactory)()
    cookie = await sync_to_async(login_cookie)(user)
    user.is_active = False
    await sync_to_async(user.save)()
    connected, _ = await open_socket(cookie)
    assert not connected


@pytest.mark.parametrize(
    "origin",
    [None, "http://evil.example", "null", "http://localhost:9999", "https://localhost"],
)
async def test_foreign_or_missing_origin_is_rejected(alice, origin):
    connected, _ = await open_socket(alice[1], origin=origin)
    assert not connected


async def test_forged_session_cookie_is_rejected():
    connected, _ = await open_socket("sessionid=not-a-real-session")
    assert not connected


# --- sending and broadcasting -------------------------------------------------


async def test_send_is_stored_then_broadcast_to_every_member_socket(alice, bob):
    a1, a2, b = await connect(alice[1]), await connect(alice[1]), await connect(bob[1])
    await a1.send({"type": "send", "room": "general", "body": "hello", "nonce": "n-1"})

    events = [await s.receive() for s in (a1, a2, b)]
    [message] = await sync_to_async(stored)()
    expected = {
        "type": "message",
        "room": "general",
        "id": message.id,
        "user": "alice",
        "body": "hello",
        "created": events[0]["created"],
        "nonce": "n-1",
        "html": "<p>hello</p>\n",
        "edited": None,
        "mentions": [],
        "reactions": {},
        "attachments": [],
        "deleted": False,
        "thread": None,
        "in_channel": False,
        "replies": 0,
        "last_reply": None,
        "repliers": [],
        "seq": events[0]["seq"],
    }
    assert events == [expected, expected, expected]
    assert isinstance(expected["seq"], int)
    assert events[0]["created"].endswith("Z")
    assert message.author.username == "alice" and message.body == "hello"


async def test_author_comes_from_the_session_not_the_frame(alice, bob):
    a, b = await connect(alice[1]), await connect(bob[1])
    await a.send({"type": "send", "room": "general", "body": "hi", "user": "bob", "author": "bob"})
    event = await b.receive()
    assert event["user"] == "alice"
    assert event["nonce"] is None
    [message] = await sync_to_async(stored)()
    assert message.author.username == "alice"


async def test_body_is_stored_and_returned_exactly(alice):
    body = "  \u202eevil\u200b text\u200d with RTL and zero-width \U0001f600\n\tindented  "
    a = await connect(alice[1])
    await a.send({"type": "send", "room": "general", "body": body})
    assert (await a.receive())["body"] == body
    [message] = await sync_to_async(stored)()
    assert message.body == body


async def test_body_limit_counts_code_points_without_surrounding_whitespace(alice):
    a = await connect(alice[1])
    longest = "\U0001f600" * 10_000
    await a.send({"type": "send", "room": "general", "body": f"   {longest}\n\n"})
    assert (await a.receive())["body"] == f"   {longest}\n\n"
    await a.send({"type": "send", "room": "general", "body": "x" * 10_001, "nonce": "long"})
    error = await a.receive()
    assert (error["type"], error["code"], error["nonce"]) == ("error", "too_long", "long")
    assert await sync_to_async(Message.objects.count)() == 1


async def test_the_whole_body_padding_included_is_at_most_12000_characters(alice):
    a = await connect(alice[1])
    await a.send({"type": "send", "room": "general", "body": "x" + " " * 11_999})
    assert (await a.receive())["body"] == "x" + " " * 11_999
    for padded in ("x" + " " * 12_000, " " * 120_000 + "x"):
        await a.send({"type": "send", "room": "general", "body": padded, "nonce": "pad"})
        error = await a.receive()
        assert (error["type"], error["code"], error["nonce"]) == ("error", "too_long", "pad")
    message = (await sync_to_async(list)(Message.objects.all()))[-1]
    await a.send({"type": "edit", "id": message.id, "body": "y" + " " * 24_000, "nonce": "e"})
    error = await a.receive()
    assert (error["type"], error["code"], error["nonce"]) == ("error", "too_long", "e")
    assert await sync_to_async(Message.objects.count)() == 1


async def test_deeply_nested_frames_are_refused_before_parsing(alice):
    a = await connect(alice[1])
    await a.send_text("[" * 100_000)
    error = await a.receive()
    assert (error["type"], error["code"]) == ("error", "invalid")
    await a.send({"type": "send", "room": "general", "body": "still here", "x": [[[[1]]]]})
    assert (await a.receive())["body"] == "still here"


async def test_retried_nonce_is_stored_once_and_not_broadcast_again(alice, bob):
    a, b = await connect(alice[1]), await connect(bob[1])
    frame = {"type": "send", "room": "general", "body": "once", "nonce": "retry-me"}
    await a.send(frame)
    first = await a.receive()
    assert (await b.receive())["id"] == first["id"]

    # The retry (say, after a reconnect) comes back to the sender only.
    retry_socket = await connect(alice[1])
    await retry_socket.send(frame)
    # The answer is not a new event in the log, so it carries no seq.
    assert await retry_socket.receive() == {**first, "seq": None}
    await a.send({"type": "send", "room": "general", "body": "next", "nonce": "other"})
    assert (await b.receive())["body"] == "next"  # bob never saw the retry
    assert (await a.receive())["body"] == "next"
    assert await sync_to_async(Message.objects.filter(nonce="retry-me").count)() == 1


async def test_same_nonce_from_another_user_is_a_different_message(alice, bob):
    a, b = await connect(alice[1]), await connect(bob[1])
    await a.send({"type": "send", "room": "general", "body": "from alice", "nonce": "same"})
    await b.send({"type": "send", "room": "general", "body": "from bob", "nonce": "same"})
    bodies = [(await a.receive())["body"], (await a.receive())["body"]]
    assert sorted(bodies) == ["from alice", "from bob"]
    assert await sync_to_async(Message.objects.count)() == 2


async def test_a_socket_receives_a_rooms_messages_in_id_order(alice, bob):
    a, b = await connect(alice[1]), await connect(bob[1])
    for i in range(20):
        await (a if i % 2 else b).send({"type": "send", "room": "general", "body": str(i)})
    ids = [(await a.receive())["id"] for _ in range(20)]
    assert ids == sorted(ids) and len(set(ids)) == 20


async def test_only_members_receive_a_rooms_messages(alice, bob):
    room = await sync_to_async(RoomFactory)(slug="team", is_private=True)
    await sync_to_async(MembershipFactory)(room=room, user=alice[0])
    a, b = await connect(alice[1]), await connect(bob[1])
    await a.send({"type": "send", "room": "team", "body": "members only"})
    assert (await a.receive())["body"] == "members only"
    await a.send({"type": "send", "room": "general", "body": "for all"})
    # Bob's next event is the #general one: the private message never reached him.
    assert (await b.receive())["body"] == "for all"


# --- bad frames: an error event, and the socket stays usable ------------------


BAD_FRAMES = [
    ("text", "{not json", "invalid_json", None),
    ("text", "   ", "invalid_json", None),
    ("bytes", b"\x00\x01", "binary_not_supported", None),
    ("json", {"type": "shout", "nonce": "n1"}, "unknown_type", "n1"),
    ("json", [1, 2, 3], "invalid", None),
    ("json", "send", "invalid", None),
    ("json", {"room": "general", "body": "x", "nonce": "n2"}, "invalid", "n2"),
    ("json", {"type": 7, "room": "general", "body": "x"}, "invalid", None),
    ("json", {"type": "send", "body": "x", "nonce": "n3"}, "invalid", "n3"),
    ("json", {"type": "send", "room": 5, "body": "x"}, "invalid", None),
    ("json", {"type": "send", "room": "general", "nonce": "n4"}, "invalid", "n4"),
    ("json", {"type": "send", "room": "general", "body": ["x"]}, "invalid", None),
    ("json", {"type": "send", "room": "general", "body": " \n\t ", "nonce": "n5"}, "invalid", "n5"),
    ("json", {"type": "send", "room": "general", "body": "a\x00b"}, "invalid", None),
    ("json", {"type": "send", "room": "general", "body": "x", "nonce": "n" * 65}, "invalid", None),
    ("json", {"type": "send", "room": "general", "body": "x", "nonce": 12}, "invalid", None),
    ("json", {"type": "send", "room": "general", "body": "x", "nonce": ""}, "invalid", None),
    ("json", {"type": "send", "room": "general", "body": "x" * 10_001}, "too_long", None),
    ("json", {"type": "send", "room": "nowhere", "body": "x", "nonce": "n6"}, "no_such_room", "n6"),
]


@pytest.mark.parametrize(("kind", "frame", "code", "nonce"), BAD_FRAMES)
async def test_bad_frame_gets_an_error_and_the_socket_stays_usable(alice, kind, frame, code, nonce):
    a = await connect(alice[1])
    if kind == "text":
        await a.send_text(frame)
    elif kind == "bytes":
        await a.send_bytes(frame)
    else:
        await a.send_text(json.dumps(frame))
    error = await a.receive()
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["nonce"] == nonce
    assert isinstance(error["detail"], str) and error["detail"]

    await a.send({"type": "send", "room": "general", "body": "still here"})
    assert (await a.receive())["body"] == "still here"
    assert await sync_to_async(Message.objects.count)() == 1


async def test_private_room_of_others_is_indistinguishable_from_a_missing_one(alice):
    await sync_to_async(RoomFactory)(slug="secret", is_private=True)
    a = await connect(alice[1])
    await a.send({"type": "send", "room": "secret", "body": "x", "nonce": "p"})
    hidden = await a.receive()
    await a.send({"type": "send", "room": "absent", "body": "x", "nonce": "p"})
    missing = await a.receive()
    assert hidden["code"] == missing["code"] == "no_such_room"
    assert "secret" not in json.dumps(missing)


async def test_public_room_not_joined_is_not_member(alice):
    await sync_to_async(RoomFactory)(slug="random", is_private=False)
    a = await connect(alice[1])
    await a.send({"type": "send", "room": "random", "body": "x", "nonce": "q"})
    error = await a.receive()
    assert (error["code"], error["nonce"]) == ("not_member", "q")
    assert "#random" in error["detail"]


async def test_sending_faster_than_the_limit_is_refused_and_nothing_stored(alice, settings):
    from chat.realtime import consumers

    consumers.send_limiter.rate, consumers.send_limiter.burst = 0.001, 3.0
    consumers.send_limiter.reset()
    try:
        a = await connect(alice[1])
        for i in range(4):
            await a.send({"type": "send", "room": "general", "body": f"m{i}", "nonce": f"r{i}"})
        events = [await a.receive() for _ in range(4)]
    finally:
        consumers.send_limiter.rate = settings.CHAT_RATE_LIMIT
        consumers.send_limiter.burst = float(settings.CHAT_RATE_BURST)
        consumers.send_limiter.reset()
    # The refusal is immediate; the stored ones come back once committed.
    [error] = [e for e in events if e["type"] == "error"]
    assert (error["code"], error["nonce"]) == ("rate_limited", "r3")
    assert sorted(e["nonce"] for e in events if e["type"] == "message") == ["r0", "r1", "r2"]
    assert await sync_to_async(Message.objects.count)() == 3


# --- sockets close with 4401 when their session ends ---------------------------


def _login_client(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _cookie(client: Client) -> str:
    return f"sessionid={client.cookies['sessionid'].value}"


async def test_logout_closes_that_sessions_sockets_only(alice):
    phone = await sync_to_async(_login_client)(alice[0])
    laptop_socket = await connect(alice[1])
    phone_socket = await connect(_cookie(phone))

    response = await sync_to_async(phone.post)("/accounts/logout/")
    assert response.status_code == 302
    assert await phone_socket.receive_close() == 4401

    await laptop_socket.send({"type": "send", "room": "general", "body": "still in"})
    assert (await laptop_socket.receive())["body"] == "still in"


async def test_deactivation_in_the_admin_closes_every_socket_of_the_user(alice, bob):
    admin = await sync_to_async(UserFactory)(is_staff=True, is_superuser=True)
    admin_client = await sync_to_async(_login_client)(admin)
    a1, a2, b = await connect(alice[1]), await connect(alice[1]), await connect(bob[1])

    response = await sync_to_async(admin_client.post)(
        "/admin/accounts/user/",
        {"action": "deactivate_users", "_selected_action": [alice[0].pk]},
    )
    assert response.status_code == 302
    assert await a1.receive_close() == 4401
    assert await a2.receive_close() == 4401
    await b.send({"type": "send", "room": "general", "body": "bob stays"})
    assert (await b.receive())["body"] == "bob stays"


async def test_password_change_closes_other_sessions_but_not_the_changing_one(alice):
    changer = await sync_to_async(_login_client)(alice[0])
    old_key = changer.cookies["sessionid"].value
    changer_socket = await connect(_cookie(changer))
    other_socket = await connect(alice[1])

    response = await sync_to_async(changer.post)(
        "/accounts/password/change/",
        {
            "oldpassword": PASSWORD,
            "password1": "another-long-pass-phrase",
            "password2": "another-long-pass-phrase",
        },
    )
    assert response.status_code == 302
    assert changer.cookies["sessionid"].value != old_key  # Django rotated the key
    assert await other_socket.receive_close() == 4401

    await changer_socket.send({"type": "send", "room": "general", "body": "still me"})
    assert (await changer_socket.receive())["body"] == "still me"
    # And the changer's new cookie still opens sockets.
    fresh = await connect(_cookie(changer))
    await fresh.close()


async def test_removing_a_membership_is_not_visible_to_other_rooms(alice):
    # Leaving #general (admin removes the membership) stops sends there.
    await sync_to_async(Membership.objects.filter(user=alice[0]).delete)()
    a = await connect(alice[1])
    await a.send({"type": "send", "room": "general", "body": "x"})
    assert (await a.receive())["code"] == "not_member"


async def test_pipelined_sends_from_one_socket_are_stored_in_order(alice, bob):
    a, b = await connect(alice[1]), await connect(bob[1])
    for i in range(15):  # within the default burst
        await a.send({"type": "send", "room": "general", "body": f"p{i}", "nonce": f"p{i}"})
    seen = [await b.receive() for _ in range(15)]
    assert [e["body"] for e in seen] == [f"p{i}" for i in range(15)]
    assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)
