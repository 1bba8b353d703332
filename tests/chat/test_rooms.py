"""Rooms: public and private channels, direct messages, and membership on open sockets."""

import pytest
from asgiref.sync import sync_to_async

from chat import services
from chat.models import Event, Membership, Room
from chat.services import ChatError

pytestmark = pytest.mark.django_db(transaction=True)


def slugs(rooms: list[dict]) -> list[str]:
    return [r["slug"] for r in rooms]


def say(who, room: str, body: str) -> int:
    return services.message_send(author=who.user, room=room, body=body, nonce=None).message.id


# --- public channels: create, browse, join, leave -------------------------------


def test_creating_a_channel_makes_the_creator_its_first_member(person):
    alice = person("alice")
    response = alice.post("/api/rooms/", {"name": "Design Team", "topic": "pixels"})
    assert response.status_code == 201
    assert response.json() == {
        "room": {
            "slug": "design-team",
            "name": "Design Team",
            "topic": "pixels",
            "kind": "channel",
            "private": False,
            "archived": False,
        }
    }
    assert "design-team" in slugs(alice.rooms())
    members = alice.get("/api/rooms/design-team/members/").json()["members"]
    assert [m["username"] for m in members] == ["alice"]


def test_a_taken_slug_is_refused_with_room_exists(person):
    alice, bob = person("alice"), person("bob")
    assert alice.post("/api/rooms/", {"name": "Design"}).status_code == 201
    again = bob.post("/api/rooms/", {"name": "Other name", "slug": "design"})
    assert again.status_code == 400 and again.json()["error"] == "room_exists"
    assert bob.post("/api/rooms/", {"name": "General"}).json()["error"] == "room_exists"
    assert Room.objects.filter(slug="design").get().created_by == alice.user
    assert not Membership.objects.filter(user=bob.user, room__slug="design").exists()


def test_a_slug_taken_by_a_private_room_you_cannot_see_is_not_revealed(person):
    alice, bob = person("alice"), person("bob")
    alice.post("/api/rooms/", {"name": "Hidden", "private": True})
    # Bob gets his room, under the next free slug: nothing says #hidden exists.
    created = bob.post("/api/rooms/", {"name": "hidden"})
    assert created.status_code == 201
    assert created.json()["room"]["slug"] == "hidden-2"
    assert bob.history("hidden-2") == []
    # Alice, who can see hers, is told it exists.
    assert alice.post("/api/rooms/", {"name": "hidden"}).json()["error"] == "room_exists"


@pytest.mark.parametrize("name", ["", "   ", "x" * 81, "two\nlines", "!!!", None, 5])
def test_a_channel_needs_a_usable_name(person, name):
    response = person("alice").post("/api/rooms/", {"name": name})
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert not Room.objects.exclude(slug="general").exists()


def test_browse_lists_every_public_channel_and_nothing_private(person):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    services.room_create(actor=alice.user, name="random")
    services.room_create(actor=alice.user, name="old")
    services.room_update(actor=alice.user, room="old", archived=True)
    services.room_create(actor=alice.user, name="secret", private=True)
    services.dm_open(actor=alice.user, usernames=["bob"])
    services.dm_open(actor=bob.user, usernames=["alice", "carol"])
    services.room_join(actor=bob.user, room="random")

    response = bob.get("/api/rooms/", browse=1)
    assert response.status_code == 200
    listed = {r["slug"]: r for r in response.json()["rooms"]}
    assert sorted(listed) == ["general", "old", "random"]
    assert listed["random"] == {
        "slug": "random",
        "name": "random",
        "topic": "",
        "kind": "channel",
        "private": False,
        "archived": False,
        "joined": True,
        "members_count": 2,
    }
    assert listed["old"]["archived"] is True and listed["old"]["joined"] is False
    assert listed["general"]["members_count"] == 3
    # Membership does not change what browsing shows: not even the members see their secret.
    assert sorted(r["slug"] for r in alice.get("/api/rooms/", browse=1).json()["rooms"]) == [
        "general",
        "old",
        "random",
    ]
    assert sorted(r["slug"] for r in carol.get("/api/rooms/", browse=1).json()["rooms"]) == [
        "general",
        "old",
        "random",
    ]


