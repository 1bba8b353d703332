"""Notification settings: room levels, @channel/@here, user groups, do not disturb."""

import json
import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat import services
from chat.errors import ChatError
from chat.models import Membership, MentionPolicy, Message, UserGroup
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def level_of(who, slug: str) -> str:
    return next(r["notify"] for r in who.rooms() if r["slug"] == slug)


def counts_of(who, slug: str) -> tuple[int, int]:
    entry = next(r for r in who.rooms() if r["slug"] == slug)
    return entry["unread"], entry["mentions"]


def put_level(who, slug: str, level):
    return who.client.put(
        f"/api/rooms/{slug}/notify/", json.dumps({"level": level}), content_type="application/json"
    )


def send(who, slug: str, body: str) -> Message:
    return services.message_send(author=who.user, room=slug, body=body, nonce=None).message


def set_limit(n: int) -> None:
    policy = MentionPolicy.current()
    policy.broadcast_max_members = n
    policy.save()


# --- room levels ------------------------------------------------------------------------


def test_a_member_sets_a_rooms_level_and_every_room_entry_shows_it(person, channel):
    alice = person("alice")
    channel("design", alice)
    assert level_of(alice, "design") == "default"

    response = put_level(alice, "design", "none")
    assert response.status_code == 200
    assert response.json() == {"room": "design", "notify": "none"}
    assert level_of(alice, "design") == "none"
    assert level_of(alice, "general") == "default"
    assert Membership.objects.get(user=alice.user, room__slug="design").notify == "none"

    page = alice.get("/r/general/").content.decode()
    config = json.loads(
        re.search(r'<script id="chat-config" type="application/json">(.*?)</script>', page)[1]
    )
    assert {r["slug"]: r["notify"] for r in config["rooms"]} == {
        "general": "default",
        "design": "none",
    }

    assert put_level(alice, "design", "default").json()["notify"] == "default"
    assert Membership.objects.get(user=alice.user, room__slug="design").notify == ""


@pytest.mark.parametrize("level", ["loud", "", None, 3, ["all"], "ALL"])
def test_an_unknown_level_is_refused_and_changes_nothing(person, channel, level):
    alice = person("alice")
    channel("design", alice)
    put_level(alice, "design", "mentions")
    response = put_level(alice, "design", level)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert level_of(alice, "design") == "mentions"


def test_levels_are_only_for_your_own_memberships(person, channel, client):
    alice, bob = person("alice"), person("bob")
    channel("design", alice)
    channel("secret", alice, private=True)
    # A public room bob has not joined: he may read it, not set its level.
    response = put_level(bob, "design", "none")
    assert (response.status_code, response.json()["error"]) == (403, "not_member")
    # A private room of others answers exactly as one that does not exist.
    hidden, missing = put_level(bob, "secret", "none"), put_level(bob, "nowhere", "none")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"] == missing.json()["error"] == "no_such_room"
    assert hidden.json()["detail"].replace("secret", "X") == missing.json()["detail"].replace(
        "nowhere", "X"
    )
    # Nobody else's level moved.
    assert level_of(alice, "design") == level_of(alice, "secret") == "default"
    anonymous = client.put(
        "/api/rooms/design/notify/", json.dumps({"level": "all"}), content_type="application/json"
    )
    assert anonymous.status_code == 401
    assert alice.get("/api/rooms/design/notify/").status_code == 405


async def test_a_level_change_reaches_only_the_members_own_sockets_and_a_reconnect(
    people, channel, sockets
):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("design", alice, bob)
    laptop, phone, bobs = await sockets(alice), await sockets(alice), await sockets(bob)

    response = await sync_to_async(put_level)(alice, "design", "all")
    assert response.status_code == 200
    for sock in (laptop, phone):
        event = await sock.receive()
        assert event["type"] == "notify"
        assert (event["room"], event["notify"]) == ("design", "all")
        seq = event["seq"]
    await sync_to_async(send)(bob, "design", "hello")  # what bob's socket gets next
    assert (await bobs.receive())["type"] == "message"

    # A socket that was away gets the change in its replay.
    later = await sockets(alice, seq=seq - 1)
    replayed = await later.receive()
    assert (replayed["type"], replayed["notify"], replayed["seq"]) == ("notify", "all", seq)


