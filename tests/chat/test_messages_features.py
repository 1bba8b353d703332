"""Edits, deletes, reactions, mentions, read markers, typing and presence."""

import pytest
from asgiref.sync import sync_to_async

from chat import services
from chat.models import Event, Message
from chat.services import ChatError

pytestmark = pytest.mark.django_db(transaction=True)


def say(who, room: str, body: str, nonce: str | None = None) -> int:
    return services.message_send(author=who.user, room=room, body=body, nonce=nonce).message.id


def entry(who, slug: str) -> dict:
    [found] = [r for r in who.rooms() if r["slug"] == slug]
    return found


def counts(who, slug: str) -> tuple[int, int, int]:
    found = entry(who, slug)
    return found["last_read_id"], found["unread"], found["mentions"]


# --- edit and delete -----------------------------------------------------------------


def test_an_author_edits_their_message(person):
    alice, bob = person("alice"), person("bob")
    mid = say(alice, "general", "helo")
    response = alice.patch(f"/api/messages/{mid}/", {"body": "hello **all**"})
    assert response.status_code == 200
    message = response.json()["message"]
    assert (message["id"], message["body"]) == (mid, "hello **all**")
    assert message["html"] == "<p>hello <strong>all</strong></p>\n"
    assert message["edited"].endswith("Z") and message["edited"] > message["created"]
    [seen] = bob.history("general")
    assert seen == message


def test_an_edit_padded_past_12000_characters_is_refused_over_http(person):
    alice = person("alice")
    mid = say(alice, "general", "short")
    response = alice.patch(f"/api/messages/{mid}/", {"body": "y" + " " * 12_000})
    assert (response.status_code, response.json()["error"]) == (400, "too_long")
    # Far bigger than any message could be: refused before it is parsed.
    response = alice.patch(f"/api/messages/{mid}/", {"body": "y" + " " * 2_400_000})
    assert (response.status_code, response.json()["error"]) == (400, "too_long")
    assert Message.objects.get(pk=mid).body == "short"


@pytest.mark.parametrize("body", ["[" * 100_000, '{"users": ' + "[" * 950 + "]" * 950 + "}"])
def test_deeply_nested_json_is_a_400_not_a_crash(person, body):
    alice = person("alice")
    for path in ("/api/rooms/", "/api/dms/"):
        response = alice.client.post(path, body, content_type="application/json")
        assert (response.status_code, response.json()["error"]) == (400, "invalid"), path


@pytest.mark.parametrize("role", ["member", "moderator", "admin"])
def test_nobody_edits_someone_elses_message(person, role):
    alice, other = person("alice"), person("other", role=role)
    mid = say(alice, "general", "mine")
    response = other.patch(f"/api/messages/{mid}/", {"body": "yours now"})
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert Message.objects.get(pk=mid).body == "mine"
    assert Message.objects.get(pk=mid).edited is None


def test_an_edit_follows_the_body_rules(person):
    alice = person("alice")
    mid = say(alice, "general", "kept")
    for body, code in ((" ", "invalid"), ("x" * 10_001, "too_long"), ("a\x07", "invalid")):
        with pytest.raises(ChatError) as refused:
            services.message_edit(actor=alice.user, message_id=mid, body=body)
        assert refused.value.code == code
    assert Message.objects.get(pk=mid).body == "kept"


def test_authors_delete_their_own_messages_and_nobody_sees_them_again(person):
    alice, bob = person("alice"), person("bob")
    gone = say(alice, "general", "oops")
    kept = say(alice, "general", "fine")
    assert bob.delete(f"/api/messages/{gone}/").status_code == 403
    assert alice.delete(f"/api/messages/{gone}/").status_code == 204
    for who in (alice, bob):
        assert [m["id"] for m in who.history("general")] == [kept]
        page = who.get("/r/general/").content.decode()
        assert "fine" in page and "oops" not in page
    again = alice.delete(f"/api/messages/{gone}/")
    assert again.status_code == 404 and again.json()["error"] == "not_found"
    assert alice.patch(f"/api/messages/{gone}/", {"body": "back"}).status_code == 404


# A superuser keeps the stored role "member" (createsuperuser sets none) and
# is an admin all the same.
MODERATING = {
    "moderator": {"role": "moderator"},
    "admin": {"role": "admin"},
    "superuser": {"role": "member", "is_superuser": True, "is_staff": True},
}