def test_rooms_are_listed_by_name_ignoring_case(person):
    """As the pages show them: "general" before "Project Plans", a conversation by its people."""
    alice = person("alice")
    for who in ("zed", "Bea", "carl"):
        person(who)
    for name in ("Project Plans", "apple", "Zoo", "design"):
        services.room_create(actor=alice.user, name=name)
    services.room_create(actor=alice.user, name="Attic")
    services.room_update(actor=alice.user, room="attic", archived=True)
    services.dm_open(actor=alice.user, usernames=["zed"])
    services.dm_open(actor=alice.user, usernames=["Bea", "carl"])
    services.dm_open(actor=alice.user, usernames=["carl"])

    mine = alice.rooms()
    channels = [r["name"] for r in mine if r["kind"] == "channel"]
    assert channels == ["apple", "design", "general", "Project Plans", "Zoo"]
    people = [", ".join(r["members"]) for r in mine if r["kind"] == "dm"]
    assert people == ["Bea, carl", "carl", "zed"]
    listed = alice.get("/api/rooms/", browse=1).json()["rooms"]
    assert [r["name"] for r in listed] == [
        "apple",
        "design",
        "general",
        "Project Plans",
        "Zoo",
        "Attic",  # archived ones last
    ]


def test_joining_and_leaving_a_public_channel(person):
    alice, bob = person("alice"), person("bob")
    services.room_create(actor=alice.user, name="random")
    say(alice, "random", "before bob")
    assert bob.post("/api/rooms/random/join/").json()["room"]["slug"] == "random"
    assert "random" in slugs(bob.rooms())
    # Joining again is harmless.
    assert bob.post("/api/rooms/random/join/").status_code == 200
    assert Membership.objects.filter(room__slug="random", user=bob.user).count() == 1
    # A new member starts with everything before read.
    [entry] = [r for r in bob.rooms() if r["slug"] == "random"]
    assert entry["unread"] == 0

    services.message_send(author=bob.user, room="random", body="hi", nonce=None)
    assert bob.post("/api/rooms/random/leave/").status_code == 200
    assert "random" not in slugs(bob.rooms())
    with pytest.raises(ChatError) as refused:
        services.message_send(author=bob.user, room="random", body="again", nonce=None)
    assert refused.value.code == "not_member"
    # Leaving a channel one is not in is refused the same way.
    assert bob.post("/api/rooms/random/leave/").json()["error"] == "not_member"


def test_nobody_leaves_general(person):
    alice = person("alice")
    response = alice.post("/api/rooms/general/leave/")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert "general" in slugs(alice.rooms())


@pytest.mark.parametrize("who", ["creator", "admin", "superuser"])
def test_the_creator_or_an_admin_renames_a_channel_and_sets_its_topic(person, who):
    creator = person("creator")
    services.room_create(actor=creator.user, name="design")
    actor = {
        "creator": creator,
        "admin": person("ada", role="admin"),
        "superuser": person("root", is_superuser=True, is_staff=True),
    }[who]
    response = actor.patch("/api/rooms/design/", {"name": "Design & UX", "topic": "new topic"})
    assert response.status_code == 200, response.content
    assert response.json()["room"]["name"] == "Design & UX"
    assert response.json()["room"]["topic"] == "new topic"
    [entry] = [r for r in creator.rooms() if r["slug"] == "design"]
    assert (entry["name"], entry["topic"]) == ("Design & UX", "new topic")


@pytest.mark.parametrize("role", ["member", "moderator"])
def test_other_members_may_not_rename_a_channel(person, role):
    alice, bob = person("alice"), person("bob", role=role)
    services.room_create(actor=alice.user, name="design", topic="kept")
    services.room_join(actor=bob.user, room="design")
    response = bob.patch("/api/rooms/design/", {"name": "mine", "topic": "changed"})
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    response = bob.patch("/api/rooms/design/", {"archived": True})
    assert response.status_code == 403
    room = Room.objects.get(slug="design")
    assert (room.name, room.topic, room.is_archived) == ("design", "kept", False)


def test_general_cannot_be_archived(person):
    admin = person("ada", role="admin")
    response = admin.patch("/api/rooms/general/", {"archived": True})
    assert response.status_code == 403
    assert not Room.objects.get(slug="general").is_archived


# --- archived channels: read-only, hidden from the sidebar, still readable ------


@pytest.fixture
def archived(person):
    alice, bob = person("alice"), person("bob")
    services.room_create(actor=alice.user, name="old")
    services.room_join(actor=bob.user, room="old")
    kept = say(bob, "old", "kept for the record")
    response = alice.patch("/api/rooms/old/", {"archived": True})
    assert response.json()["room"]["archived"] is True
    return alice, bob, kept