# --- @channel, @everyone, @here -----------------------------------------------------------


def test_channel_is_stored_as_a_flag_counted_as_a_mention_for_every_member(person, channel):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    channel("design", alice, bob, carol)
    message = send(alice, "design", "@channel the build is red")
    assert message.broadcast == "channel"
    # No row per member: the flag is the mention.
    assert not message.mention_rows.exists()
    [shown] = bob.history("design")
    assert shown["broadcast"] == "channel"
    assert shown["mentions"] == []
    assert '<span class="mention">@channel</span>' in shown["html"]

    assert counts_of(bob, "design") == (1, 1)
    assert counts_of(carol, "design") == (1, 1)
    assert counts_of(alice, "design") == (0, 0)  # her own message
    bob.post("/api/rooms/design/read/", {"id": message.id})
    assert counts_of(bob, "design") == (0, 0)

    # @everyone is the same; a message without either has no broadcast.
    assert send(alice, "design", "@everyone lunch").broadcast == "channel"
    plain = send(alice, "design", "no one in particular")
    assert bob.history("design")[-1]["broadcast"] is None and plain.broadcast == ""
    assert counts_of(bob, "design") == (2, 1)


def test_a_broadcast_in_a_large_room_is_for_admins_and_moderators_only(person, channel):
    set_limit(3)
    member = person("member")
    moderator = person("moderator", role="moderator")
    admin = person("admin", role="admin")
    others = [person(f"p{i}") for i in range(2)]
    channel("big", member, moderator, admin, *others)  # 5 members: more than 3
    channel("small", member, moderator, admin)  # 3 members: not more than 3

    for body in ("@channel hi", "@everyone hi", "@here hi", "see @here"):
        with pytest.raises(ChatError) as refused:
            send(member, "big", body)
        assert refused.value.code == "forbidden"
    assert not Message.objects.filter(room__slug="big").exists()

    assert send(moderator, "big", "@channel from a moderator").broadcast == "channel"
    assert send(admin, "big", "@here from an admin").broadcast == "here"
    assert send(member, "small", "@channel anyone may here").broadcast == "channel"
    # `@channel` inside code is not a broadcast, so it is allowed.
    assert send(member, "big", "type `@channel` to tell everyone").broadcast == ""


def test_in_one_batch_only_the_refused_broadcast_fails(person, channel):
    set_limit(2)
    member, moderator, other = person("member"), person("moderator", role="moderator"), person("o")
    channel("big", member, moderator, other)
    batch = [
        services.SendRequest(member.user, "big", "@channel from a member", "1"),
        services.SendRequest(moderator.user, "big", "@channel from a moderator", "2"),
        services.SendRequest(member.user, "big", "just words @o", "3"),
        services.SendRequest(member.user, "big", "@here from a member", "4"),
    ]
    results = services.message_send_many(batch)
    assert [getattr(r, "code", None) for r in results] == ["forbidden", None, None, "forbidden"]
    stored = [(m["body"], m["broadcast"], m["mentions"]) for m in other.history("big")]
    assert stored == [("@channel from a moderator", "channel", []), ("just words @o", None, ["o"])]
    assert counts_of(other, "big") == (2, 2)


def test_a_retried_broadcast_is_answered_with_the_stored_message_even_if_now_refused(
    person, channel
):
    alice, bob = person("alice"), person("bob")
    channel("design", alice, bob)
    first = services.message_send(author=alice.user, room="design", body="@here", nonce="n1")
    set_limit(1)  # the room is now too large for a member's @here
    again = services.message_send(author=alice.user, room="design", body="@here", nonce="n1")
    assert (again.created, again.message.id) == (False, first.message.id)
    with pytest.raises(ChatError):
        services.message_send(author=alice.user, room="design", body="@here", nonce="n2")