@pytest.mark.parametrize("who", MODERATING)
def test_moderators_and_admins_delete_any_message(person, who):
    alice, mod = person("alice"), person("mod", **MODERATING[who])
    mid = say(alice, "general", "spam")
    assert mod.delete(f"/api/messages/{mid}/").status_code == 204
    assert alice.history("general") == []


def test_a_retried_nonce_of_a_deleted_message_does_not_bring_it_back(person):
    alice, bob = person("alice"), person("bob")
    mid = say(alice, "general", "regret", nonce="r-1")
    services.message_delete(actor=alice.user, message_id=mid)
    result = services.message_send(author=alice.user, room="general", body="regret", nonce="r-1")
    assert (result.created, result.message.id) == (False, mid)
    assert bob.history("general") == []
    assert Message.objects.count() == 1


async def test_edits_and_deletes_reach_every_socket_of_the_room(people, sockets):
    alice, bob = await people("alice", "bob")
    a, b = await sockets(alice), await sockets(bob)
    await a.send({"type": "send", "room": "general", "body": "helo @bob", "nonce": "m"})
    sent = await a.receive()
    assert (await b.receive())["id"] == sent["id"]

    await a.send({"type": "edit", "id": sent["id"], "body": "hello @bob", "nonce": "e"})
    edited = await b.receive()
    assert edited == {
        "type": "message_edited",
        "room": "general",
        "id": sent["id"],
        "body": "hello @bob",
        "html": '<p>hello <span class="mention">@bob</span></p>\n',
        "edited": edited["edited"],
        "mentions": ["bob"],
        "broadcast": None,
        "seq": edited["seq"],
    }
    assert edited["edited"].endswith("Z") and edited["seq"] > sent["seq"]
    assert await a.receive() == edited

    # An edit that adds @channel says so, as a new message would.
    await a.send({"type": "edit", "id": sent["id"], "body": "hello @channel", "nonce": "e2"})
    widened = await b.receive()
    assert (widened["type"], widened["broadcast"]) == ("message_edited", "channel")
    assert await a.receive() == widened

    await b.send({"type": "delete", "id": sent["id"], "nonce": "d"})
    refused = await b.receive()
    assert (refused["type"], refused["code"], refused["nonce"]) == ("error", "forbidden", "d")
    await a.send({"type": "delete", "id": sent["id"]})
    deleted = await b.receive()
    assert deleted == {
        "type": "message_deleted",
        "room": "general",
        "id": sent["id"],
        "seq": deleted["seq"],
    }
    assert deleted["seq"] > edited["seq"]
    assert await a.receive() == deleted


@pytest.mark.parametrize("who", ["moderator", "superuser"])
async def test_a_moderator_deletes_someone_elses_message_from_the_socket(people, sockets, who):
    [alice] = await people("alice")
    [mod] = await people("mod", **MODERATING[who])
    m, a = await sockets(mod), await sockets(alice)
    mid = await sync_to_async(say)(alice, "general", "spam")
    assert (await m.receive())["id"] == (await a.receive())["id"] == mid
    await m.send({"type": "edit", "id": mid, "body": "not spam", "nonce": "e"})
    refused = await m.receive()
    assert (refused["code"], refused["nonce"]) == ("forbidden", "e")
    await m.send({"type": "delete", "id": mid})
    deleted = await a.receive()
    assert (deleted["type"], deleted["id"]) == ("message_deleted", mid)
    assert await sync_to_async(alice.history)("general") == []


async def test_an_http_edit_reaches_open_sockets(people, sockets):
    alice, bob = await people("alice", "bob")
    b = await sockets(bob)
    mid = await sync_to_async(say)(alice, "general", "draft")
    assert (await b.receive())["id"] == mid
    await sync_to_async(alice.patch)(f"/api/messages/{mid}/", {"body": "final"})
    edited = await b.receive()
    assert (edited["type"], edited["id"], edited["body"]) == ("message_edited", mid, "final")
    await sync_to_async(alice.delete)(f"/api/messages/{mid}/")
    assert await b.receive() == {
        "type": "message_deleted",
        "room": "general",
        "id": mid,
        "seq": (await sync_to_async(Event.objects.latest)("seq")).seq,
    }


