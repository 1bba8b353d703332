"""Threads: replies, root summaries, following, thread markers and counts, and who sees them."""

import json

import pytest

from chat import eventlog, services
from chat.errors import ChatError
from chat.models import Message, ThreadFollow
from chat.services import SendRequest
from chat.threads import services as thread_services

from .test_pages import config_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch):
    """Every event published from here on, decoded, in order."""
    sent: list[dict] = []
    real = eventlog.publish

    def record(items):
        items = list(items)
        sent.extend(json.loads(item.text) | {"_to": item.user} for item in items)
        real(items)

    monkeypatch.setattr(eventlog, "publish", record)
    return sent


def say(who, room: str, body: str, **kwargs) -> int:
    return services.message_send(
        author=who.user, room=room, body=body, nonce=None, **kwargs
    ).message.id


def reply(who, root: int, body: str, room: str = "general", **kwargs) -> int:
    return say(who, room, body, thread=root, **kwargs)


def thread_page(who, root: int, room: str = "general", **params):
    return who.get(f"/api/rooms/{room}/messages/", thread=root, **params)


def entry(who, slug: str = "general") -> dict:
    return next(r for r in who.rooms() if r["slug"] == slug)


def followed(who) -> list[dict]:
    response = who.get("/api/threads/")
    assert response.status_code == 200, response.content
    return response.json()["threads"]


def of(kind: str, sent: list[dict], **match) -> list[dict]:
    return [e for e in sent if e["type"] == kind and all(e.get(k) == v for k, v in match.items())]


# --- replying -------------------------------------------------------------------


def test_a_reply_names_its_root_and_the_root_shows_the_thread(person):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    root = say(alice, "general", "plans?")
    first = reply(bob, root, "monday")
    second = reply(carol, root, "tuesday")
    third = reply(bob, root, "or wednesday")

    page = thread_page(alice, root).json()
    assert [m["id"] for m in page["messages"]] == [first, second, third]
    assert all(m["thread"] == root and m["in_channel"] is False for m in page["messages"])
    assert all("replies" not in m for m in page["messages"])
    assert page["root"]["id"] == root
    assert page["root"]["replies"] == 3
    assert page["root"]["repliers"] == ["bob", "carol"]
    assert page["root"]["last_reply"] == page["messages"][-1]["created"]
    # The reader's own state comes with the page: Alice started it, so follows it.
    assert page["state"] == {
        "room": "general",
        "root": root,
        "following": True,
        "last_read_id": 0,
        "unread": 3,
        "mentions": 0,
    }
    assert thread_page(person("dave"), root).json()["state"]["following"] is False
    # Without `thread`, history has the root and its replies alike.
    history = alice.history("general")
    assert [m["id"] for m in history] == [root, first, second, third]
    assert history[0]["thread"] is None and history[0]["replies"] == 3


def test_repliers_are_the_latest_five_people_newest_first(person):
    alice = person("alice")
    others = [person(f"p{i}") for i in range(7)]
    root = say(alice, "general", "roll call")
    for who in others:
        reply(who, root, "here")
    reply(others[2], root, "still here")
    [root_data] = [m for m in alice.history("general") if m["id"] == root]
    assert root_data["repliers"] == ["p2", "p6", "p5", "p4", "p3"]
    assert root_data["replies"] == 8


@pytest.mark.parametrize("case", ["unknown", "reply", "deleted", "other_room"])
def test_a_reply_needs_a_live_top_level_message_of_the_same_room(person, channel, case):
    alice, bob = person("alice"), person("bob")
    channel("side", alice, bob)
    root = say(alice, "general", "root")
    target = {
        "unknown": root + 1000,
        "reply": reply(bob, root, "a reply"),
        "deleted": say(alice, "general", "gone"),
        "other_room": say(alice, "side", "elsewhere"),
    }[case]
    if case == "deleted":
        services.message_delete(actor=alice.user, message_id=target)
    before = Message.objects.count()
    with pytest.raises(ChatError) as refused:
        reply(bob, target, "hello?")
    assert refused.value.code == "invalid"
    assert refused.value.detail == "thread must name a live top-level message of this room."
    assert Message.objects.count() == before


def test_a_bad_reply_in_a_batch_does_not_stop_the_others(person):
    alice, bob = person("alice"), person("bob")
    root = say(alice, "general", "root")
    results = services.message_send_many(
        [
            SendRequest(bob.user, "general", "fine", "n1", thread=root),
            SendRequest(bob.user, "general", "bad", "n2", thread=root + 99),
            SendRequest(alice.user, "general", "top", "n3"),
        ]
    )
    assert [type(r).__name__ for r in results] == ["SendResult", "ChatError", "SendResult"]
    assert Message.objects.get(pk=root).reply_count == 1