async def test_a_refused_broadcast_is_an_error_on_the_socket_which_stays_usable(
    people, channel, sockets
):
    await sync_to_async(set_limit)(1)
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("design", alice, bob)
    sock = await sockets(alice)
    await sock.send({"type": "send", "room": "design", "body": "@here all", "nonce": "n1"})
    error = await sock.receive()
    assert (error["type"], error["code"], error["nonce"]) == ("error", "forbidden", "n1")
    await sock.send({"type": "send", "room": "design", "body": "@bob only", "nonce": "n2"})
    message = await sock.receive()
    assert (message["type"], message["nonce"], message["mentions"]) == ("message", "n2", ["bob"])
    assert message["broadcast"] is None


async def test_here_mentions_only_the_members_online_when_it_is_sent(people, channel, sockets):
    alice, bob, carol = await people("alice", "bob", "carol")
    await sync_to_async(channel)("design", alice, bob, carol)
    bobs = await sockets(bob)  # bob is online; carol is not
    await sockets(alice)

    message = await sync_to_async(send)(alice, "design", "@here standup")
    event = await bobs.receive()
    assert (event["id"], event["broadcast"], event["mentions"]) == (message.id, "here", ["bob"])

    def counts() -> tuple:
        return counts_of(bob, "design"), counts_of(carol, "design")

    assert await sync_to_async(counts)() == ((1, 1), (1, 0))
    [shown] = await sync_to_async(carol.history)("design")
    assert shown["broadcast"] == "here" and shown["mentions"] == ["bob"]


async def test_resumed_counts_a_channel_broadcast_as_a_mention(people, channel, sockets):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("design", alice, bob)
    first = await sockets(bob)
    await sync_to_async(send)(alice, "design", "before")
    seq = (await first.receive())["seq"]
    await first.close()
    await sync_to_async(send)(alice, "design", "@channel while bob was away")
    await sync_to_async(send)(alice, "design", "and @bob by name")

    back = await sockets(bob, seq=seq)
    events = []
    while (event := await back.receive())["type"] != "resumed":
        events.append(event)
    assert [e["broadcast"] for e in events] == ["channel", None]
    rooms = {r["room"]: r for r in event["rooms"]}
    assert (rooms["design"]["unread"], rooms["design"]["mentions"]) == (3, 2)


def test_an_edit_can_add_a_broadcast_under_the_same_rule(person, channel):
    set_limit(1)
    alice, bob = person("alice"), person("bob")
    channel("design", alice, bob)
    message = send(alice, "design", "hello")
    with pytest.raises(ChatError) as refused:
        services.message_edit(actor=alice.user, message_id=message.id, body="hello @channel")
    assert refused.value.code == "forbidden"
    message.refresh_from_db()
    assert (message.body, message.broadcast) == ("hello", "")


# --- user groups ------------------------------------------------------------------------


def test_a_group_mentions_its_members_who_are_in_the_room(person, channel):
    alice, bob, carol, dave = person("alice"), person("bob"), person("carol"), person("dave")
    channel("design", alice, bob, carol)  # dave is not in #design
    group = UserGroup.objects.create(handle="designers", name="Designers")
    group.members.set([alice.user, bob.user, dave.user])

    message = send(carol, "design", "@designers please review")
    [shown] = carol.history("design")
    assert shown["mentions"] == ["alice", "bob"]
    assert '<span class="mention">@designers</span>' in shown["html"]
    assert counts_of(bob, "design") == (1, 1)
    assert not message.mention_rows.filter(user=dave.user).exists()

    # The author is not mentioned by their own group.
    send(alice, "design", "@DESIGNERS again")
    assert carol.history("design")[-1]["mentions"] == ["bob"]
    # An unknown handle is plain text.
    send(alice, "design", "@nobodies hello")
    last = carol.history("design")[-1]
    assert last["mentions"] == [] and "mention" not in last["html"]


