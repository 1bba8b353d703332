"""Per-user socket cap, session expiry, and the degraded live path, through the real ASGI app."""

import asyncio
import json
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.utils import timezone

from accounts import selectors as account_selectors
from accounts.models import Session, User
from accounts.session_store import SessionStore
from chat import eventlog, events, services
from chat.realtime import fanout as fanout_module
from chat.realtime.fanout import local_fanout
from tests.chat.sockets import connect, open_socket
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(login_cookie):
    user = UserFactory(username="alice")
    return user, login_cookie(user)


async def test_the_socket_past_the_per_user_cap_is_refused(alice, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 3
    sockets = [await connect(alice[1]) for _ in range(3)]
    connected, _ = await open_socket(alice[1])
    assert not connected

    # Closing one makes room for the next.
    await sockets.pop().close()
    again = await connect(alice[1])
    await again.send({"type": "send", "room": "general", "body": "fits"})
    assert (await again.receive())["body"] == "fits"
    for sock in [*sockets, again]:
        await sock.close()


async def test_other_users_are_not_limited_by_someone_elses_sockets(alice, login_cookie, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 1
    first = await connect(alice[1])
    bob = await sync_to_async(UserFactory)(username="bob")
    bob_socket = await connect(await sync_to_async(login_cookie)(bob))
    await bob_socket.send({"type": "send", "room": "general", "body": "bob is in"})
    assert (await bob_socket.receive())["body"] == "bob is in"
    await first.close()
    await bob_socket.close()


async def test_a_socket_whose_session_expired_is_closed_by_the_periodic_recheck(
    alice, login_cookie
):
    other_login = await sync_to_async(login_cookie)(alice[0])
    expiring = await connect(alice[1])
    staying = await connect(other_login)
    key = alice[1].split("=", 1)[1]
    await sync_to_async(Session.objects.filter(session_key=key).update)(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    await local_fanout().recheck_sessions()

    assert await expiring.receive_close() == 4401
    await staying.send({"type": "send", "room": "general", "body": "still here"})
    assert (await staying.receive())["body"] == "still here"
    await staying.close()


async def test_the_recheck_notices_a_password_changed_after_it_found_the_login_valid(
    alice, login_cookie, monkeypatch
):
    monkeypatch.setattr(fanout_module, "RECHECK_SLICE", 1)  # each login in its own turn
    bob = await sync_to_async(UserFactory)(username="bob")
    bob_socket = await connect(await sync_to_async(login_cookie)(bob))
    sock = await connect(alice[1])
    await local_fanout().recheck_sessions()  # both signed in, and remembered so

    # Changed without any session being told (as a script or the shell would).
    await sync_to_async(User.objects.filter(pk=alice[0].pk).update)(
        password=make_password("changed elsewhere")
    )
    await local_fanout().recheck_sessions()

    assert await sock.receive_close() == 4401
    await bob_socket.send({"type": "send", "room": "general", "body": "bob stays"})
    assert (await bob_socket.receive())["body"] == "bob stays"
    await bob_socket.close()


async def test_a_password_changed_after_the_handshake_closes_the_socket_at_the_recheck(alice):
    sock = await connect(alice[1])  # found signed in by its handshake, and remembered so

    await sync_to_async(User.objects.filter(pk=alice[0].pk).update)(
        password=make_password("changed elsewhere")
    )
    await local_fanout().recheck_sessions()

    assert await sock.receive_close() == 4401


async def test_the_first_recheck_does_not_decode_sessions_the_handshakes_read(
    alice, login_cookie, monkeypatch
):
    bob = await sync_to_async(UserFactory)(username="bob")
    sockets = [await connect(alice[1]), await connect(await sync_to_async(login_cookie)(bob))]
    decoded = []
    real_decode = SessionStore.decode
    monkeypatch.setattr(
        SessionStore, "decode", lambda store, raw: decoded.append(raw) or real_decode(store, raw)
    )

    await local_fanout().recheck_sessions()

    assert decoded == []
    alice_socket, bob_socket = sockets  # both still signed in
    await alice_socket.send({"type": "send", "room": "general", "body": "alice is here"})
    assert (await alice_socket.receive())["body"] == "alice is here"
    await bob_socket.send({"type": "send", "room": "general", "body": "bob is here"})
    # Bob's own message, after Alice's: the test ends only once his send is done.
    assert [(await bob_socket.receive())["body"] for _ in range(2)] == [
        "alice is here",
        "bob is here",
    ]
    for sock in sockets:
        await sock.close()


async def test_a_socket_opened_while_the_recheck_runs_stays_open(alice, login_cookie, monkeypatch):
    first = await connect(alice[1])
    reached, gate = asyncio.Event(), asyncio.Event()
    real = fanout_module.side_sync_to_async

    def held_at_the_gate(func):
        if func.__name__ != "logins_still_valid":
            return real(func)

        async def after_the_gate(*args):
            reached.set()
            await gate.wait()
            return await real(func)(*args)

        return after_the_gate

    monkeypatch.setattr(fanout_module, "side_sync_to_async", held_at_the_gate)
    recheck = asyncio.create_task(local_fanout().recheck_sessions())
    await asyncio.wait_for(reached.wait(), 10)  # it has listed the open logins: only the first
    later = await connect(await sync_to_async(login_cookie)(alice[0]))  # a new login
    gate.set()
    await recheck

    await first.send({"type": "send", "room": "general", "body": "one"})
    assert (await first.receive())["body"] == "one"
    assert (await later.receive())["body"] == "one"
    await later.send({"type": "send", "room": "general", "body": "two"})
    assert (await later.receive())["body"] == "two"
    await first.close()
    await later.close()


def held_at_a_gate(monkeypatch, module, name: str) -> tuple[threading.Event, threading.Event]:
    """Make `module.name` wait at a gate: (set once a call is inside, opens the gate)."""
    inside, gate = threading.Event(), threading.Event()
    real = getattr(module, name)

    def held(*args, **kwargs):
        inside.set()
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, held)
    return inside, gate


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps one database thread, by design"
)
async def test_sends_are_stored_while_the_session_recheck_is_busy(alice, monkeypatch):
    # The re-check of every open socket's session takes its own thread: a
    # slow one (thousands of sockets, a busy process) holds up no send.
    sock = await connect(alice[1])
    inside, gate = held_at_a_gate(monkeypatch, account_selectors, "logins_still_valid")
    recheck = asyncio.create_task(local_fanout().recheck_sessions())
    try:
        assert await asyncio.to_thread(inside.wait, 10)
        await sock.send({"type": "send", "room": "general", "body": "not held up"})
        assert (await sock.receive())["body"] == "not held up"
        assert not recheck.done()
    finally:
        gate.set()
        await recheck
    await sock.send({"type": "send", "room": "general", "body": "still signed in"})
    assert (await sock.receive())["body"] == "still signed in"
    await sock.close()


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps one database thread, by design"
)
async def test_sends_are_stored_while_a_reconnects_catch_up_is_being_read(alice, monkeypatch):
    # Handshakes read on a thread of their own: a slow catch-up read (a storm
    # of reconnects after a deploy) holds up no send.
    sock = await connect(alice[1])
    inside, gate = held_at_a_gate(monkeypatch, events, "replay_pages")
    resuming = asyncio.create_task(open_socket(alice[1], path="/ws/chat/?seq=0"))
    try:
        assert await asyncio.to_thread(inside.wait, 10)
        await sock.send({"type": "send", "room": "general", "body": "not held up"})
        assert (await sock.receive())["body"] == "not held up"
    finally:
        gate.set()
        connected, other = await resuming
    assert connected
    # The reconnect is caught up, the message sent meanwhile included.
    assert (await other.receive(skip=("presence", "resumed")))["body"] == "not held up"
    await other.close()
    await sock.close()


