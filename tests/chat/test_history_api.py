"""GET /api/rooms/<slug>/messages/ per PROTOCOL.md."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message
from tests.factories import MembershipFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(client):
    user = UserFactory(username="reader")
    client.force_login(user)
    return user


@pytest.fixture
def history(general_room):
    author = UserFactory(username="writer")
    return [
        Message.objects.create(room=general_room, author=author, body=f"m{i}") for i in range(260)
    ]


def get(client, slug="general", **params):
    return client.get(f"/api/rooms/{slug}/messages/", params)


def ids(response) -> list[int]:
    return [m["id"] for m in response.json()["messages"]]


def test_default_is_the_newest_50_oldest_first(client, reader, history):
    response = get(client)
    assert response.status_code == 200
    assert ids(response) == [m.id for m in history[-50:]]


def test_messages_are_shaped_like_the_message_event(client, reader, history):
    first = get(client, after=0, limit=1).json()["messages"][0]
    assert first == {
        "room": "general",
        "id": history[0].id,
        "user": "writer",
        "body": "m0",
        "created": first["created"],
        "nonce": None,
        "html": "<p>m0</p>\n",
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
    }
    assert first["created"].endswith("Z")


def test_after_returns_the_first_messages_after_that_id(client, reader, history):
    assert ids(get(client, after=history[9].id, limit=5)) == [m.id for m in history[10:15]]


def test_catching_up_page_by_page_misses_nothing(client, reader, history):
    seen, last = [], 0
    while page := ids(get(client, after=last, limit=77)):
        seen += page
        last = page[-1]
    assert seen == [m.id for m in history]


def test_before_returns_the_newest_messages_before_that_id(client, reader, history):
    assert ids(get(client, before=history[100].id, limit=3)) == [m.id for m in history[97:100]]


def test_after_and_before_together_bound_both_ends(client, reader, history):
    page = ids(get(client, after=history[10].id, before=history[14].id))
    assert page == [m.id for m in history[11:14]]


def test_limit_is_capped_at_200_and_exact_when_enough_match(client, reader, history):
    assert len(ids(get(client, limit=1000))) == 200
    assert len(ids(get(client, after=0, limit=200))) == 200
    assert len(ids(get(client, limit=7))) == 7
    assert ids(get(client, before=history[2].id, limit=10)) == [history[0].id, history[1].id]


def test_messages_of_other_rooms_are_not_included(client, reader, history):
    other = RoomFactory(slug="other")
    Message.objects.create(room=other, author=reader, body="elsewhere")
    assert "elsewhere" not in [m["body"] for m in get(client, limit=200).json()["messages"]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": "ten"},
        {"after": "x"},
        {"before": "1.5"},
        {"after": "-3"},
        {"limit": "9" * 40},
    ],
)
def test_invalid_parameters_are_400_with_json(client, reader, params):
    response = get(client, **params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_anonymous_gets_401_with_json(client, history):
    response = get(client)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_unknown_room_and_foreign_private_room_are_the_same_404(client, reader):
    secret = RoomFactory(slug="secret", is_private=True)
    Message.objects.create(room=secret, author=UserFactory(), body="classified")
    missing, hidden = get(client, "nowhere"), get(client, "secret")
    assert missing.status_code == hidden.status_code == 404
    # The answer names the room asked for, and nothing else tells them apart.
    assert hidden.json() == {"error": "no_such_room", "detail": "There is no room #secret."}
    assert missing.json() == {"error": "no_such_room", "detail": "There is no room #nowhere."}


def test_members_read_their_private_room(client, reader):
    secret = RoomFactory(slug="secret", is_private=True)
    MembershipFactory(room=secret, user=reader)
    Message.objects.create(room=secret, author=reader, body="ours")
    assert [m["body"] for m in get(client, "secret").json()["messages"]] == ["ours"]


def test_public_rooms_are_readable_without_joining(client, reader):
    public = RoomFactory(slug="announcements")
    Message.objects.create(room=public, author=UserFactory(), body="news")
    assert [m["body"] for m in get(client, "announcements").json()["messages"]] == ["news"]


def test_query_count_does_not_grow_with_the_page_size(client, reader, history):
    counts = []
    for limit in (1, 200):
        with CaptureQueriesContext(connection) as queries:
            assert len(ids(get(client, limit=limit))) == limit
        counts.append(len(queries))
    assert counts[0] == counts[1]
    # Session, user, the sign-up policy (may they in yet?), room access, one
    # page of messages with their authors, their reactions, their mentions,
    # their files.
    assert counts[1] <= 8