def test_a_username_wins_over_a_group_handle(person, channel):
    alice, bob = person("alice"), person("bob")
    group = UserGroup.objects.create(handle="ops")
    group.members.set([bob.user])
    ops = person("ops")  # signed up after the group was made
    channel("design", alice, bob, ops)
    send(alice, "design", "@ops ping")
    assert alice.history("design")[-1]["mentions"] == ["ops"]


def test_admins_manage_groups_through_the_api(person):
    admin = person("admin", role="admin")
    member = person("member")
    bob = person("bob")

    refused = member.post("/api/groups/", {"handle": "design", "members": ["bob"]})
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")

    made = admin.post(
        "/api/groups/",
        {"handle": "Design", "name": "Design", "description": "UI", "members": ["bob", "Member"]},
    )
    assert made.status_code == 201
    expected = {
        "handle": "design",
        "name": "Design",
        "description": "UI",
        "members": ["bob", "member"],
    }
    assert made.json() == {"group": expected}
    assert member.get("/api/groups/").json() == {"groups": [expected]}

    assert member.patch("/api/groups/design/", {"members": []}).status_code == 403
    changed = admin.patch("/api/groups/design/", {"members": ["admin"], "name": "Designers"})
    assert changed.status_code == 200
    assert changed.json()["group"]["members"] == ["admin"]
    assert changed.json()["group"]["name"] == "Designers"
    assert bob.get("/api/groups/").json()["groups"][0]["members"] == ["admin"]

    assert member.delete("/api/groups/design/").status_code == 403
    assert admin.delete("/api/groups/design/").status_code == 204
    assert admin.delete("/api/groups/design/").status_code == 404
    assert member.get("/api/groups/").json() == {"groups": []}


@pytest.mark.parametrize(
    ("handle", "why"),
    [
        ("bob", "username"),
        ("BOB", "username"),
        ("here", "whole room"),
        ("channel", "whole room"),
        ("everyone", "whole room"),
        ("de sign", "letters"),
        ("-design", "letters"),
        ("dé", "letters"),
        ("", "handle"),
        (3, "handle"),
        ("taken", "already"),
    ],
)
def test_a_handle_is_refused_when_it_could_not_be_told_apart(person, handle, why):
    admin = person("admin", role="admin")
    person("bob")
    UserGroup.objects.create(handle="taken")
    response = admin.post("/api/groups/", {"handle": handle})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert why in response.json()["detail"]
    assert UserGroup.objects.count() == 1


def test_a_group_name_is_one_line_of_plain_text(person):
    admin = person("admin", role="admin")
    for name in ("two\nlines", "right\u202eleft", "x" * 81):
        response = admin.post("/api/groups/", {"handle": "design", "name": name})
        assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert not UserGroup.objects.exists()


def test_unknown_members_are_refused(person):
    admin = person("admin", role="admin")
    response = admin.post("/api/groups/", {"handle": "design", "members": ["ghost"]})
    assert response.status_code == 400 and "ghost" in response.json()["detail"]
    assert not UserGroup.objects.exists()


# --- do not disturb ----------------------------------------------------------------------


def test_do_not_disturb_is_set_shown_to_everyone_and_ended(person):
    alice, bob = person("alice"), person("bob")
    until = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    response = alice.patch("/api/profile/", {"dnd_until": until.isoformat()})
    assert response.status_code == 200, response.content
    assert parse_datetime(response.json()["profile"]["dnd_until"]) == until
    people = {p["username"]: p for p in bob.get("/api/people/").json()["people"]}
    assert people["alice"]["dnd_until"] is not None
    assert people["bob"]["dnd_until"] is None

    assert alice.patch("/api/profile/", {"dnd_until": None}).json()["profile"]["dnd_until"] is None
    for bad in ("tomorrow", "2020-01-01T00:00:00Z", "2999-01-01T00:00:00", 5):
        refused = alice.patch("/api/profile/", {"dnd_until": bad})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid", bad


def test_a_past_do_not_disturb_is_no_longer_shown(person):
    alice = person("alice")
    alice.user.dnd_until = timezone.now() - timedelta(minutes=1)
    alice.user.save()
    people = {p["username"]: p for p in alice.get("/api/people/").json()["people"]}
    assert people["alice"]["dnd_until"] is None