async def test_clients_hear_when_the_live_path_fails_and_catch_up_when_it_returns(
    alice, monkeypatch
):
    sock = await connect(alice[1])
    fanout = local_fanout()

    fanout._set_degraded("receive")
    assert await sock.receive() == {"type": "status", "live": False, "seq": None}

    # While the layer is down a send still commits; nothing reaches the socket.
    def layer_down(items):
        raise ConnectionError("channel layer unreachable")

    monkeypatch.setattr(eventlog, "_group_send", layer_down)
    result = await sync_to_async(services.message_send)(
        author=alice[0], room="general", body="sent while degraded", nonce="d-1"
    )
    monkeypatch.undo()

    await fanout._recovered("receive")
    assert await sock.receive() == {"type": "status", "live": True, "seq": None}
    missed = await sock.receive()
    assert (missed["type"], missed["id"], missed["nonce"]) == ("message", result.message.id, "d-1")
    assert (await sock.receive())["type"] == "resumed"

    # And live delivery goes on, without a duplicate of the replayed message.
    await sock.send({"type": "send", "room": "general", "body": "live again"})
    assert (await sock.receive())["body"] == "live again"
    await sock.close()


async def test_a_failed_publish_degrades_this_process_until_the_layer_answers(alice, monkeypatch):
    sock = await connect(alice[1])
    fanout = local_fanout()
    before = _gap_fills()

    def layer_down(items):
        raise ConnectionError("channel layer unreachable")

    monkeypatch.setattr(eventlog, "_group_send", layer_down)
    result = await sync_to_async(services.message_send)(
        author=alice[0], room="general", body="published nowhere", nonce="p-1"
    )
    monkeypatch.undo()

    # The process's watch sees its own failed publish: the live path is down;
    # the layer answers again at once here, so the same look finds it back.
    await fanout.watch_log()
    assert await sock.receive() == {"type": "status", "live": False, "seq": None}
    assert await sock.receive() == {"type": "status", "live": True, "seq": None}
    missed = await sock.receive()
    assert (missed["type"], missed["id"], missed["nonce"]) == ("message", result.message.id, "p-1")
    assert (await sock.receive())["type"] == "resumed"
    assert _gap_fills() == before  # a recovery's catch-up, not a gap found in the stream

    await sock.send({"type": "send", "room": "general", "body": "after"})
    assert (await sock.receive())["body"] == "after"
    await sock.close()


