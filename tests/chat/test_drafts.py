"""Drafts kept on the server: versions, conflicts, access, clearing on send, and their events."""

import json
import re

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import drafts, eventlog, selectors, services
from chat.errors import ChatError
from chat.models import Draft, Message
from chat.services import SendRequest

pytestmark = pytest.mark.django_db(transaction=True)


def put(who, data: dict):
    return who.client.put("/api/drafts/", json.dumps(data), content_type="application/json")


def listed(who) -> list[dict]:
    response = who.get("/api/drafts/")
    assert response.status_code == 200, response.content
    return response.json()["drafts"]


def say(who, room: str, body: str, nonce: str | None = None) -> Message:
    return services.message_send(author=who.user, room=room, body=body, nonce=nonce).message


def save(who, room: str, body: str, version: int, thread: int | None = None) -> dict:
    return drafts.draft_save(user=who.user, room=room, thread=thread, body=body, version=version)


# --- storing, versions and conflicts ------------------------------------------------


def test_a_draft_is_stored_with_a_growing_version_and_listed_newest_first(person, channel):
    alice = person("alice")
    channel("design", alice)
    first = put(alice, {"room": "general", "body": "half a thought", "version": 0})
    assert first.status_code == 200, first.content
    assert first.json()["draft"] == {
        "room": "general",
        "thread": None,
        "body": "half a thought",
        "version": 1,
        "updated": first.json()["draft"]["updated"],
    }
    second = put(alice, {"room": "general", "body": "half a thought, and more", "version": 1})
    assert second.json()["draft"]["version"] == 2
    put(alice, {"room": "design", "body": "for design", "version": 0})

    assert [(d["room"], d["body"], d["version"]) for d in listed(alice)] == [
        ("design", "for design", 1),
        ("general", "half a thought, and more", 2),
    ]


def test_an_offline_device_with_an_older_version_cannot_overwrite_the_newer_draft(person):
    alice = person("alice")
    # Both devices start from version 1.
    put(alice, {"room": "general", "body": "plan: ship friday", "version": 0})
    # The laptop goes on typing (version 2); the phone, offline, still has version 1.
    put(alice, {"room": "general", "body": "plan: ship friday, after QA", "version": 1})
    stale = put(alice, {"room": "general", "body": "plan: ship monday", "version": 1})

    assert stale.status_code == 409
    answer = stale.json()
    assert answer["error"] == "conflict"
    assert answer["draft"]["body"] == "plan: ship friday, after QA"
    assert answer["draft"]["version"] == 2
    assert listed(alice)[0]["body"] == "plan: ship friday, after QA", "nothing changed"

    # The phone shows both; keeping its text is a change made on the version it was shown.
    kept = put(alice, {"room": "general", "body": "plan: ship monday", "version": 2})
    assert kept.status_code == 200
    assert kept.json()["draft"]["version"] == 3


def test_a_first_draft_on_a_version_the_server_never_had_is_a_conflict_with_nothing(person):
    alice = person("alice")
    answer = put(alice, {"room": "general", "body": "text", "version": 4})
    assert answer.status_code == 409
    assert answer.json()["draft"] == {
        "room": "general",
        "thread": None,
        "body": "",
        "version": 0,
        "updated": None,
    }
    assert not Draft.objects.exists()


