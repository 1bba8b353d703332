"""One write budget per user for sockets and the HTTP API, in every process; hourly caps."""

import pytest
from asgiref.sync import sync_to_async

from chat.models import Reaction, Room
from chat.ratelimit import writes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tight(monkeypatch):
    monkeypatch.setattr(writes, "rate", 0.001)
    monkeypatch.setattr(writes, "burst", 5.0)
    writes.reset()
    yield
    writes.reset()


def say(who, body="hi") -> int:
    from chat import services

    return services.message_send(author=who.user, room="general", body=body, nonce=None).message.id


def test_http_writes_past_the_budget_are_429_in_json_and_change_nothing(person, tight):
    alice = person("alice")
    mid = say(person("bob"))
    answers = [
        alice.post(f"/api/messages/{mid}/reactions/", {"emoji": "👍"}).status_code
        for _ in range(12)
    ]
    assert answers[:5] == [200] * 5 and set(answers[5:]) == {429}
    refused = alice.post(f"/api/messages/{mid}/reactions/", {"emoji": "👍"})
    assert refused.json()["error"] == "rate_limited"
    # Five toggles: on, off, on, off, on.
    assert Reaction.objects.filter(message_id=mid, user=alice.user).count() == 1
    # Reading is not writing.
    assert alice.get("/api/rooms/general/messages/").status_code == 200


async def test_the_socket_and_the_api_spend_the_same_budget(people, sockets, tight):
    alice, bob = await people("alice", "bob")
    sock = await sockets(alice)
    for i in range(5):
        await sock.send({"type": "send", "room": "general", "body": f"s{i}"})
        assert (await sock.receive())["body"] == f"s{i}"
    response = await sync_to_async(alice.post)("/api/rooms/", {"name": "more"})
    assert response.status_code == 429


@pytest.mark.parametrize(
    ("setting", "act"),
    [
        ("CHAT_ROOMS_PER_HOUR", lambda who, i, _: who.post("/api/rooms/", {"name": f"room {i}"})),
        (
            "CHAT_INVITES_PER_HOUR",
            lambda who, i, others: who.post("/api/rooms/club/members/", {"username": others[i]}),
        ),
        (
            "CHAT_GROUP_DMS_PER_HOUR",
            lambda who, i, others: who.post("/api/dms/", {"users": [others[i], others[i + 1]]}),
        ),
    ],
    ids=["rooms", "invites", "group dms"],
)
def test_hourly_caps_on_what_adds_people_or_rooms(person, settings, setting, act):
    setattr(settings, setting, 3)
    alice = person("alice")
    others = [person(f"p{i}").name for i in range(8)]
    alice.post("/api/rooms/", {"name": "club"})  # counts toward rooms, too
    statuses = [act(alice, i, others).status_code for i in range(5)]
    allowed = 2 if setting == "CHAT_ROOMS_PER_HOUR" else 3
    assert statuses[:allowed] == [statuses[0]] * allowed and statuses[0] in (200, 201)
    assert set(statuses[allowed:]) == {429}
    # Someone else is not held by alice's count.
    assert person("carol").post("/api/rooms/", {"name": "carols"}).status_code == 201
    assert Room.objects.filter(created_by=alice.user).count() >= 1
