"""chat.services: the one write path, including group commit."""

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from chat import eventlog, services
from chat.models import Message
from chat.services import ChatError, SendRequest, message_send, message_send_many
from tests.factories import MembershipFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch):
    calls: list[list[tuple[int, str]]] = []

    def record(items):
        decoded = [json.loads(item.text) for item in items]
        calls.append([(e["id"], e["body"]) for e in decoded if e["type"] == "message"])

    monkeypatch.setattr(eventlog, "publish", record)
    return calls


def test_a_batch_gets_one_result_per_request_in_order(published):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    RoomFactory(slug="secret", is_private=True)
    RoomFactory(slug="open")
    earlier = message_send(author=alice, room="general", body="earlier", nonce="old")
    published.clear()

    results = message_send_many(
        [
            SendRequest(alice, "general", "one", "n1"),
            SendRequest(bob, "general", "  ", None),
            SendRequest(alice, "secret", "x", None),
            SendRequest(alice, "open", "x", None),
            SendRequest(bob, "general", "two", "n1"),
            SendRequest(alice, "general", "one again", "n1"),
            SendRequest(alice, "general", "retry", "old"),
            SendRequest(alice, "general", "x" * 10_001, None),
        ]
    )
    codes = [r.code if isinstance(r, ChatError) else r.created for r in results]
    assert codes == [True, "invalid", "no_such_room", "not_member", True, False, False, "too_long"]
    assert results[5].message.id == results[0].message.id
    assert results[6].message.id == earlier.message.id
    assert results[0].message.id < results[4].message.id
    # Only what was created is broadcast, once, in id order, after the commit.
    assert published == [[(results[0].message.id, "one"), (results[4].message.id, "two")]]
    assert Message.objects.count() == 3


def test_group_commit_costs_the_same_queries_for_1_or_100_messages(published):
    users = [UserFactory() for _ in range(10)]
    room = RoomFactory(slug="busy")
    for user in users:
        MembershipFactory(room=room, user=user)

    def queries_for(n: int) -> int:
        batch = [SendRequest(users[i % 10], "busy", f"m{i}", f"{n}-{i}") for i in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            assert all(not isinstance(r, ChatError) for r in message_send_many(batch))
        return len(ctx)

    assert queries_for(1) == queries_for(100)


def test_sending_inside_an_outer_transaction_is_refused(published):
    # The outer transaction could roll back, or commit after the ordering lock is released.
    alice = UserFactory()
    with pytest.raises(RuntimeError, match="outside a transaction"), transaction.atomic():
        message_send(author=alice, room="general", body="inside", nonce=None)
    assert published == [] and Message.objects.count() == 0


def test_broadcast_failure_keeps_the_stored_message(monkeypatch):
    def broken(created):
        raise ConnectionError("layer down")

    monkeypatch.setattr(eventlog, "publish", broken)
    result = message_send(author=UserFactory(), room="general", body="kept", nonce="k")
    assert Message.objects.get(nonce="k").id == result.message.id


def test_service_refusals_raise_chat_errors(published):
    with pytest.raises(ChatError) as refused:
        message_send(author=UserFactory(), room="nowhere", body="x", nonce=None)
    assert refused.value.code == "no_such_room"
    assert services.BODY_MAX_CHARS == 10_000


def test_a_nonce_used_in_another_room_is_refused_not_answered_with_that_room(published):
    from chat.models import Reaction

    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    secret = RoomFactory(slug="secret", is_private=True)
    MembershipFactory(room=secret, user=alice)
    MembershipFactory(room=secret, user=bob)
    first = message_send(author=alice, room="secret", body="classified", nonce="n1")
    Reaction.objects.create(message=first.message, user=bob, emoji="👍")
    secret.memberships.filter(user=alice).delete()  # alice is removed
    with pytest.raises(ChatError) as refused:
        message_send(author=alice, room="general", body="hello", nonce="n1")
    assert refused.value.code == "invalid"
    assert "classified" not in str(refused.value.detail)
    # The same retry in the same room is still the stored message.
    MembershipFactory(room=secret, user=alice)
    again = message_send(author=alice, room="secret", body="classified", nonce="n1")
    assert (again.created, again.message.id) == (False, first.message.id)
