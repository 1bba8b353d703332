"""ReusableQuery: the SQL the ORM would build, for any values in its `__in` lists, built once."""

import importlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import selectors
from chat.models import Draft, Event, Membership, Message, Room
from chat.reusable import ReusableQuery
from tests.factories import MessageFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def by_rooms(room_ids):
    return Membership.objects.filter(room_id__in=room_ids, last_read_id__gte=0).values_list(
        "room_id", "user_id"
    )


def test_the_sql_is_the_orms_for_every_length_of_list():
    query = ReusableQuery(by_rooms, lists=1)
    for ids in ([5], [3, 9], [1, 2, 3, 4, 5, 6, 7]):
        sql, params = by_rooms(ids).query.get_compiler("default").as_sql()
        assert query.sql(ids) == (sql, list(params))


def test_two_lists_each_go_where_they_belong():
    def build(users, rooms):
        return Draft.objects.filter(user_id__in=users, room_id__in=rooms).exclude(body="")

    query = ReusableQuery(build, lists=2)
    for users, rooms in (([1], [2]), ([1, 4], [2, 3, 8])):
        sql, params = query.sql(users, rooms)
        expected_sql, expected_params = build(users, rooms).query.get_compiler("default").as_sql()
        assert (sql, list(params)) == (expected_sql, list(expected_params))


def test_rows_and_objects_are_what_the_queryset_gives():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    design, ops = RoomFactory(slug="design"), RoomFactory(slug="ops")
    for user in (alice, bob):
        for room in (design, ops):
            Membership.objects.create(user=user, room=room)
    Draft.objects.create(user=alice, room=design, body="half a thought")
    Draft.objects.create(user=bob, room=ops, body="")

    rows = ReusableQuery(by_rooms, lists=1)
    assert sorted(rows.rows([design.pk])) == sorted(by_rooms([design.pk]))
    assert sorted(rows.rows([design.pk, ops.pk])) == sorted(by_rooms([design.pk, ops.pk]))

    drafts = ReusableQuery(
        lambda users, rooms: Draft.objects.filter(user_id__in=users, room_id__in=rooms).exclude(
            body=""
        ),
        lists=2,
    )
    found = drafts.objects(Draft, [alice.pk, bob.pk], [design.pk, ops.pk])
    assert [(d.user_id, d.room_id, d.body) for d in found] == [
        (alice.pk, design.pk, "half a thought")
    ]
    assert found[0].updated is not None  # read as the model reads it (a datetime, not text)

    # Rows read elsewhere (a send reads them with the ordering lock) make the same instances.
    sql, params = drafts.sql([alice.pk, bob.pk], [design.pk, ops.pk])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        made = drafts.instances(Draft, cursor.fetchall())
    assert [(d.pk, d.user_id, d.room_id, d.body, d.version, d.updated) for d in made] == [
        (d.pk, d.user_id, d.room_id, d.body, d.version, d.updated) for d in found
    ]


def test_the_query_is_built_once():
    built = []

    def build(room_ids):
        built.append(room_ids)
        return by_rooms(room_ids)

    query = ReusableQuery(build, lists=1)
    with CaptureQueriesContext(connection) as ran:
        query.rows([1])
        query.rows([2, 3])
        query.rows([4, 5, 6])
    assert len(built) == 1
    assert len(ran) == 3


def test_empty_lists_are_refused():
    query = ReusableQuery(by_rooms, lists=1)
    with pytest.raises(ValueError):
        query.sql([])


def test_unread_counts_of_answers_as_the_orm_does():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    room = RoomFactory(slug="design")
    Membership.objects.create(user=alice, room=room)
    mine = Membership.objects.create(user=bob, room=room)
    MessageFactory(room=room, author=alice, body="one")
    MessageFactory(room=room, author=alice, body="two", broadcast=Message.Broadcast.CHANNEL)
    MessageFactory(room=room, author=bob, body="mine: not unread")

    assert selectors.unread_counts_of([mine.pk]) == {
        mine.pk: (bob.pk, selectors.unread_counts(bob.pk, [room.pk])[room.pk])
    }
    [(_, counts)] = selectors.unread_counts_of([mine.pk]).values()
    assert (counts["unread"], counts["mentions"]) == (2, 1)


@pytest.mark.parametrize(
    "query, lists",
    [
        ("chat.selectors._ACCESS", (["general", "design"], [3, 1, 2])),
        ("chat.selectors._COUNTS_OF", ([4, 5],)),
        ("chat.selectors._ROOMS_OF", ([1, 2, 3],)),
        ("chat.threads.selectors._UNREAD_OF", ([7, 8],)),
        ("chat.drafts._WITH_TEXT", ([1, 2], [3])),
        ("integrations.outgoing.triggers._HOOKS_IN_ROOMS", ([1, 2, 3],)),
    ],
)
def test_every_reused_query_runs_what_the_orm_builds(query, lists):
    module, name = query.rsplit(".", 1)
    reused = getattr(importlib.import_module(module), name)
    sql, params = reused._build(*lists).query.get_compiler("default").as_sql()
    assert reused.sql(*lists) == (sql, list(params))


def test_a_query_that_cannot_be_reused_is_built_every_time(caplog):
    def twice(room_ids):  # the list in two places: no single slot to fill
        return Membership.objects.filter(room_id__in=room_ids).exclude(user_id__in=room_ids)

    query = ReusableQuery(twice, lists=1)
    for ids in ([1], [2, 3]):
        sql, params = twice(ids).query.get_compiler("default").as_sql()
        assert query.sql(ids) == (sql, list(params))
    assert "cannot be reused" in caplog.text


# --- objects(): rows read as a raw queryset reads them ---------------------------------


def test_objects_reads_json_and_extra_columns_as_the_orm_does():
    alice = UserFactory(username="alice")
    room = RoomFactory(slug="design")
    Membership.objects.create(user=alice, room=room)
    Event.objects.create(kind="read", user=alice, data={"room": "design", "unread": 3})

    events = ReusableQuery(lambda users: Event.objects.filter(user_id__in=users), lists=1)
    [event] = events.objects(Event, [alice.pk])
    assert event.data == {"room": "design", "unread": 3}  # a dict, not text
    assert not event._state.adding

    [(got, member)] = [
        (r, r.member_id) for r in selectors._ACCESS.objects(Room, ["design"], [alice.pk])
    ]
    assert (got.pk, got.slug, member) == (room.pk, "design", alice.pk)
    assert events.objects(Event, [alice.pk + 1000]) == []
