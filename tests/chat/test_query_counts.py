"""No query per message, per room or per member on the hot paths."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from chat import events, selectors, services
from chat.models import Event, Membership, Upload
from chat.services import ChatError, SendRequest
from tests.factories import MembershipFactory, ReactionFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def queries(fn) -> int:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx)


def test_sending_costs_the_same_for_1_or_100_messages_with_mentions(person, channel):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    channel("busy", alice, bob, carol)
    channel("other", alice, bob)

    def send(n: int) -> None:
        batch = [
            SendRequest(
                (alice, bob)[i % 2].user,
                ("busy", "other")[i % 3 == 0],
                f"@bob @carol @nobody see `@alice` #{i}",
                f"{n}-{i}",
            )
            for i in range(n)
        ]
        results = services.message_send_many(batch)
        assert not any(isinstance(r, ChatError) for r in results)

    one, hundred = queries(lambda: send(1)), queries(lambda: send(100))
    assert one == hundred
    # The 100 messages' mentions were all recorded, with that constant number of queries.
    assert [m["mentions"] for m in alice.history("busy", limit=200)][-1] == ["bob", "carol"]


def test_the_history_api_costs_the_same_for_1_or_200_messages(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("busy", alice, bob)
    reactors = [UserFactory() for _ in range(3)]

    def fill(n: int) -> None:
        for i in range(n):
            mid = services.message_send(
                author=alice.user, room="busy", body=f"@bob look {i}", nonce=None
            ).message.id
            for user in reactors:
                ReactionFactory(message_id=mid, user=user, emoji="👍")
            ReactionFactory(message_id=mid, user=bob.user, emoji="🎉")

    def read(limit: int) -> None:
        page = bob.history("busy", limit=limit)
        assert len(page) == limit
        assert all(m["mentions"] == ["bob"] and len(m["reactions"]["👍"]) == 3 for m in page)

    fill(1)
    one = queries(lambda: read(1))
    fill(199)
    assert queries(lambda: read(200)) == one


def test_the_room_list_costs_the_same_for_2_or_20_rooms(person):
    alice, bob = person("alice"), person("bob")

    def rooms_read() -> None:
        assert len(alice.rooms()) == expected

    services.dm_open(actor=alice.user, usernames=["bob"])
    services.message_send(author=bob.user, room="general", body="@alice hi", nonce=None)
    expected = 2
    few = queries(rooms_read)

    for i in range(11):
        room = services.room_create(actor=bob.user, name=f"room {i}", private=bool(i % 2))
        services.room_invite(actor=bob.user, room=room.slug, username="alice")
        services.message_send(author=bob.user, room=room.slug, body="@alice news", nonce=None)
    for i in range(7):
        others = [UserFactory().username for _ in range(1 + i % 3)]
        dm = services.dm_open(actor=alice.user, usernames=others)
        services.message_send(author=alice.user, room=dm.slug, body="hey", nonce=None)
    expected = 20
    assert Membership.objects.filter(user=alice.user).count() == expected
    assert queries(rooms_read) == few


def test_the_members_api_costs_the_same_for_1_or_30_members(person):
    alice = person("alice")
    room = RoomFactory(slug="club", is_private=True, created_by=alice.user)
    MembershipFactory(room=room, user=alice.user)

    def members_read(n: int) -> None:
        response = alice.get("/api/rooms/club/members/")
        assert len(response.json()["members"]) == n

    one = queries(lambda: members_read(1))
    for _ in range(29):
        MembershipFactory(room=room, user=UserFactory())
    assert queries(lambda: members_read(30)) == one


def test_a_replay_page_costs_the_same_for_1_or_300_events(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("team", alice, bob)

    def replay(after: int, expected: int) -> None:
        [page] = events.replay_pages([events.ReplayRequest(bob.user.pk, after)], 500)
        assert len(page.texts) == expected and page.complete

    start = selectors.latest_seq()
    services.message_send(author=alice.user, room="general", body="@bob one", nonce=None)
    one = queries(lambda: replay(start, 1))

    start = selectors.latest_seq()
    for i in range(60):
        room = ("general", "team")[i % 2]
        mid = services.message_send(author=alice.user, room=room, body=f"@bob {i}", nonce=None)
        services.message_edit(actor=alice.user, message_id=mid.message.id, body=f"@bob {i}!")
        services.reaction_toggle(actor=bob.user, message_id=mid.message.id, emoji="👍")
        services.reaction_toggle(actor=alice.user, message_id=mid.message.id, emoji="👍")
        services.read_marker_set(user=bob.user, room=room, message_id=mid.message.id)
    assert queries(lambda: replay(start, 300)) == one


def test_history_with_files_costs_the_same_for_1_or_50_messages(person):
    alice, bob = person("alice"), person("bob")

    def fill(n: int) -> None:
        for i in range(n):
            files = [
                Upload.objects.create(
                    uploader=alice.user, name=f"{i}-{j}.pdf", size=1, content_type="application/pdf"
                ).pk
                for j in range(2)
            ]
            services.message_send(
                author=alice.user, room="general", body="", nonce=None, attachments=tuple(files)
            )

    def read(limit: int) -> None:
        page = bob.history("general", limit=limit)
        assert len(page) == limit
        assert all([f["name"][-6:] for f in m["attachments"]] == ["-0.pdf", "-1.pdf"] for m in page)

    fill(1)
    one = queries(lambda: read(1))
    fill(49)
    assert queries(lambda: read(50)) == one


def test_deleting_a_room_costs_the_same_for_2_or_5000_members():
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)

    def room_of(slug: str, size: int) -> None:
        room = RoomFactory(slug=slug, is_private=True)
        people = User.objects.bulk_create(
            [User(username=f"{slug}-{i}", email=f"{slug}-{i}@example.com") for i in range(size)]
        )
        Membership.objects.bulk_create([Membership(room=room, user=p) for p in people])
        services.message_send(author=people[0], room=slug, body="one message", nonce=None)

    def delete(slug: str) -> None:
        services.room_delete(actor=admin, room=slug)

    room_of("small", 2)
    room_of("big", 5000)
    small, big = queries(lambda: delete("small")), queries(lambda: delete("big"))
    assert small == big
    # Every member of each room was told, by a row that outlives the room.
    told = Event.objects.filter(kind="member", data__action="deleted", room=None)
    assert told.filter(data__room__slug="big").count() == 5000
    assert told.filter(data__room__slug="small").count() == 2