def test_a_blank_body_clears_the_draft_but_its_version_still_grows(person):
    alice = person("alice")
    put(alice, {"room": "general", "body": "text", "version": 0})
    cleared = put(alice, {"room": "general", "body": "  \n ", "version": 1})
    assert cleared.json()["draft"]["body"] == ""
    assert cleared.json()["draft"]["version"] == 2
    assert listed(alice) == []
    # The old version cannot come back.
    assert put(alice, {"room": "general", "body": "text", "version": 1}).status_code == 409


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"body": "x", "version": 0}, "invalid"),
        ({"room": "general", "version": 0}, "invalid"),
        ({"room": "general", "body": 5, "version": 0}, "invalid"),
        ({"room": "general", "body": "x"}, "invalid"),
        ({"room": "general", "body": "x", "version": -1}, "invalid"),
        ({"room": "general", "body": "x", "version": True}, "invalid"),
        ({"room": "general", "body": "x", "version": "0"}, "invalid"),
        ({"room": "general", "body": "x", "version": 0, "thread": "1"}, "invalid"),
        ({"room": "general", "body": "a\x07b", "version": 0}, "invalid"),
        ({"room": "general", "body": "x" * 12_001, "version": 0}, "too_long"),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(person, data, code):
    alice = person("alice")
    answer = put(alice, data)
    assert answer.status_code == 400
    assert answer.json()["error"] == code
    assert not Draft.objects.exists()


def test_a_draft_as_long_as_a_message_may_be_is_kept(person):
    alice = person("alice")
    assert put(alice, {"room": "general", "body": "x" * 12_000, "version": 0}).status_code == 200


def test_drafts_need_a_session_and_a_csrf_token(person, client):
    assert client.get("/api/drafts/").status_code in (401, 403)
    alice = person("alice")
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice.user)
    answer = strict.put(
        "/api/drafts/",
        json.dumps({"room": "general", "body": "x", "version": 0}),
        content_type="application/json",
    )
    assert answer.status_code == 403
    assert answer.json()["error"] == "csrf_failed"
    assert alice.client.post("/api/drafts/", {}).status_code == 405


def test_saving_drafts_spends_the_write_budget_and_past_it_changes_nothing(person, monkeypatch):
    from chat.ratelimit import writes

    monkeypatch.setattr(writes, "rate", 0.001)
    monkeypatch.setattr(writes, "burst", 3.0)
    writes.reset()
    alice = person("alice")
    answers = [
        put(alice, {"room": "general", "body": f"text {i}", "version": i}).status_code
        for i in range(5)
    ]
    assert answers == [200, 200, 200, 429, 429]
    assert listed(alice)[0]["body"] == "text 2"
    writes.reset()


def test_the_list_costs_the_same_for_1_or_30_drafts(person, channel):
    alice = person("alice")
    save(alice, "general", "one", 0)

    def read() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert alice.get("/api/drafts/").status_code == 200
        return len(ctx)

    one = read()
    for i in range(29):
        channel(f"room-{i}", alice)
        save(alice, f"room-{i}", f"draft {i}", 0)
    assert read() == one
    assert len(listed(alice)) == 30


def test_the_room_page_carries_the_drafts(person):
    alice = person("alice")
    save(alice, "general", "typed before the reload", 0)
    page = alice.get("/r/general/").content.decode()
    config = json.loads(
        re.search(r'id="chat-config" type="application/json">(.*?)</script>', page)[1]
    )
    assert [(d["room"], d["body"], d["version"]) for d in config["drafts"]] == [
        ("general", "typed before the reload", 1)
    ]


# --- access ---------------------------------------------------------------------------


def test_a_private_room_answers_a_non_member_as_a_room_that_does_not_exist(person, channel):
    alice, eve = person("alice"), person("eve")
    channel("secret", alice, private=True)
    secret = put(eve, {"room": "secret", "body": "x", "version": 0})
    nothing = put(eve, {"room": "no-such-room", "body": "x", "version": 0})
    assert secret.status_code == nothing.status_code == 404
    assert secret.json()["error"] == nothing.json()["error"] == "no_such_room"
    assert secret.json()["detail"].replace("secret", "?") == nothing.json()["detail"].replace(
        "no-such-room", "?"
    )
    assert not Draft.objects.exists()