async def test_a_retried_send_of_a_deleted_message_does_not_resurrect_it(people, sockets):
    alice, bob = await people("alice", "bob")
    a, b = await sockets(alice), await sockets(bob)
    frame = {"type": "send", "room": "general", "body": "regret", "nonce": "r-1"}
    await a.send(frame)
    sent = await a.receive()
    await b.receive()
    await a.send({"type": "delete", "id": sent["id"]})
    assert (await a.receive())["type"] == "message_deleted"
    assert (await b.receive())["type"] == "message_deleted"

    # The retry (say, from a socket that reconnected) learns the message is gone.
    retry = await sockets(alice)
    await retry.send(frame)
    assert await retry.receive() == {
        "type": "message_deleted",
        "room": "general",
        "id": sent["id"],
        "seq": None,
    }
    await a.send({"type": "send", "room": "general", "body": "marker"})
    assert (await b.receive())["body"] == "marker"  # nothing was broadcast again
    assert [m["body"] for m in await sync_to_async(bob.history)("general")] == ["marker"]


# --- reactions ---------------------------------------------------------------------


def test_a_reaction_toggles_on_and_off(person):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    mid = say(alice, "general", "lunch?")
    url = f"/api/messages/{mid}/reactions/"
    assert bob.post(url, {"emoji": "👍"}).json() == {"emoji": "👍", "users": ["bob"]}
    assert carol.post(url, {"emoji": "👍"}).json() == {"emoji": "👍", "users": ["bob", "carol"]}
    assert carol.post(url, {"emoji": "🍕"}).json() == {"emoji": "🍕", "users": ["carol"]}
    [message] = alice.history("general")
    assert message["reactions"] == {"👍": ["bob", "carol"], "🍕": ["carol"]}
    assert bob.post(url, {"emoji": "👍"}).json() == {"emoji": "👍", "users": ["carol"]}
    assert carol.post(url, {"emoji": "🍕"}).json() == {"emoji": "🍕", "users": []}
    [message] = alice.history("general")
    assert message["reactions"] == {"👍": ["carol"]}


@pytest.mark.parametrize("emoji", ["", "a b", "x" * 33, "<b>", "\x00", 7, None])
def test_a_reaction_must_be_a_short_token(person, emoji):
    alice = person("alice")
    mid = say(alice, "general", "hi")
    response = alice.post(f"/api/messages/{mid}/reactions/", {"emoji": emoji})
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert alice.history("general")[0]["reactions"] == {}