def test_an_archived_channel_refuses_sends_edits_and_reactions(archived):
    alice, bob, kept = archived
    attempts = [
        lambda: services.message_send(author=bob.user, room="old", body="late", nonce=None),
        lambda: services.message_edit(actor=bob.user, message_id=kept, body="changed"),
        lambda: services.reaction_toggle(actor=alice.user, message_id=kept, emoji="👍"),
        lambda: services.message_delete(actor=bob.user, message_id=kept),
    ]
    for attempt in attempts:
        with pytest.raises(ChatError) as refused:
            attempt()
        assert refused.value.code == "forbidden"
    assert bob.patch(f"/api/messages/{kept}/", {"body": "changed"}).status_code == 403
    assert alice.post(f"/api/messages/{kept}/reactions/", {"emoji": "👍"}).status_code == 403
    assert bob.post("/api/rooms/old/join/").status_code == 200  # already a member: no change
    [message] = bob.history("old")
    assert (message["body"], message["edited"], message["reactions"]) == (
        "kept for the record",
        None,
        {},
    )


def test_an_archived_channel_is_hidden_from_the_sidebar_but_readable(archived, person):
    alice, bob, _ = archived
    assert "old" not in slugs(bob.rooms()) and "old" not in slugs(alice.rooms())
    assert [m["body"] for m in bob.history("old")] == ["kept for the record"]
    # Public: people who never joined read it too, but cannot join it any more.
    carol = person("carol")
    assert [m["body"] for m in carol.history("old")] == ["kept for the record"]
    response = carol.post("/api/rooms/old/join/")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_unarchiving_makes_a_channel_writable_again(archived):
    alice, bob, _ = archived
    assert alice.patch("/api/rooms/old/", {"archived": False}).json()["room"]["archived"] is False
    say(bob, "old", "back")
    assert "old" in slugs(bob.rooms())


async def test_renaming_and_archiving_reach_the_members_as_room_events(people, channel, sockets):
    alice, bob, carol = await people("alice", "bob", "carol")
    await sync_to_async(channel)("design", alice, bob)
    b, c = await sockets(bob), await sockets(carol)

    await sync_to_async(alice.patch)("/api/rooms/design/", {"topic": "pixels"})
    renamed = await b.receive()
    assert renamed == {
        "type": "room",
        "room": {
            "slug": "design",
            "name": "design",
            "topic": "pixels",
            "kind": "channel",
            "private": False,
            "archived": False,
        },
        "seq": renamed["seq"],
    }
    await sync_to_async(alice.patch)("/api/rooms/design/", {"archived": True})
    archived_event = await b.receive()
    assert archived_event["type"] == "room" and archived_event["room"]["archived"] is True
    assert archived_event["seq"] > renamed["seq"]

    await b.send({"type": "send", "room": "design", "body": "late", "nonce": "late"})
    refused = await b.receive()
    assert (refused["type"], refused["code"], refused["nonce"]) == ("error", "forbidden", "late")
    # Carol is not in #design: her next event is a #general message.
    await sync_to_async(say)(alice, "general", "marker")
    assert (await c.receive())["body"] == "marker"


# --- private channels ----------------------------------------------------------


@pytest.fixture
def secret(person):
    """#secret, private: alice created it; bob is outside."""
    alice, bob = person("alice"), person("bob")
    services.room_create(actor=alice.user, name="secret", private=True)
    say(alice, "secret", "classified")
    return alice, bob


