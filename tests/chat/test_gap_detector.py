"""The fan-out's gap detector, fed published batches in an order the test chooses.

Events are logged for real (PostgreSQL) but their publish is captured instead
of sent, so the test hands them to this process's fan-out itself: in order
with one missing, late, twice.
"""

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from chat import eventlog, services
from chat.realtime import fanout as fanout_module
from chat.realtime.fanout import local_fanout
from tests.chat.sockets import connect
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def users(login_cookie):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    return (alice, login_cookie(alice)), (bob, login_cookie(bob))


class Captured:
    """Publishes made inside `holding()` are kept here, in order, and sent nowhere."""

    def __init__(self, monkeypatch) -> None:
        self.monkeypatch = monkeypatch
        self.payloads: list[dict] = []

    def hold(self) -> None:
        self.monkeypatch.setattr(eventlog, "_group_send", self.payloads.append)

    def release(self) -> None:
        self.monkeypatch.undo()


async def sent_unpublished(captured: Captured, author, *bodies: str) -> list:
    """Messages stored (and logged) by `author` in #general whose publishes `captured` keeps."""
    captured.hold()
    sent = [
        await sync_to_async(services.message_send)(
            author=author, room="general", body=body, nonce=f"unpublished-{body}"
        )
        for body in bodies
    ]
    captured.release()
    return sent


class Abandoned(Exception):
    pass


async def rolled_back_changes(author, count: int) -> None:
    """`count` changes that each log an event and then roll back: each uses up a seq."""

    def log_and_roll_back() -> None:
        with eventlog.logged_change() as items:
            items.append(eventlog.record("note", {"body": "never committed"}, user_id=author.id))
            raise Abandoned

    for _ in range(count):
        with pytest.raises(Abandoned):
            await sync_to_async(log_and_roll_back)()


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_n_then_n_plus_2_sends_n_plus_1_first_and_late_or_repeated_copies_never(
    users, monkeypatch
):
    (alice, cookie), _ = users
    sock = await connect(cookie)
    fanout = local_fanout()
    captured = Captured(monkeypatch)
    fills, dropped = (
        _sample("teamchat_gap_fills_total"),
        _sample("teamchat_late_events_dropped_total"),
    )

    first, second = await sent_unpublished(captured, alice, "n+1", "n+2")
    lost, later = captured.payloads

    # N+2 arrives while N+1 never did: N+1 is sent from the log, then N+2, once each.
    await fanout.handle(later)
    got = [await sock.receive(), await sock.receive()]
    assert [(m["id"], m["body"]) for m in got] == [
        (first.message.id, "n+1"),
        (second.message.id, "n+2"),
    ]
    assert got[0]["seq"] < got[1]["seq"]
    assert (await sock.receive())["type"] == "resumed"
    assert _sample("teamchat_gap_fills_total") == fills + 1

    # The late live copy of N+1 (out of order) and a second copy of N+2 change nothing.
    await fanout.handle(lost)
    await fanout.handle(later)
    # (At least: events other tests' servers published may be dropped meanwhile.)
    assert _sample("teamchat_late_events_dropped_total") >= dropped + 2

    # The next event is the next thing the socket sees.
    await sock.send({"type": "send", "room": "general", "body": "n+3"})
    assert (await sock.receive())["body"] == "n+3"
    assert _sample("teamchat_gap_fills_total") == fills + 1
    await sock.close()


async def test_a_seq_skipped_by_a_rolled_back_change_is_not_a_gap(users, monkeypatch):
    (alice, cookie), _ = users
    sock = await connect(cookie)
    fills = _sample("teamchat_gap_fills_total")
    fanout = local_fanout()

    await rolled_back_changes(alice, 1)
    skipped_to = fanout.last_seq

    await sock.send({"type": "send", "room": "general", "body": "after a hole"})
    got = await sock.receive()
    assert got["body"] == "after a hole"
    assert got["seq"] > skipped_to + 1  # a hole in the numbers...
    assert _sample("teamchat_gap_fills_total") == fills  # ...that is no missed event
    await sock.close()


async def test_a_long_run_of_numbers_without_events_is_not_a_gap(users, monkeypatch):
    # Rolled-back changes (or a log pruned or emptied while the sequence went
    # on) can leave more unused numbers than a gap may hold rows: the fan-out
    # counts the rows, so the next event is simply delivered.
    (alice, cookie), _ = users
    sock = await connect(cookie)
    fills = _sample("teamchat_gap_fills_total")
    fanout = local_fanout()
    monkeypatch.setattr(fanout_module, "GAP_ROWS_MAX", 2)

    await rolled_back_changes(alice, 5)
    skipped_to = fanout.last_seq

    await sock.send({"type": "send", "room": "general", "body": "after a long hole"})
    got = await sock.receive()
    assert got["body"] == "after a long hole"
    assert got["seq"] > skipped_to + 5
    await sock.send({"type": "send", "room": "general", "body": "next"})
    assert (await sock.receive())["body"] == "next"  # no catch-up (`resumed`) between
    assert _sample("teamchat_gap_fills_total") == fills
    await sock.close()