def test_no_reactions_on_deleted_messages(person):
    alice, bob = person("alice"), person("bob")
    mid = say(alice, "general", "gone soon")
    services.reaction_toggle(actor=bob.user, message_id=mid, emoji="👍")
    services.message_delete(actor=alice.user, message_id=mid)
    response = bob.post(f"/api/messages/{mid}/reactions/", {"emoji": "🎉"})
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_non_members_may_not_react(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("random", alice)
    channel("secret", alice, private=True)
    public = say(alice, "random", "open")
    private = say(alice, "secret", "closed")
    response = bob.post(f"/api/messages/{public}/reactions/", {"emoji": "👍"})
    assert response.status_code == 403 and response.json()["error"] == "not_member"
    response = bob.post(f"/api/messages/{private}/reactions/", {"emoji": "👍"})
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert alice.history("random")[0]["reactions"] == {}


async def test_reactions_reach_the_room_with_the_full_list(people, sockets):
    alice, bob = await people("alice", "bob")
    a, b = await sockets(alice), await sockets(bob)
    mid = await sync_to_async(say)(alice, "general", "ship it?")
    await a.receive(), await b.receive()
    lists = []
    for sock in (b, a, b):
        await sock.send({"type": "react", "id": mid, "emoji": "🚀"})
        event = await a.receive()
        assert (event["type"], event["room"], event["id"], event["emoji"]) == (
            "reaction",
            "general",
            mid,
            "🚀",
        )
        assert await b.receive() == event
        lists.append(event["users"])
    assert lists == [["bob"], ["bob", "alice"], ["alice"]]
    await b.send({"type": "react", "id": mid + 1000, "emoji": "🚀", "nonce": "x"})
    assert (await b.receive())["code"] == "not_found"


# --- mentions ------------------------------------------------------------------------


def test_a_mention_of_a_member_is_marked_and_counted(person, channel):
    alice, bob = person("alice"), person("bob")
    person("carol")  # exists, but is not in #design
    channel("design", alice, bob)
    services.message_send(
        author=alice.user,
        room="design",
        body="@bob and @carol, see `@bob` and\n\n    @bob in code",
        nonce=None,
    )
    [message] = bob.history("design")
    assert message["mentions"] == ["bob"]
    assert message["html"].count('<span class="mention">@bob</span>') == 1
    assert '<span class="mention">@carol' not in message["html"]
    assert "<code>@bob</code>" in message["html"]
    assert counts(bob, "design")[1:] == (1, 1)
    assert counts(alice, "design")[1:] == (0, 0)  # her own message


def test_a_mention_only_inside_code_is_not_a_mention(person):
    alice, bob = person("alice"), person("bob")
    say(alice, "general", "run `@bob deploy` please")
    [message] = bob.history("general")
    assert message["mentions"] == [] and 'class="mention"' not in message["html"]
    assert counts(bob, "general")[1:] == (1, 0)


def test_editing_a_mention_in_or_out_changes_the_count(person):
    alice, bob = person("alice"), person("bob")
    mid = say(alice, "general", "hello")
    assert counts(bob, "general")[2] == 0
    services.message_edit(actor=alice.user, message_id=mid, body="hello @Bob")
    assert bob.history("general")[0]["mentions"] == ["bob"]
    assert counts(bob, "general")[2] == 1
    services.message_edit(actor=alice.user, message_id=mid, body="hello everyone")
    assert bob.history("general")[0]["mentions"] == []
    assert counts(bob, "general")[2] == 0


async def test_the_message_event_carries_the_mentions(people, sockets):
    alice, bob, _carol = await people("alice", "bob", "carol")
    b = await sockets(bob)
    await sync_to_async(say)(alice, "general", "@bob @carol @nobody")
    event = await b.receive()
    assert event["mentions"] == ["bob", "carol"]
    assert event["html"].count('class="mention"') == 2


# --- read markers ------------------------------------------------------------------


def test_unread_counts_messages_by_others_after_the_marker(person):
    alice, bob = person("alice"), person("bob")
    first = say(alice, "general", "one @bob")
    say(bob, "general", "mine")
    say(alice, "general", "two")
    gone = say(alice, "general", "three @bob")
    assert counts(bob, "general") == (0, 3, 2)
    services.message_delete(actor=alice.user, message_id=gone)
    assert counts(bob, "general") == (0, 2, 1)

    response = bob.post("/api/rooms/general/read/", {"id": first})
    assert response.status_code == 200
    assert response.json() == {
        "room": "general",
        "last_read_id": first,
        "unread": 1,
        "mentions": 0,
        "thread_unread": 0,
        "thread_mentions": 0,
    }
    assert counts(bob, "general") == (first, 1, 0)


def test_a_lower_id_marks_unread_from_there(person):
    alice, bob = person("alice"), person("bob")
    ids = [say(alice, "general", f"m{i}") for i in range(5)]
    bob.post("/api/rooms/general/read/", {"id": ids[-1]})
    assert counts(bob, "general") == (ids[-1], 0, 0)
    response = bob.post("/api/rooms/general/read/", {"id": ids[1]})
    assert response.json()["unread"] == 3
    assert counts(bob, "general") == (ids[1], 3, 0)
    # A marker past the newest message stops at the newest one.
    bob.post("/api/rooms/general/read/", {"id": ids[-1] + 1000})
    assert counts(bob, "general") == (ids[-1], 0, 0)


@pytest.mark.parametrize("value", [-1, "7", None, True, 1.5])
def test_a_read_marker_needs_a_whole_number(person, value):
    response = person("bob").post("/api/rooms/general/read/", {"id": value})
    assert response.status_code == 400 and response.json()["error"] == "invalid"


async def test_a_read_marker_reaches_all_of_the_users_sockets_and_nobody_elses(people, sockets):
    alice, bob = await people("alice", "bob")
    b1, b2, a = await sockets(bob), await sockets(bob), await sockets(alice)
    mids = [await sync_to_async(say)(alice, "general", f"m{i} @bob") for i in range(3)]
    for sock in (b1, b2, a):
        assert [(await sock.receive())["id"] for _ in mids] == mids

    await b1.send({"type": "read", "room": "general", "id": mids[0]})
    read = await b1.receive()
    assert read == {
        "type": "read",
        "room": "general",
        "last_read_id": mids[0],
        "unread": 2,
        "mentions": 2,
        "thread_unread": 0,
        "thread_mentions": 0,
        "seq": read["seq"],
    }
    assert await b2.receive() == read
    # From the API, a lower id: unread again from there.
    await sync_to_async(bob.post)("/api/rooms/general/read/", {"id": 0})
    unread = await b2.receive()
    assert (unread["last_read_id"], unread["unread"], unread["mentions"]) == (0, 3, 3)
    assert await b1.receive() == unread
    # Setting the same marker again is no change and sends nothing.
    await b1.send({"type": "read", "room": "general", "id": 0})
    await sync_to_async(say)(alice, "general", "marker")
    for sock in (b1, b2, a):
        assert (await sock.receive())["body"] == "marker"


# --- typing ------------------------------------------------------------------------


async def test_typing_reaches_the_other_members_and_is_not_stored(people, channel, sockets):
    alice, bob, carol = await people("alice", "bob", "carol")
    await sync_to_async(channel)("design", alice, bob)
    a, b, c = await sockets(alice), await sockets(bob), await sockets(carol)
    events_before = await sync_to_async(Event.objects.count)()

    await a.send({"type": "typing", "room": "design"})
    assert await b.receive() == {"type": "typing", "room": "design", "user": "alice", "seq": None}
    assert await sync_to_async(Event.objects.count)() == events_before
    await sync_to_async(say)(bob, "general", "marker")
    assert (await c.receive())["body"] == "marker"  # carol is not in #design


async def test_typing_is_not_echoed_to_the_typists_own_sockets(people, sockets):
    alice, bob = await people("alice", "bob")
    a1, a2, b = await sockets(alice), await sockets(alice), await sockets(bob)
    await a1.send({"type": "typing", "room": "general"})
    assert (await b.receive())["type"] == "typing"
    await sync_to_async(say)(bob, "general", "marker")
    # "alice is typing" is news to the others, not to alice's own tabs.
    assert (await a1.receive())["body"] == "marker"
    assert (await a2.receive())["body"] == "marker"


async def test_typing_is_sent_at_most_once_every_three_seconds(people, sockets):
    alice, bob = await people("alice", "bob")
    a, b = await sockets(alice), await sockets(bob)
    await a.send({"type": "typing", "room": "general"})
    assert (await b.receive())["type"] == "typing"
    await a.send({"type": "typing", "room": "general"})
    await a.send({"type": "send", "room": "general", "body": "marker"})
    assert (await b.receive())["body"] == "marker"


async def test_typing_is_not_forwarded_in_rooms_bigger_than_the_limit(
    people, channel, sockets, settings
):
    settings.CHAT_TYPING_MAX_MEMBERS = 2
    alice, bob, carol = await people("alice", "bob", "carol")
    await sync_to_async(channel)("design", alice, bob)
    a, b = await sockets(alice), await sockets(bob)
    await a.send({"type": "typing", "room": "design"})
    assert await b.receive() == {"type": "typing", "room": "design", "user": "alice", "seq": None}

    # A third member: the room is past the limit from the moment the join is heard.
    await sync_to_async(services.room_join)(actor=carol.user, room="design")
    joined = await b.receive()
    assert (joined["type"], joined["user"]) == ("member", "carol")
    a2 = await sockets(alice)  # a socket of its own: not held back by a's 3 s
    await a2.send({"type": "typing", "room": "design"})
    await a2.send({"type": "send", "room": "design", "body": "marker"})
    assert (await b.receive())["body"] == "marker"


async def test_typing_when_the_room_cannot_be_counted_is_dropped_and_the_socket_goes_on(
    people, sockets, monkeypatch
):
    from chat.realtime.fanout import local_fanout

    async def database_down(room_id: int) -> int:
        raise OSError("the database is unreachable")

    alice, bob = await people("alice", "bob")
    a, b = await sockets(alice), await sockets(bob)
    monkeypatch.setattr(local_fanout(), "room_size", database_down)
    await a.send({"type": "typing", "room": "general"})
    await a.send({"type": "send", "room": "general", "body": "marker"})
    assert (await b.receive())["body"] == "marker"  # no hint, no error, nothing lost
    assert (await a.receive())["body"] == "marker"


@pytest.mark.parametrize("room", ["secret", "random", "nowhere"])
async def test_typing_is_refused_for_non_members(people, channel, sockets, room):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("secret", alice, private=True)
    await sync_to_async(channel)("random", alice)
    a, b = await sockets(alice), await sockets(bob)
    await b.send({"type": "typing", "room": room, "nonce": "t"})
    error = await b.receive()
    expected = "not_member" if room == "random" else "no_such_room"
    assert (error["type"], error["code"], error["nonce"]) == ("error", expected, "t")
    await b.send({"type": "send", "room": "general", "body": "marker"})
    assert (await a.receive())["body"] == "marker"


# --- presence ------------------------------------------------------------------------


@pytest.fixture
async def presence_by_hand(settings):
    """Announcements only when the test calls `announce()`, offline at once; reset after."""
    from chat.realtime.presence import local_presence

    settings.CHAT_PRESENCE_ANNOUNCE_SECONDS = 3600
    settings.CHAT_PRESENCE_OFFLINE_GRACE_SECONDS = 0
    local = local_presence()
    yield local
    if local._announcing is not None:
        local._announcing.cancel()
    local._changed.clear()


async def next_presence(sock) -> dict:
    event = await sock.receive(skip=())
    assert event["type"] == "presence", event
    assert event["seq"] is None
    return event["users"]


async def test_a_socket_hears_the_presence_of_the_people_it_follows(
    people, sockets, presence_by_hand
):
    alice, bob, carol = await people("alice", "bob", "carol")
    a = await sockets(alice)
    await a.send({"type": "presence_sub", "users": ["bob", "carol", "nobody", "<not a name>"]})
    # At once, everyone named who exists, as they are now.
    assert await next_presence(a) == {"bob": "offline", "carol": "offline"}

    b = await sockets(bob)
    await presence_by_hand.announce()
    assert await next_presence(a) == {"bob": "online"}
    await b.send({"type": "presence", "state": "away"})
    # A frame's answer means the ones before it were handled: bob is away here now.
    await b.send({"type": "presence_sub", "users": []})
    assert await next_presence(b) == {}
    await presence_by_hand.announce()
    assert await next_presence(a) == {"bob": "away"}
    await b.close()
    await presence_by_hand.announce()
    assert await next_presence(a) == {"bob": "offline"}
    members = (await sync_to_async(alice.get)("/api/rooms/general/members/")).json()["members"]
    assert {m["username"]: m["presence"] for m in members} == {
        "alice": "online",
        "bob": "offline",
        "carol": "offline",
    }


async def test_many_arrivals_reach_a_follower_as_one_frame(people, sockets, presence_by_hand):
    names = [f"user{i}" for i in range(6)]
    alice, *others = await people("alice", *names)
    a = await sockets(alice)
    await a.send({"type": "presence_sub", "users": names})
    assert await next_presence(a) == dict.fromkeys(names, "offline")
    for other in others:
        await sockets(other)
    await presence_by_hand.announce()
    assert await next_presence(a) == dict.fromkeys(names, "online")
    # Nothing more: a marker message is the next thing alice hears.
    await sync_to_async(say)(others[0], "general", "marker")
    assert (await a.receive(skip=()))["body"] == "marker"


async def test_presence_reaches_only_those_who_follow(people, sockets, presence_by_hand):
    alice, bob, carol = await people("alice", "bob", "carol")
    c = await sockets(carol)  # shares #general with bob, follows nobody
    a = await sockets(alice)
    await a.send({"type": "presence_sub", "users": ["bob"]})
    assert await next_presence(a) == {"bob": "offline"}
    await a.send({"type": "presence_sub", "users": []})  # and now stops following
    assert await next_presence(a) == {}
    b = await sockets(bob)
    await b.send({"type": "presence", "state": "away"})
    await b.close()
    await presence_by_hand.announce()
    await sync_to_async(say)(bob, "general", "marker")
    assert (await c.receive(skip=()))["body"] == "marker"
    assert (await a.receive(skip=()))["body"] == "marker"


async def test_a_quick_reconnect_or_a_second_tab_is_not_announced(people, sockets, settings):
    from chat.realtime.presence import local_presence

    settings.CHAT_PRESENCE_ANNOUNCE_SECONDS = 3600
    alice, bob = await people("alice", "bob")
    local = local_presence()
    try:
        a = await sockets(alice)
        await a.send({"type": "presence_sub", "users": ["bob"]})
        assert await next_presence(a) == {"bob": "offline"}
        first = await sockets(bob)
        await local.announce()
        assert await next_presence(a) == {"bob": "online"}
        # A second tab, the first one closed, the page reloaded: bob stays online.
        second = await sockets(bob)
        await first.close()
        await second.close()
        await sockets(bob)
        await local.announce()
        await sync_to_async(say)(bob, "general", "marker")
        assert (await a.receive(skip=()))["body"] == "marker"
    finally:
        if local._announcing is not None:
            local._announcing.cancel()
        local._changed.clear()


async def test_going_offline_is_announced_after_the_grace_period(people, sockets, settings):
    import time

    from chat.realtime.presence import local_presence

    settings.CHAT_PRESENCE_ANNOUNCE_SECONDS = 3600
    settings.CHAT_PRESENCE_OFFLINE_GRACE_SECONDS = 30
    alice, bob = await people("alice", "bob")
    local = local_presence()
    try:
        a = await sockets(alice)
        await a.send({"type": "presence_sub", "users": ["bob"]})
        assert await next_presence(a) == {"bob": "offline"}
        b = await sockets(bob)
        await local.announce()
        assert await next_presence(a) == {"bob": "online"}
        await b.close()
        await local.announce()  # within the grace period: not yet
        await local.announce(now=time.monotonic() + 31)
        assert await next_presence(a) == {"bob": "offline"}
    finally:
        if local._announcing is not None:
            local._announcing.cancel()
        local._changed.clear()


async def test_presence_sub_is_checked_like_any_frame(people, sockets):
    alice = (await people("alice"))[0]
    a = await sockets(alice)
    for users in ("bob", [1, 2], ["x"] * 1001, None):
        await a.send({"type": "presence_sub", "users": users, "nonce": "p"})
        error = await a.receive(skip=())
        assert (error["type"], error["code"], error["nonce"]) == ("error", "invalid", "p")


@pytest.mark.parametrize("word", ["items", "ok", "+1", "a\U0001f44d"])
def test_a_word_is_not_a_reaction(person, word):
    alice = person("alice")
    mid = say(alice, "general", "hi")
    with pytest.raises(ChatError) as refused:
        services.reaction_toggle(actor=alice.user, message_id=mid, emoji=word)
    assert refused.value.code == "invalid"


async def test_a_new_follower_sees_someone_reconnecting_as_announced(people, sockets, settings):
    from chat.realtime.presence import local_presence

    settings.CHAT_PRESENCE_ANNOUNCE_SECONDS = 3600
    settings.CHAT_PRESENCE_OFFLINE_GRACE_SECONDS = 30
    alice, bob, carol = await people("alice", "bob", "carol")
    local = local_presence()
    try:
        a = await sockets(alice)
        await a.send({"type": "presence_sub", "users": ["bob"]})
        assert await next_presence(a) == {"bob": "offline"}
        b = await sockets(bob)
        await local.announce()
        assert await next_presence(a) == {"bob": "online"}
        await b.close()  # and will be back within the grace period: nothing is announced
        c = await sockets(carol)
        await c.send({"type": "presence_sub", "users": ["bob"]})
        assert await next_presence(c) == {"bob": "online"}
    finally:
        if local._announcing is not None:
            local._announcing.cancel()
        local._changed.clear()


async def test_followers_are_corrected_when_a_process_died_without_a_word(
    people, sockets, presence_by_hand
):
    import time

    alice, dave = await people("alice", "dave")
    a = await sockets(alice)
    await a.send({"type": "presence_sub", "users": ["dave"]})
    assert await next_presence(a) == {"dave": "offline"}
    # Dave was announced online by a process that has since died: the store
    # no longer has him, and nobody announced it.
    presence_by_hand.known[dave.user.pk] = ("online", 1, time.monotonic())
    await presence_by_hand.reconcile()  # once might be a reconnect
    await presence_by_hand.reconcile()
    assert await next_presence(a) == {"dave": "offline"}


async def test_the_heartbeat_renews_and_corrects_one_slice_of_people_at_a_time(
    people, sockets, presence_by_hand
):
    import time

    from chat.realtime import presence

    alice, dave = await people("alice", "dave")
    a = await sockets(alice)
    await a.send({"type": "presence_sub", "users": ["dave"]})
    assert await next_presence(a) == {"dave": "offline"}
    alice_id, dave_id = alice.user.pk, dave.user.pk
    # Alice's entry is lost from the store, and Dave's process died without a word.
    assert presence.states([alice_id]) == {alice_id: "online"}
    if presence._sync_client is not None:
        presence._sync_client.delete(presence._key(alice_id))
    else:
        presence._memory.pop(presence._key(alice_id))
    presence_by_hand.known[dave_id] = ("online", 1, time.monotonic())
    theirs = {alice_id % presence.HEARTBEAT_SLICES, dave_id % presence.HEARTBEAT_SLICES}
    for _ in range(2):
        for turn in range(presence.HEARTBEAT_SLICES):
            if turn not in theirs:
                await presence_by_hand.renew(turn)
    # Other slices touched neither of them.
    assert presence.states([alice_id]) == {alice_id: "offline"}
    assert dave_id not in presence_by_hand._suspect
    for _ in range(2):  # once might be a reconnect
        for turn in theirs:
            await presence_by_hand.renew(turn)
    assert presence.states([alice_id]) == {alice_id: "online"}
    assert await next_presence(a) == {"dave": "offline"}


async def test_an_announcement_that_could_not_be_sent_is_sent_with_the_next(
    people, sockets, presence_by_hand, monkeypatch
):
    from chat.realtime import presence

    alice, bob = await people("alice", "bob")
    a = await sockets(alice)
    await a.send({"type": "presence_sub", "users": ["bob"]})
    assert await next_presence(a) == {"bob": "offline"}
    real = presence.apublish_presence

    async def layer_down(changes):
        raise ConnectionError("channel layer unreachable")

    monkeypatch.setattr(presence, "apublish_presence", layer_down)
    await sockets(bob)
    with pytest.raises(ConnectionError):
        await presence_by_hand.announce()
    monkeypatch.setattr(presence, "apublish_presence", real)
    await presence_by_hand.announce()
    assert await next_presence(a) == {"bob": "online"}


@pytest.mark.parametrize("text", ["\u202e👍", "👍\u200b", "👍👍", "ok!", "\u200d"])
def test_a_reaction_is_one_emoji_and_nothing_else(person, text):
    alice = person("alice")
    mid = say(alice, "general", "hi")
    with pytest.raises(ChatError) as refused:
        services.reaction_toggle(actor=alice.user, message_id=mid, emoji=text)
    assert refused.value.code == "invalid"


def test_every_emoji_the_page_offers_is_accepted(person, settings):
    import re

    script = (settings.BASE_DIR / "static" / "js" / "actions.js").read_text()
    palette = re.search(r"const EMOJI = \[(.*?)\];", script, re.S).group(1)
    offered = re.findall(r'\["([^"]+)", "[^"]+"\]', palette)
    assert len(offered) >= 8
    alice = person("alice")
    mid = say(alice, "general", "hi")
    for emoji in [*offered, "👍🏽", "🇫🇷", "1️⃣"]:
        assert services.reaction_toggle(actor=alice.user, message_id=mid, emoji=emoji) == ["alice"]


def test_reactions_per_person_and_per_message_are_capped(person, monkeypatch):
    import emoji as emoji_data

    monkeypatch.setattr(services, "REACTIONS_PER_USER", 3)
    monkeypatch.setattr(services, "REACTIONS_PER_MESSAGE", 4)
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    mid = say(alice, "general", "hi")
    faces = [e for e in emoji_data.EMOJI_DATA if len(e) == 1][:5]

    def react(who, face):
        return services.reaction_toggle(actor=who.user, message_id=mid, emoji=face)

    for face in faces[:3]:
        react(alice, face)
    with pytest.raises(ChatError, match="3 reactions each"):
        react(alice, faces[3])  # her fourth
    react(bob, faces[3])  # the message's fourth
    with pytest.raises(ChatError, match="at most 4 reactions"):
        react(carol, faces[4])  # a fifth kind on the message
    # Adding to an emoji already there, or taking one back, always works.
    assert react(carol, faces[0]) == ["alice", "carol"]
    assert react(alice, faces[0]) == ["carol"]