def test_only_rooms_one_may_write_to_take_drafts(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("open", alice)
    channel("old", alice, bob, is_archived=True)
    assert put(bob, {"room": "open", "body": "x", "version": 0}).json()["error"] == "not_member"
    answer = put(bob, {"room": "old", "body": "x", "version": 0})
    assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")


def test_the_list_leaves_out_rooms_one_may_no_longer_write_to(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("design", alice, bob)
    save(bob, "design", "for design", 0)
    save(bob, "general", "for general", 0)
    services.room_member_remove(actor=alice.user, room="design", username="bob")
    assert [d["room"] for d in listed(bob)] == ["general"]
    assert [d["room"] for d in listed(alice)] == [], "each person sees only their own drafts"


def test_a_thread_draft_needs_a_live_top_level_message_of_that_room(person, channel):
    alice, eve = person("alice"), person("eve")
    channel("design", alice)
    channel("secret", eve, private=True)
    root = say(alice, "general", "a root")
    reply = Message.objects.create(room=root.room, author=alice.user, body="reply", thread=root)
    elsewhere = say(alice, "design", "in design")
    hidden = say(eve, "secret", "not for alice")
    gone = say(alice, "general", "deleted")
    services.message_delete(actor=alice.user, message_id=gone.id)

    ok = put(alice, {"room": "general", "thread": root.id, "body": "re", "version": 0})
    assert ok.status_code == 200
    assert ok.json()["draft"]["thread"] == root.id
    refused = [
        put(alice, {"room": "general", "thread": t, "body": "re", "version": 0}).json()
        for t in (reply.id, elsewhere.id, hidden.id, gone.id, 10**9)
    ]
    assert {(r["error"], r["detail"]) for r in refused} == {
        ("invalid", "thread must be a top-level message of this room.")
    }, "the same answer whatever the reason: a private room's message is not revealed"
    # A thread's draft and its room's are two drafts.
    put(alice, {"room": "general", "body": "top", "version": 0})
    assert sorted((d["thread"] or 0, d["body"]) for d in listed(alice)) == [
        (0, "top"),
        (root.id, "re"),
    ]
    # A reply can no longer go to a deleted root: its draft leaves the list.
    services.message_delete(actor=alice.user, message_id=root.id)
    assert [(d["thread"], d["body"]) for d in listed(alice)] == [(None, "top")]


# --- a sent message clears its draft ----------------------------------------------------


def test_a_sent_message_clears_its_authors_draft_for_that_room_only(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("design", alice, bob)
    root = say(alice, "general", "a root")
    save(alice, "general", "hello all", 0)
    save(alice, "design", "design idea", 0)
    save(bob, "general", "bob's text", 0)
    save(alice, "general", "a reply to be", 0, thread=root.id)

    say(alice, "general", "hello all")

    assert [(d["room"], d["thread"]) for d in listed(alice)] == [
        ("general", root.id),
        ("design", None),
    ]
    assert [d["body"] for d in listed(bob)] == ["bob's text"]
    cleared = Draft.objects.get(user=alice.user, room__slug="general", thread=None)
    assert (cleared.body, cleared.version) == ("", 2)


def test_a_reply_clears_its_threads_draft_and_not_its_rooms(person):
    alice = person("alice")
    root = say(alice, "general", "a root")
    save(alice, "general", "room text", 0)
    save(alice, "general", "a reply to be", 0, thread=root.id)
    keys = [drafts.DraftKey(alice.user.pk, root.room_id, root.id)]
    typed = drafts.drafts_with_text_read(keys)
    with eventlog.logged_change(reads=[typed]) as items:
        Message.objects.create(room=root.room, author=alice.user, body="x", thread=root)
        items.extend(drafts.drafts_clear_sent(keys, {root.room_id: "general"}, typed))
    assert [(d["thread"], d["body"]) for d in listed(alice)] == [(None, "room text")]
    assert [json.loads(item.text)["thread"] for item in items] == [root.id]


def test_a_batch_clears_exactly_the_drafts_its_messages_were_typed_in(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("design", alice, bob)
    root = say(bob, "design", "a root")
    for who in (alice, bob):
        save(who, "general", f"{who.user.username} in general", 0)
        save(who, "design", f"{who.user.username} in design", 0)
    save(bob, "design", "bob's reply to be", 0, thread=root.id)

    results = services.message_send_many(
        [
            SendRequest(alice.user, "general", "from alice", None),
            SendRequest(bob.user, "design", "b", None),
        ]
    )

    assert not any(isinstance(r, ChatError) for r in results)
    assert [(d["room"], d["body"]) for d in listed(alice)] == [("design", "alice in design")]
    assert sorted((d["room"], d["thread"], d["body"]) for d in listed(bob)) == [
        ("design", root.id, "bob's reply to be"),
        ("general", None, "bob in general"),
    ]


def test_a_refused_send_keeps_the_draft(person, channel):
    alice = person("alice")
    save(alice, "general", "keep me", 0)
    with pytest.raises(ChatError):
        say(alice, "general", "x" * 10_001)
    assert [d["body"] for d in listed(alice)] == ["keep me"]


def test_clearing_drafts_costs_the_same_for_1_or_70_messages(person, channel):
    # 70: SQLite takes at most 999 values a statement, so Django splits a
    # bigger batch's message insert in two there (14 columns a row).
    people = [person(f"p{i}") for i in range(4)]
    channel("busy", *people)

    def send(n: int, tag: str) -> int:
        for p in people:
            for room in ("busy", "general"):
                draft = Draft.objects.filter(user=p.user, room__slug=room, thread=None).first()
                save(p, room, f"draft {tag}", draft.version if draft else 0)
        batch = [
            SendRequest(people[i % 4].user, ("busy", "general")[i // 4 % 2], f"m {i}", f"{tag}-{i}")
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            results = services.message_send_many(batch)
        assert not any(isinstance(r, ChatError) for r in results)
        return len(ctx)

    assert send(1, "a") == send(70, "b")
    assert all(listed(p) == [] for p in people), "every draft the batch was sent from is cleared"


# --- events -------------------------------------------------------------------------------


async def test_a_draft_reaches_every_socket_of_its_author_and_no_one_else(people, sockets, channel):
    alice, bob = await people("alice", "bob")
    laptop, phone, bobs = await sockets(alice), await sockets(alice), await sockets(bob)
    typed = {"room": "general", "body": "typed on the laptop", "version": 0}
    await sync_to_async(put)(alice, typed)

    for sock in (laptop, phone):
        event = await sock.receive()
        assert event["type"] == "draft"
        assert {k: event[k] for k in ("room", "thread", "body", "version")} == {
            "room": "general",
            "thread": None,
            "body": "typed on the laptop",
            "version": 1,
        }
        assert isinstance(event["seq"], int)
    # Bob's socket gets the next thing meant for him, not alice's draft.
    await sync_to_async(say)(bob, "general", "bob speaks")
    assert (await bobs.receive())["type"] == "message"


async def test_a_sent_message_clears_the_draft_on_every_socket(people, sockets):
    (alice,) = await people("alice")
    await sync_to_async(save)(alice, "general", "hello", 0)
    laptop, phone = await sockets(alice), await sockets(alice)
    await laptop.send({"type": "send", "room": "general", "body": "hello", "nonce": "n-1"})
    for sock in (laptop, phone):
        message = await sock.receive()
        draft = await sock.receive()
        assert (message["type"], message["body"]) == ("message", "hello")
        assert (draft["type"], draft["body"], draft["version"]) == ("draft", "", 2)
        assert draft["seq"] > message["seq"]


async def test_a_socket_that_reconnects_gets_the_draft_changes_it_missed(people, sockets):
    (alice,) = await people("alice")
    seq = await sync_to_async(selectors.latest_seq)()
    await sync_to_async(save)(alice, "general", "typed on the phone", 0)
    await sync_to_async(save)(alice, "general", "typed on the phone, edited", 1)

    back = await sockets(alice, seq=seq)
    replayed = []
    while (event := await back.receive())["type"] != "resumed":
        replayed.append(event)
    assert [(e["type"], e["body"], e["version"]) for e in replayed] == [
        ("draft", "typed on the phone", 1),
        ("draft", "typed on the phone, edited", 2),
    ]