async def test_malformed_frame_floods_leave_the_log_alone(alice, caplog):
    sock = await connect(alice[1])
    secret = "top-secret-body-text"
    with caplog.at_level("DEBUG"):
        for i in range(200):
            await sock.send_text(
                f'{{"type": "send", "room": "general", "body": "{secret}"' + "x" * i
            )
            assert (await sock.receive())["code"] == "invalid_json"
            await sock.send_text(json.dumps({"type": "send", "room": 5, "body": secret}))
            assert (await sock.receive())["code"] == "invalid"
    chat_records = [r for r in caplog.records if r.name.startswith(("chat", "django"))]
    assert chat_records == []
    assert secret not in caplog.text
    await sock.close()


async def test_an_invitation_landing_while_a_socket_opens_still_reaches_it(
    alice, login_cookie, monkeypatch
):
    from chat import selectors
    from chat.models import Room

    bob = await sync_to_async(UserFactory)(username="bob")
    await sync_to_async(Room.objects.create)(slug="late", name="late", is_private=True)
    read_rooms = selectors.rooms_of_members

    def rooms_then_invite(user_ids):
        found = read_rooms(user_ids)  # read before the invitation commits
        from chat.models import Membership

        Membership.objects.create(room=Room.objects.get(slug="late"), user=bob)
        services.room_invite(actor=bob, room="late", username="alice")
        return found

    monkeypatch.setattr(selectors, "rooms_of_members", rooms_then_invite)
    sock = await connect(alice[1])
    monkeypatch.undo()

    await sync_to_async(services.message_send)(
        author=bob, room="late", body="you made it", nonce=None
    )
    event = await sock.receive(skip=("presence", "member"))
    assert (event["room"], event["body"]) == ("late", "you made it")
    await sock.close()


def test_an_api_write_without_csrf_token_gets_a_json_error(alice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice[0])
    response = client.post("/api/rooms/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "send", "room": "general", "body": "\ud83d broken"},
        {"type": "send", "room": "gen\x00eral", "body": "hi"},
        {"type": "typing", "room": "\x00"},
        {"type": "read", "room": "\ud800", "id": 1},
        {"type": "react", "id": 1, "emoji": "\ud83d"},
    ],
)
async def test_text_the_database_cannot_store_is_refused_and_the_socket_goes_on(alice, frame):
    sock = await connect(alice[1])
    await sock.send_text(json.dumps(frame))  # JSON escapes carry NUL and lone surrogates
    error = await sock.receive()
    assert error["type"] == "error" and error["code"] in ("invalid", "no_such_room", "not_found")
    await sock.send({"type": "send", "room": "general", "body": "still fine"})
    assert (await sock.receive())["body"] == "still fine"
    await sock.close()