def test_also_sent_to_the_channel_counts_in_the_room(person):
    alice, bob = person("alice"), person("bob")
    root = say(alice, "general", "root")
    services.read_marker_set(user=bob.user, room="general", message_id=root)
    only_thread = reply(alice, root, "in the thread only")
    reply(alice, root, "in the room too", in_channel=True)
    room = entry(bob)
    # Bob does not follow: the thread-only reply counts nowhere for him.
    assert (room["unread"], room["thread_unread"]) == (1, 0)
    [shown] = [m for m in bob.history("general") if m["body"] == "in the room too"]
    assert shown["in_channel"] is True and shown["thread"] == root
    assert only_thread in [m["id"] for m in bob.history("general")]


# --- following and counts -------------------------------------------------------


def test_who_follows_a_thread(person):
    alice, bob, dave = person("alice"), person("bob"), person("dave")
    person("carol")
    root = say(alice, "general", "root")
    assert followed(alice) == []
    reply(bob, root, "hi @carol")
    follows = set(
        ThreadFollow.objects.filter(following=True).values_list("user__username", flat=True)
    )
    assert follows == {"alice", "bob", "carol"}
    assert followed(dave) == []
    [mine] = followed(alice)
    assert (mine["room"], mine["root"]["id"], mine["unread"]) == ("general", root, 1)


def test_counts_are_exact_and_the_author_reads_their_own_reply(person):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    root = say(alice, "general", "root")
    services.read_marker_set(user=alice.user, room="general", message_id=root)
    services.read_marker_set(user=bob.user, room="general", message_id=root)
    r1 = reply(bob, root, "one")
    reply(carol, root, "two @alice")
    reply(bob, root, "three")
    a, b = entry(alice), entry(bob)
    assert (a["unread"], a["thread_unread"], a["thread_mentions"]) == (0, 3, 1)
    # Bob's marker is at his last reply; carol's reply before it counts as read.
    assert (b["unread"], b["thread_unread"]) == (0, 0)
    [t] = followed(alice)
    assert (t["unread"], t["mentions"]) == (3, 1)
    state = thread_services.thread_read_set(user=alice.user, root_id=root, message_id=r1)
    assert state.logged and (state.data["unread"], state.data["mentions"]) == (2, 1)
    assert (entry(alice)["thread_unread"], entry(alice)["thread_mentions"]) == (2, 1)


def test_reply_events_carry_the_summary_and_each_followers_counts(person, published):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    root = say(alice, "general", "root")
    reply(carol, root, "first")
    published.clear()
    rid = reply(bob, root, "second @carol")
    kinds = [e["type"] for e in published]
    assert kinds[0] == "message" and kinds[1] == "thread"
    [thread] = of("thread", published)
    assert thread == {
        "type": "thread",
        "room": "general",
        "root": root,
        "replies": 2,
        "last_reply": published[0]["created"],
        "repliers": ["bob", "carol"],
        "seq": thread["seq"],
        "_to": None,
    }
    reads = {e["_to"]: e for e in of("thread_read", published)}
    assert set(reads) == {alice.user.pk, bob.user.pk, carol.user.pk}
    assert reads[alice.user.pk]["unread"] == 2
    assert (reads[carol.user.pk]["unread"], reads[carol.user.pk]["mentions"]) == (1, 1)
    assert reads[bob.user.pk]["last_read_id"] == rid and reads[bob.user.pk]["unread"] == 0
    seqs = [e["seq"] for e in published]
    assert seqs == sorted(seqs)


def test_an_unfollow_holds_until_a_reply_or_mention(person):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    root = say(alice, "general", "root")
    state = thread_services.thread_follow_set(user=alice.user, root_id=root, following=False)
    assert state["following"] is False
    reply(bob, root, "first reply")  # the root's author would follow now, but unfollowed
    assert followed(alice) == []
    reply(carol, root, "@alice look")
    [t] = followed(alice)
    assert (t["root"]["id"], t["unread"], t["mentions"]) == (root, 2, 1)
    thread_services.thread_follow_set(user=carol.user, root_id=root, following=False)
    reply(carol, root, "but I reply again")
    assert [t["root"]["id"] for t in followed(carol)] == [root]


def test_following_by_hand_starts_read_and_unfollowing_counts_nothing(person):
    alice, bob, dave = person("alice"), person("bob"), person("dave")
    root = say(alice, "general", "root")
    reply(bob, root, "one")
    response = dave.post(f"/api/threads/{root}/follow/")
    assert response.status_code == 200
    assert response.json() == {
        "room": "general",
        "root": root,
        "following": True,
        "last_read_id": Message.objects.get(body="one").pk,
        "unread": 0,
        "mentions": 0,
    }
    reply(bob, root, "two")
    assert entry(dave)["thread_unread"] == 1
    response = dave.delete(f"/api/threads/{root}/follow/")
    assert response.status_code == 200 and response.json()["following"] is False
    assert response.json()["unread"] == 0
    assert entry(dave)["thread_unread"] == 0