# --- cost ----------------------------------------------------------------------------------


def queries(fn) -> int:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx)


def test_a_broadcast_costs_no_more_queries_than_a_mention_whatever_the_room_size(person, channel):
    alice, bob = person("alice", role="moderator"), person("bob")
    small = channel("small", alice, bob)
    big = channel("big", alice, bob)
    for _ in range(40):
        MembershipFactory(room=big, user=UserFactory())
    assert small.memberships.count() == 2 and big.memberships.count() == 42

    def cost(slug: str, body: str, nonce: str) -> int:
        def one() -> None:
            results = services.message_send_many(
                [services.SendRequest(alice.user, slug, body, nonce)]
            )
            assert not isinstance(results[0], ChatError), results[0]

        return queries(one)

    # One mention row is written for @bob; none for @channel, whatever the room's size.
    mention = cost("big", "@bob look", "a")
    broadcast = cost("big", "@channel look", "b")
    assert broadcast <= mention
    assert cost("small", "@channel look", "c") == broadcast
    assert cost("big", "@here look", "d") <= mention
    # A group handle costs one more query, once for the batch.
    UserGroup.objects.create(handle="team").members.set([bob.user])
    assert cost("big", "@team look", "e") == mention + 1
    # Bob (offline, so not "here") counts @bob, @channel and @team.
    assert counts_of(bob, "big") == (4, 3)


# --- the admin -----------------------------------------------------------------------------


def superuser_client():
    from django.test import Client

    user = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_edits_the_one_mention_policy():
    client = superuser_client()
    response = client.get("/admin/chat/mentionpolicy/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/chat/mentionpolicy/1/change/"
    client.post("/admin/chat/mentionpolicy/1/change/", {"broadcast_max_members": "7"})
    assert MentionPolicy.current().broadcast_max_members == 7
    assert MentionPolicy.objects.count() == 1


def test_the_admin_makes_groups_with_the_apis_rules_for_handles(person):
    bob = person("bob")
    client = superuser_client()
    refused = client.post("/admin/chat/usergroup/add/", {"handle": "Bob", "members": [bob.user.pk]})
    assert refused.status_code == 200
    assert "is someone&#x27;s username" in refused.content.decode()
    assert not UserGroup.objects.exists()

    made = client.post(
        "/admin/chat/usergroup/add/", {"handle": "Design", "name": "", "members": [bob.user.pk]}
    )
    assert made.status_code == 302
    group = UserGroup.objects.get()
    assert group.handle == "design" and list(group.members.all()) == [bob.user]
    # Saved again with its own handle: not refused as taken.
    again = client.post(
        f"/admin/chat/usergroup/{group.pk}/change/",
        {"handle": "design", "name": "Design", "members": [bob.user.pk]},
    )
    assert again.status_code == 302
    assert UserGroup.objects.get().name == "Design"


def test_a_batch_of_broadcasts_and_group_mentions_costs_the_same_for_1_or_30(person, channel):
    alice, bob = person("alice", role="moderator"), person("bob")
    channel("one", alice, bob)
    channel("two", alice, bob)
    UserGroup.objects.create(handle="team").members.set([bob.user])
    bodies = ["@channel a", "@here b", "@team c", "@bob @team @here d", "@everyone @nobody e"]

    def send_batch(n: int, tag: str) -> None:
        batch = [
            services.SendRequest(alice.user, ("one", "two")[i % 2], bodies[i % 5], f"{tag}{i}")
            for i in range(n)
        ]
        results = services.message_send_many(batch)
        assert not any(isinstance(r, ChatError) for r in results)

    assert queries(lambda: send_batch(5, "a")) == queries(lambda: send_batch(30, "b"))
    # Every message in #one mentions bob, except a bare @here (bob is offline).
    sent_to_one = [i % 5 for n in (5, 30) for i in range(n) if i % 2 == 0]
    assert counts_of(bob, "one") == (len(sent_to_one), len([b for b in sent_to_one if b != 1]))