def test_api_refuses_nul_and_broken_unicode_in_json(alice):
    from django.test import Client

    client = Client()
    client.force_login(alice[0])
    for payload in ('{"users": ["bo\\u0000b"]}', '{"users": ["\\ud83d"]}'):
        response = client.post("/api/dms/", payload, content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid"
    response = client.get("/api/users/", {"q": "a\x00"})
    assert response.status_code == 400


async def test_a_message_the_database_refuses_does_not_fail_its_batch(alice, monkeypatch):
    from chat.realtime import writer

    real = services.message_send_many

    def refuses_poison(requests):
        if any(r.body == "poison" for r in requests):
            raise RuntimeError("the database refused the batch")
        return real(requests)

    monkeypatch.setattr(services, "message_send_many", refuses_poison)
    requests = [
        services.SendRequest(alice[0], "general", body, nonce)
        for body, nonce in (("first", "b-1"), ("poison", "b-2"), ("third", "b-3"))
    ]
    results = await writer.MessageWriter._write_results(requests)
    assert [getattr(r, "created", None) for r in results] == [True, None, True]
    assert isinstance(results[1], RuntimeError)


async def test_a_handshake_that_fails_after_admission_gives_its_slot_back(
    alice, settings, monkeypatch
):
    from chat import selectors

    settings.CHAT_MAX_SOCKETS_PER_USER = 1

    def broken(user_ids):
        raise RuntimeError("the rooms could not be read")

    monkeypatch.setattr(selectors, "rooms_of_members", broken)
    with pytest.raises(RuntimeError, match="could not be read"):
        await open_socket(alice[1])
    monkeypatch.undo()
    sock = await connect(alice[1])  # the one slot is free
    await sock.send({"type": "send", "room": "general", "body": "in"})
    assert (await sock.receive())["body"] == "in"
    await sock.close()


@pytest.fixture
def many_events(alice):
    from chat import services as chat_services

    bob = UserFactory(username="bob")
    for i in range(30):
        chat_services.message_send(author=bob, room="general", body=f"m{i}", nonce=None)
    return bob


async def test_a_socket_too_far_behind_is_told_to_reload(alice, many_events, monkeypatch):
    from chat.realtime import consumers, handshake

    monkeypatch.setattr(handshake, "REPLAY_BATCH_EVENTS", 5)
    monkeypatch.setattr(consumers, "REPLAY_PAGE", 5)
    monkeypatch.setattr(consumers, "REPLAY_MAX_EVENTS", 10)
    sock = await connect(alice[1], "/ws/chat/?seq=0")
    frames = []
    while (event := await sock.receive())["type"] != "reload":
        frames.append(event)
    assert len(frames) <= 10 and all(f["type"] == "message" for f in frames)
    assert event == {"type": "reload", "reason": "too_far_behind", "seq": None}
    assert await sock.receive_close() == 4410


async def test_a_catch_up_stops_when_its_socket_closes(alice, many_events, monkeypatch):
    import threading

    from chat import events
    from chat.realtime import consumers, handshake

    monkeypatch.setattr(handshake, "REPLAY_BATCH_EVENTS", 5)
    monkeypatch.setattr(consumers, "REPLAY_PAGE", 5)
    release, reading = threading.Event(), threading.Event()
    pages = []
    real = events.replay_pages

    def slow(requests, limit):
        pages.append(len(requests))
        if len(pages) == 2:
            reading.set()
            release.wait(10)  # the second page is being read when the client leaves
        return real(requests, limit)

    monkeypatch.setattr(events, "replay_pages", slow)
    sock = await connect(alice[1], "/ws/chat/?seq=0")
    for _ in range(5):
        assert (await sock.receive())["type"] == "message"
    assert await asyncio.to_thread(reading.wait, 10)
    await sock.close()
    release.set()
    from channels.db import database_sync_to_async

    from chat.realtime.consumers import _replay_limits

    await database_sync_to_async(lambda: None)()  # the database thread is past that page
    # The page in flight finished; no further page is read for a closed socket.
    assert pages == [1, 1]
    assert _replay_limits().per_user == {}


async def test_an_event_never_sent_here_is_sent_from_the_log_before_the_next_one(
    alice, monkeypatch
):
    sock = await connect(alice[1])
    before = _gap_fills()

    def layer_down(items):
        raise ConnectionError("channel layer unreachable")

    monkeypatch.setattr(eventlog, "_group_send", layer_down)
    lost = await sync_to_async(services.message_send)(
        author=alice[0], room="general", body="never published", nonce="g-1"
    )
    monkeypatch.undo()
    eventlog.publish_failures.take()  # this process's own watch is another test's subject
    after = await sync_to_async(services.message_send)(
        author=alice[0], room="general", body="published", nonce="g-2"
    )

    # The next event's seq shows the gap: the missing one comes first, once.
    first, second = await sock.receive(), await sock.receive()
    assert (first["id"], first["nonce"]) == (lost.message.id, "g-1")
    assert (second["id"], second["nonce"]) == (after.message.id, "g-2")
    assert (await sock.receive())["type"] == "resumed"
    assert _gap_fills() == before + 1
    await sock.send({"type": "send", "room": "general", "body": "and on"})
    assert (await sock.receive())["body"] == "and on"
    await sock.close()


def _gap_fills() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("teamchat_gap_fills_total") or 0.0