def test_deleting_a_reply_updates_the_summary_and_the_counts(person, published):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    root = say(alice, "general", "root")
    reply(bob, root, "one")
    doomed = reply(carol, root, "two @alice")
    published.clear()
    services.message_delete(actor=carol.user, message_id=doomed)
    kinds = [e["type"] for e in published]
    assert kinds[:2] == ["message_deleted", "thread"]
    [thread] = of("thread", published)
    assert (thread["replies"], thread["repliers"]) == (1, ["bob"])
    reads = {e["_to"]: e for e in of("thread_read", published)}
    # Carol wrote it, so it was never unread for her; bob's marker is at his own
    # reply, before carol's, so it was unread for him as for alice.
    assert set(reads) == {alice.user.pk, bob.user.pk}
    assert (reads[alice.user.pk]["unread"], reads[alice.user.pk]["mentions"]) == (1, 0)
    assert (entry(alice)["thread_unread"], entry(alice)["thread_mentions"]) == (1, 0)


def test_a_deleted_root_with_replies_stays_as_a_placeholder(person):
    alice, bob = person("alice"), person("bob")
    root = say(alice, "general", "secret plans")
    kept = reply(bob, root, "a reply")
    lonely = say(alice, "general", "no replies")
    services.message_delete(actor=alice.user, message_id=root)
    services.message_delete(actor=alice.user, message_id=lonely)
    history = bob.history("general")
    assert [m["id"] for m in history] == [root, kept]
    placeholder = history[0]
    assert placeholder["deleted"] is True
    assert (placeholder["body"], placeholder["html"], placeholder["user"]) == ("", "", "alice")
    page = thread_page(bob, root).json()
    assert page["root"]["deleted"] is True and [m["id"] for m in page["messages"]] == [kept]
    # No reply to a deleted root; its last reply gone, the thread is gone.
    with pytest.raises(ChatError):
        reply(bob, root, "still there?")
    services.message_delete(actor=bob.user, message_id=kept)
    assert bob.history("general") == []
    assert thread_page(bob, root).status_code == 404


def test_edits_and_reactions_work_on_replies(person, published):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    root = say(alice, "general", "root")
    rid = reply(bob, root, "hello")
    published.clear()
    services.message_edit(actor=bob.user, message_id=rid, body="hello @carol")
    services.reaction_toggle(actor=alice.user, message_id=rid, emoji="👍")
    assert [e["type"] for e in published][0] == "message_edited"
    # Carol is mentioned now: she follows, with the reply unread and a mention.
    [t] = followed(carol)
    assert (t["unread"], t["mentions"]) == (1, 1)
    [m] = thread_page(alice, root).json()["messages"]
    assert m["reactions"] == {"👍": ["alice"]} and m["mentions"] == ["carol"]


# --- history ?thread= -------------------------------------------------------------


def test_thread_history_pages_like_history(person):
    alice = person("alice")
    root = say(alice, "general", "root")
    ids = [reply(alice, root, f"r{i}") for i in range(7)]
    say(alice, "general", "not in the thread")
    assert [m["id"] for m in thread_page(alice, root, limit=3).json()["messages"]] == ids[-3:]
    after = thread_page(alice, root, after=ids[1], limit=2).json()["messages"]
    assert [m["id"] for m in after] == ids[2:4]
    before = thread_page(alice, root, before=ids[3]).json()["messages"]
    assert [m["id"] for m in before] == ids[:3]


def test_the_room_page_and_in_room_history_leave_thread_only_replies_in_their_thread(person):
    alice, bob = person("alice"), person("bob")
    root = say(alice, "general", "root")
    for i in range(5):
        reply(bob, root, f"thread only {i}")
    shown = reply(bob, root, "also in the room", in_channel=True)
    after = say(alice, "general", "after the thread")
    expected = [root, shown, after]
    assert [m["id"] for m in bob.history("general", in_room=1)] == expected
    assert [m["id"] for m in bob.history("general", in_room=1, limit=2)] == [shown, after]
    assert [m["id"] for m in bob.history("general", in_room=1, after=root)] == [shown, after]
    # The room page's first page is what the room shows, as in_room history.
    page = bob.client.get("/r/general/").content.decode()
    assert [m["id"] for m in config_of(page)["messages"]] == expected
    assert bob.get("/api/rooms/general/messages/", in_room="yes").status_code == 400