def test_a_private_channel_is_invisible_to_non_members(secret):
    alice, bob = secret
    assert "secret" not in slugs(bob.rooms())
    assert "secret" not in slugs(bob.get("/api/rooms/", browse=1).json()["rooms"])
    for response in (
        bob.get("/api/rooms/secret/messages/"),
        bob.get("/api/rooms/secret/members/"),
        bob.post("/api/rooms/secret/join/"),
        bob.get("/api/users/", q="a", room="secret"),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == "no_such_room"
    assert not Membership.objects.filter(room__slug="secret", user=bob.user).exists()
    with pytest.raises(ChatError) as refused:
        services.message_send(author=bob.user, room="secret", body="let me in", nonce=None)
    assert refused.value.code == "no_such_room"


def test_members_invite_others_who_then_read_and_post(secret, person):
    alice, bob = secret
    carol = person("carol")
    response = alice.post("/api/rooms/secret/members/", {"username": "bob"})
    assert response.status_code == 201 and response.json() == {"username": "bob"}
    assert [m["body"] for m in bob.history("secret")] == ["classified"]
    assert "secret" in slugs(bob.rooms())
    say(bob, "secret", "thanks")
    # Any member of a private channel may invite.
    assert bob.post("/api/rooms/secret/members/", {"username": "carol"}).status_code == 201
    assert [m["body"] for m in carol.history("secret")] == ["classified", "thanks"]
    names = [m["username"] for m in alice.get("/api/rooms/secret/members/").json()["members"]]
    assert names == ["alice", "bob", "carol"]


def test_inviting_someone_who_does_not_exist_or_is_inactive_is_not_found(secret, person):
    alice, _ = secret
    person("gone", is_active=False)
    for name in ("nobody", "gone"):
        response = alice.post("/api/rooms/secret/members/", {"username": name})
        assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_inviting_into_a_public_channel_adds_the_person(person):
    alice, bob = person("alice"), person("bob")
    services.room_create(actor=alice.user, name="random")
    assert alice.post("/api/rooms/random/members/", {"username": "bob"}).status_code == 201
    assert "random" in slugs(bob.rooms())


def test_the_creator_or_a_moderator_removes_members(secret, person):
    alice, bob = secret
    carol, mod = person("carol"), person("mo", role="moderator")
    for name in ("bob", "carol", "mo"):
        services.room_invite(actor=alice.user, room="secret", username=name)
    response = carol.delete("/api/rooms/secret/members/bob/")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert alice.delete("/api/rooms/secret/members/bob/").status_code == 204
    assert mod.delete("/api/rooms/secret/members/carol/").status_code == 204
    assert [m["username"] for m in alice.get("/api/rooms/secret/members/").json()["members"]] == [
        "alice",
        "mo",
    ]
    # The removed are outside again: the same 404 as for a room that does not exist.
    for removed in (bob, carol):
        response = removed.get("/api/rooms/secret/messages/")
        assert response.status_code == 404 and response.json()["error"] == "no_such_room"
    again = alice.delete("/api/rooms/secret/members/bob/")
    assert again.status_code == 404 and again.json()["error"] == "not_found"


# --- direct messages ---------------------------------------------------------------


def test_a_direct_message_between_two_people(person):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    response = alice.post("/api/dms/", {"users": ["bob"]})
    assert response.status_code == 200
    room = response.json()["room"]
    assert room["kind"] == "dm" and room["private"] is True and room["slug"].startswith("dm-")
    say(alice, room["slug"], "psst")
    assert [m["body"] for m in bob.history(room["slug"])] == ["psst"]
    [entry] = [r for r in bob.rooms() if r["slug"] == room["slug"]]
    assert entry["members"] == ["alice"] and entry["unread"] == 1
    # Carol sees nothing of it: not in her rooms, not browsable, not readable.
    assert room["slug"] not in slugs(carol.rooms())
    assert room["slug"] not in slugs(carol.get("/api/rooms/", browse=1).json()["rooms"])
    assert carol.get(f"/api/rooms/{room['slug']}/messages/").status_code == 404
    assert carol.post(f"/api/rooms/{room['slug']}/join/").status_code == 404


def test_the_same_people_always_get_the_same_conversation(person):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    first = alice.post("/api/dms/", {"users": ["bob", "carol"]}).json()["room"]
    for who, names in (
        (alice, ["carol", "bob"]),
        (alice, ["carol", "bob", "alice", "bob"]),
        (bob, ["alice", "carol"]),
        (carol, ["bob", "alice"]),
    ):
        assert who.post("/api/dms/", {"users": names}).json()["room"] == first
    one_to_one = alice.post("/api/dms/", {"users": ["bob"]}).json()["room"]
    assert one_to_one["slug"] != first["slug"]
    assert bob.post("/api/dms/", {"users": ["alice"]}).json()["room"] == one_to_one
    assert Room.objects.filter(kind="dm").count() == 2


def test_a_group_conversation_holds_up_to_eight_people(person):
    alice = person("alice")
    others = [person(f"p{i}").name for i in range(8)]
    group = alice.post("/api/dms/", {"users": others[:7]})
    assert group.status_code == 200
    assert Membership.objects.filter(room__slug=group.json()["room"]["slug"]).count() == 8
    too_many = alice.post("/api/dms/", {"users": others})
    assert too_many.status_code == 400 and too_many.json()["error"] == "invalid"
    assert Room.objects.filter(kind="dm").count() == 1


def test_a_conversation_of_eight_long_names_opens(person):
    alice = person("alice.with.a.long.name")
    others = [person(f"someone.with.a.name.{i:02d}").name for i in range(7)]
    response = alice.post("/api/dms/", {"users": others})
    assert response.status_code == 200, response.content
    room = Room.objects.get(slug=response.json()["room"]["slug"])
    assert room.memberships.count() == 8


@pytest.mark.parametrize(
    ("users", "status", "code"),
    [
        ([], 400, "invalid"),
        (["alice"], 400, "invalid"),  # only oneself
        ("bob", 400, "invalid"),
        (["nobody"], 404, "not_found"),
    ],
)
def test_opening_a_conversation_with_nobody_valid_is_refused(person, users, status, code):
    alice = person("alice")
    person("bob")
    response = alice.post("/api/dms/", {"users": users})
    assert response.status_code == status and response.json()["error"] == code
    assert not Room.objects.filter(kind="dm").exists()


def test_nobody_renames_invites_into_or_removes_from_a_conversation(person):
    alice, bob = person("alice", role="admin"), person("bob")
    person("carol")
    slug = alice.post("/api/dms/", {"users": ["bob"]}).json()["room"]["slug"]
    assert alice.patch(f"/api/rooms/{slug}/", {"name": "ours"}).status_code == 403
    assert alice.post(f"/api/rooms/{slug}/members/", {"username": "carol"}).status_code == 403
    assert alice.delete(f"/api/rooms/{slug}/members/bob/").status_code == 403
    assert Membership.objects.filter(room__slug=slug).count() == 2
    assert bob.history(slug) == []


# --- membership takes effect on open sockets at once -------------------------------


async def test_joining_starts_the_rooms_messages_on_open_sockets(people, channel, sockets):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("random", alice)
    b1, b2, a = await sockets(bob), await sockets(bob), await sockets(alice)

    response = await sync_to_async(bob.post)("/api/rooms/random/join/")
    assert response.status_code == 200
    for sock in (b1, b2, a):
        joined = await sock.receive()
        assert (joined["type"], joined["user"], joined["action"], joined["by"]) == (
            "member",
            "bob",
            "joined",
            "bob",
        )
        assert joined["room"]["slug"] == "random"
    await a.send({"type": "send", "room": "random", "body": "welcome"})
    assert (await b1.receive())["body"] == "welcome"
    assert (await b2.receive())["body"] == "welcome"
    # And bob's socket may write there without reconnecting.
    await b1.send({"type": "send", "room": "random", "body": "thanks"})
    assert (await a.receive())["body"] == "welcome"
    assert (await a.receive())["body"] == "thanks"


async def test_an_invitation_reaches_the_room_and_the_invitee(people, channel, sockets):
    alice, bob, carol, dave = await people("alice", "bob", "carol", "dave")
    await sync_to_async(channel)("secret", alice, bob, private=True)
    a, b, c, d = [await sockets(p) for p in (alice, bob, carol, dave)]

    response = await sync_to_async(bob.post)("/api/rooms/secret/members/", {"username": "carol"})
    assert response.status_code == 201
    for sock in (a, b, c):
        invited = await sock.receive()
        assert invited["type"] == "member"
        assert (invited["user"], invited["action"], invited["by"]) == ("carol", "invited", "bob")
        assert invited["room"]["slug"] == "secret" and invited["room"]["private"] is True
    await a.send({"type": "send", "room": "secret", "body": "hi carol"})
    assert (await c.receive())["body"] == "hi carol"
    # Dave is outside: neither the invitation nor the message reached him.
    await a.send({"type": "send", "room": "general", "body": "marker"})
    assert (await d.receive())["body"] == "marker"


async def test_a_removed_member_receives_nothing_more_from_the_room(people, channel, sockets):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("secret", alice, bob, private=True)
    a, b1, b2 = await sockets(alice), await sockets(bob), await sockets(bob)

    response = await sync_to_async(alice.delete)("/api/rooms/secret/members/bob/")
    assert response.status_code == 204
    for sock in (a, b1, b2):
        removed = await sock.receive()
        assert (removed["type"], removed["user"], removed["action"], removed["by"]) == (
            "member",
            "bob",
            "removed",
            "alice",
        )
    await a.send({"type": "send", "room": "secret", "body": "bob is gone"})
    await a.send({"type": "typing", "room": "secret"})
    await a.send({"type": "send", "room": "general", "body": "marker"})
    for sock in (b1, b2):
        assert (await sock.receive())["body"] == "marker"
    await b1.send({"type": "send", "room": "secret", "body": "still here?", "nonce": "n"})
    refused = await b1.receive()
    assert (refused["code"], refused["nonce"]) == ("no_such_room", "n")


async def test_leaving_stops_the_room_on_every_socket_of_the_leaver(people, channel, sockets):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("random", alice, bob)
    a, b1, b2 = await sockets(alice), await sockets(bob), await sockets(bob)

    await sync_to_async(bob.post)("/api/rooms/random/leave/")
    for sock in (a, b1, b2):
        left = await sock.receive()
        assert (left["type"], left["user"], left["action"]) == ("member", "bob", "left")
    await a.send({"type": "send", "room": "random", "body": "after bob left"})
    assert (await a.receive())["body"] == "after bob left"
    await a.send({"type": "send", "room": "general", "body": "marker"})
    assert (await b1.receive())["body"] == "marker"
    assert (await b2.receive())["body"] == "marker"


async def test_a_new_conversation_reaches_the_open_sockets_of_everyone_in_it(people, sockets):
    alice, bob, carol = await people("alice", "bob", "carol")
    a, b, c = await sockets(alice), await sockets(bob), await sockets(carol)

    response = await sync_to_async(alice.post)("/api/dms/", {"users": ["bob"]})
    room = response.json()["room"]
    # Each person hears of their own arrival, once, live as on a replay.
    for sock, who in ((a, "alice"), (b, "bob")):
        joined = await sock.receive()
        assert joined == {
            "type": "member",
            "room": room,
            "user": who,
            "action": "joined",
            "by": "alice",
            "seq": joined["seq"],
        }
    await sync_to_async(say)(alice, room["slug"], "psst")
    assert (await a.receive())["body"] == "psst"
    assert (await b.receive())["body"] == "psst"
    await sync_to_async(say)(alice, "general", "marker")
    assert (await c.receive())["body"] == "marker"
    # Opening it again changes nothing and tells nobody anything.
    await sync_to_async(alice.post)("/api/dms/", {"users": ["bob"]})
    assert (await a.receive())["body"] == "marker"
    assert (await b.receive())["body"] == "marker"


async def test_watching_a_public_channel_carries_it_without_joining(people, channel, sockets):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("random", alice)
    watcher = await sockets(bob, watch="random")
    plain = await sockets(bob)
    await sync_to_async(say)(alice, "random", "news")
    assert (await watcher.receive())["body"] == "news"
    await sync_to_async(say)(alice, "general", "marker")
    assert (await watcher.receive())["body"] == "marker"
    assert (await plain.receive())["body"] == "marker"
    assert not await sync_to_async(
        Membership.objects.filter(room__slug="random", user=bob.user).exists
    )()


def test_membership_changes_are_logged_for_the_room_and_the_member(person):
    alice, bob = person("alice"), person("bob")
    room = services.room_create(actor=alice.user, name="design")
    services.room_invite(actor=alice.user, room="design", username="bob")
    services.room_member_remove(actor=alice.user, room="design", username="bob")
    logged = list(Event.objects.filter(kind="member").order_by("seq"))
    assert [(e.room_id, e.user_id, e.data["action"]) for e in logged] == [
        (room.id, alice.user.id, "joined"),
        (room.id, bob.user.id, "invited"),
        (room.id, bob.user.id, "removed"),
    ]


def test_opening_a_conversation_one_has_left_brings_one_back(person):
    alice, bob = person("alice"), person("bob")
    slug = alice.post("/api/dms/", {"users": ["bob"]}).json()["room"]["slug"]
    services.message_send(author=alice.user, room=slug, body="are you there?", nonce=None)
    assert bob.post(f"/api/rooms/{slug}/leave/").status_code == 200
    assert slug not in slugs(bob.rooms())

    # The same people, the same conversation: and bob may use it again.
    again = bob.post("/api/dms/", {"users": ["alice"]})
    assert again.json()["room"]["slug"] == slug
    assert [m["body"] for m in bob.history(slug)] == ["are you there?"]
    assert slug in slugs(bob.rooms())
    services.message_send(author=bob.user, room=slug, body="back", nonce=None)


@pytest.mark.parametrize("value", ["false", "no", 0, 1, [], {}])
def test_archived_and_private_must_be_true_or_false(person, value):
    alice = person("alice")
    services.room_create(actor=alice.user, name="design")
    response = alice.patch("/api/rooms/design/", {"archived": value})
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    response = alice.post("/api/rooms/", {"name": "other", "private": value})
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert not Room.objects.get(slug="design").is_archived
    assert not Room.objects.filter(slug="other").exists()
