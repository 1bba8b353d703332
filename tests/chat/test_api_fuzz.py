"""Whatever a client sends to the JSON API, it gets 2xx or a JSON 4xx, and outsiders change nothing.

A property test: hypothesis sends arbitrary bodies (JSON of any shape, deep
nesting, broken UTF-8, form data, nothing at all) with every method to every
/api/ endpoint, as a signed-in member who is an outsider to the private room
#secret (and with its slug, its messages' ids and its members' names among
the parameters). The property: never a 5xx; every 4xx has a JSON body with
an `error` code; and #secret, its messages, reactions and members are exactly
as they were.
"""

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import services
from chat.models import Membership, Message, Reaction, Room
from chat.ratelimit import searches, writes
from tests.factories import MembershipFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ["body", "name", "slug", "topic", "private", "archived", "id", "users", "username"]
FIELDS += ["emoji", "nonce", "q", "room", "limit", "after", "before"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.sampled_from(["secret", "general", "alice", "👍", "\x00", "\ud800", "x" * 300])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)


def _encoded(value) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    json_values.map(_encoded),
    st.binary(max_size=64),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n),
    st.just(b""),
)
methods = st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE"])


@pytest.fixture
def world(settings, monkeypatch):
    settings.CHAT_ROOMS_PER_HOUR = settings.CHAT_INVITES_PER_HOUR = 10**6
    settings.CHAT_GROUP_DMS_PER_HOUR = 10**6
    for limiter in (writes, searches):  # limits have tests of their own
        monkeypatch.setattr(limiter, "rate", 1e9)
        monkeypatch.setattr(limiter, "burst", 1e9)
        limiter.reset()
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    eve = UserFactory(username="eve")
    UserFactory(username="carol")
    secret = RoomFactory(slug="secret", name="secret", is_private=True, created_by=alice)
    MembershipFactory(room=secret, user=alice)
    MembershipFactory(room=secret, user=bob)
    first = services.message_send(author=alice, room="secret", body="classified", nonce="s1")
    services.reaction_toggle(actor=bob, message_id=first.message.id, emoji="👍")
    client = Client()
    client.force_login(eve)
    yield client, secret, first.message.id
    for limiter in (writes, searches):
        limiter.reset()


def secret_state(room: Room) -> tuple:
    room.refresh_from_db()
    return (
        (room.name, room.topic, room.is_private, room.is_archived),
        sorted(Membership.objects.filter(room=room).values_list("user__username", "last_read_id")),
        sorted(Message.objects.filter(room=room).values_list("id", "body", "html", "is_deleted")),
        sorted(Reaction.objects.filter(message__room=room).values_list("user_id", "emoji")),
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), method=methods, body=bodies, form=st.booleans())
def test_any_request_gets_json_and_an_outsider_changes_nothing(world, data, method, body, form):
    client, secret, secret_message = world
    slug = data.draw(st.sampled_from(["secret", "general", "nowhere", "sécret", "a" * 80]))
    message_id = data.draw(st.sampled_from([secret_message, secret_message + 10**6, 0]))
    username = data.draw(st.sampled_from(["alice", "bob", "eve", "nobody"]))
    path = data.draw(
        st.sampled_from(
            [
                "/api/rooms/",
                f"/api/rooms/{slug}/",
                f"/api/rooms/{slug}/messages/",
                f"/api/rooms/{slug}/join/",
                f"/api/rooms/{slug}/leave/",
                f"/api/rooms/{slug}/read/",
                f"/api/rooms/{slug}/members/",
                f"/api/rooms/{slug}/members/{username}/",
                "/api/dms/",
                "/api/users/",
                f"/api/messages/{message_id}/",
                f"/api/messages/{message_id}/reactions/",
                "/api/search/",
            ]
        )
    )
    query = data.draw(st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=12), max_size=3))
    before = secret_state(secret)
    content_type = "application/x-www-form-urlencoded" if form else "application/json"
    if method == "GET":
        response = client.get(path, query)
    else:
        response = client.generic(method, path, body, content_type=content_type)
    assert response.status_code < 500, (method, path, body[:80], response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), (method, path)
        assert isinstance(response.json().get("error"), str), (method, path)
    assert secret_state(secret) == before, (method, path, body[:80])