def test_thread_history_of_something_that_is_no_root_is_not_found(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("side", alice)
    root = say(alice, "general", "root")
    child = reply(alice, root, "child")
    elsewhere = say(alice, "side", "other room")
    for target in (child, elsewhere, root + 999):
        response = thread_page(bob, target)
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert thread_page(bob, root, limit="x").status_code == 400


# --- who may see a thread ----------------------------------------------------------


def test_a_private_rooms_thread_is_as_invisible_as_one_that_does_not_exist(person, channel):
    alice, bob, eve = person("alice"), person("bob"), person("eve")
    channel("secret", alice, bob, private=True)
    root = say(alice, "secret", "hidden")
    reply(bob, root, "hidden reply", room="secret")
    missing = root + 999

    def answers(target: int) -> list:
        return [
            (r.status_code, r.json())
            for r in (
                eve.post(f"/api/threads/{target}/follow/"),
                eve.delete(f"/api/threads/{target}/follow/"),
                eve.post(f"/api/threads/{target}/read/", {"id": target}),
            )
        ]

    assert answers(root) == answers(missing)
    assert answers(root)[0] == (404, {"error": "not_found", "detail": "No such thread."})
    assert (
        thread_page(eve, root, room="secret").json()
        == thread_page(eve, missing, room="secret").json()
    )
    assert followed(eve) == []
    with pytest.raises(ChatError) as hidden:
        reply(eve, root, "let me in", room="secret")
    with pytest.raises(ChatError) as unknown:
        reply(eve, missing, "let me in", room="secret")
    assert (hidden.value.code, hidden.value.detail) == (unknown.value.code, unknown.value.detail)
    assert not ThreadFollow.objects.filter(user=eve.user).exists()


def test_someone_who_leaves_a_private_room_stops_seeing_its_threads(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("secret", alice, bob, private=True)
    root = say(alice, "secret", "hidden")
    reply(bob, root, "reply", room="secret")
    assert [t["root"]["id"] for t in followed(bob)] == [root]
    services.room_member_remove(actor=alice.user, room="secret", username="bob")
    reply(alice, root, "after bob left", room="secret")
    assert followed(bob) == []
    assert bob.post(f"/api/threads/{root}/read/", {"id": root}).status_code == 404


def test_a_reader_who_has_not_joined_cannot_follow(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("open", alice)
    root = say(alice, "open", "public")
    response = bob.post(f"/api/threads/{root}/follow/")
    assert (response.status_code, response.json()["error"]) == (403, "not_member")
    assert thread_page(bob, root, room="open").status_code == 200


# --- the Threads list ---------------------------------------------------------------


def test_the_threads_list_puts_unread_first_then_the_latest_reply(person):
    alice, bob = person("alice"), person("bob")
    roots = [say(alice, "general", f"root {i}") for i in range(5)]
    for root in roots:
        reply(bob, root, "reply")
    # Alice reads threads 0 and 3; then thread 1 gets another reply.
    for i in (0, 3):
        thread_services.thread_read_set(user=alice.user, root_id=roots[i], message_id=10**9)
    reply(bob, roots[1], "again")
    order = [t["root"]["id"] for t in followed(alice)]
    assert order == [roots[1], roots[4], roots[2], roots[3], roots[0]]
    # Paged, the same order.
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = alice.get("/api/threads/", **params).json()
        seen += [t["root"]["id"] for t in body["threads"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == order
    assert alice.get("/api/threads/", cursor="nonsense").status_code == 400


def test_read_markers_never_pass_the_newest_reply_and_may_go_back(person):
    alice, bob = person("alice"), person("bob")
    root = say(alice, "general", "root")
    first = reply(bob, root, "one")
    last = reply(bob, root, "two")
    response = alice.post(f"/api/threads/{root}/read/", {"id": 10**12})
    assert response.json()["last_read_id"] == last and response.json()["unread"] == 0
    response = alice.post(f"/api/threads/{root}/read/", {"id": first})
    assert (response.json()["last_read_id"], response.json()["unread"]) == (first, 1)
    assert alice.post(f"/api/threads/{root}/read/", {"id": "x"}).status_code == 400


def test_a_sent_reply_clears_its_threads_draft_and_only_that_one(person):
    alice = person("alice")
    root = say(alice, "general", "root")
    for thread in (root, None):
        draft = {"room": "general", "thread": thread, "body": "typing…", "version": 0}
        response = alice.client.put("/api/drafts/", draft, content_type="application/json")
        assert response.status_code == 200, response.content
    reply(alice, root, "sent")
    left = alice.get("/api/drafts/").json()["drafts"]
    assert [(d["thread"], d["body"]) for d in left] == [(None, "typing…")]