async def test_a_gap_of_more_events_than_it_reads_row_by_row_is_still_sent(users, monkeypatch):
    (alice, cookie), _ = users
    sock = await connect(cookie)
    fanout = local_fanout()
    captured = Captured(monkeypatch)

    sent = await sent_unpublished(captured, alice, "g1", "g2", "g3", "g4")
    monkeypatch.setattr(fanout_module, "GAP_ROWS_MAX", 2)  # (after: release() undoes it)
    await fanout.handle(captured.payloads[-1])  # three events never arrived
    got = [await sock.receive() for _ in range(4)]
    assert [(m["id"], m["body"]) for m in got] == [(s.message.id, s.message.body) for s in sent]
    assert (await sock.receive())["type"] == "resumed"
    await sock.close()


async def test_a_late_membership_change_does_not_undo_the_newer_one(users, monkeypatch):
    (alice, _), (bob, bob_cookie) = users
    await sync_to_async(services.room_create)(actor=alice, name="Ops", slug="ops")
    await sync_to_async(services.room_join)(actor=bob, room="ops")
    bob_sock = await connect(bob_cookie)
    fanout = local_fanout()
    # Once bob hears his own message, the stream is past his join (its live
    # copy may still have been on its way, and a catch-up would send it).
    await bob_sock.send({"type": "send", "room": "ops", "body": "here"})
    while (await bob_sock.receive()).get("body") != "here":
        pass
    captured = Captured(monkeypatch)

    captured.hold()
    await sync_to_async(services.room_leave)(actor=bob, room="ops")
    await sync_to_async(services.room_join)(actor=bob, room="ops")
    captured.release()
    left, joined = captured.payloads

    # The join arrives, the leave before it was never sent here: both are sent
    # from the log (bob is a member again)...
    await fanout.handle(joined)
    seen = [await bob_sock.receive() for _ in range(3)]
    assert [(f["type"], f.get("action")) for f in seen] == [
        ("member", "left"),
        ("member", "joined"),
        ("resumed", None),
    ]
    # ...then the leave's live copy comes late.
    await fanout.handle(left)

    message = await sync_to_async(services.message_send)(
        author=alice, room="ops", body="still in", nonce="g-3"
    )
    frame = await bob_sock.receive()
    assert (frame["id"], frame["body"]) == (message.message.id, "still in")
    await bob_sock.close()


async def test_a_stream_that_is_behind_but_moving_is_not_filled_from_the_log(users, monkeypatch):
    # The log's watch finds the newest event not handed out yet. While events
    # keep arriving the process is only behind: no catch-up for every socket.
    # Once nothing arrives for a whole look, what is missing comes from the log.
    (alice, cookie), _ = users
    sock = await connect(cookie)
    fanout = local_fanout()
    captured = Captured(monkeypatch)
    fills = _sample("teamchat_gap_fills_total")

    sent = await sent_unpublished(captured, alice, "m0", "m1", "m2")
    first, second, third = captured.payloads

    await fanout.watch_log()  # sees the newest event not here yet
    await fanout.handle(first)  # the stream moves on
    assert (await sock.receive())["body"] == "m0"
    await fanout.watch_log()  # behind, but moving: nothing from the log
    assert _sample("teamchat_gap_fills_total") == fills

    await fanout.watch_log()  # nothing arrived for a whole look: a lost publish
    got = [await sock.receive(), await sock.receive()]
    assert [(m["id"], m["body"]) for m in got] == [
        (sent[1].message.id, "m1"),
        (sent[2].message.id, "m2"),
    ]
    assert (await sock.receive())["type"] == "resumed"
    assert _sample("teamchat_gap_fills_total") == fills + 1

    # Their live copies, late, are dropped; the next event is the next thing seen.
    await fanout.handle(second)
    await fanout.handle(third)
    await sock.send({"type": "send", "room": "general", "body": "m3"})
    assert (await sock.receive())["body"] == "m3"
    await sock.close()


async def test_events_that_arrive_while_publishing_is_degraded_come_once_and_in_order(
    users, monkeypatch
):
    # This process's publish failed (its sockets are told the live path is
    # down) while it still hears the others: events keep arriving live, one
    # with a hole before it. When the layer answers again every socket
    # catches up from the log: nothing it already had may come twice.
    (alice, cookie), _ = users
    sock = await connect(cookie)
    fanout = local_fanout()
    captured = Captured(monkeypatch)

    await sent_unpublished(captured, alice, "d0", "d1", "d2", "d3")
    d0, d1, _lost, d3 = captured.payloads

    fanout._set_degraded("publish")
    assert (await sock.receive())["live"] is False  # a `status` frame
    await fanout.handle(d0)  # next in line
    await fanout.handle(d1)
    await fanout.handle(d3)  # d2 never arrives
    seen = [await sock.receive() for _ in range(5)]
    await fanout._recovered("publish")
    seen += [await sock.receive(), await sock.receive()]
    await sock.send({"type": "send", "room": "general", "body": "d4"})
    seen.append(await sock.receive())

    assert [(f["type"], f.get("body") or f.get("live")) for f in seen] == [
        ("message", "d0"),
        ("message", "d1"),
        ("message", "d2"),  # from the log, before the one after it
        ("message", "d3"),
        ("resumed", None),
        ("status", True),  # back: the catch-up finds nothing it has not sent
        ("resumed", None),
        ("message", "d4"),
    ]
    await sock.close()
