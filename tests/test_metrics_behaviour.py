"""What /metrics tells an operator after real socket traffic, read from the scraped text."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import Session
from chat import eventlog, services
from chat.realtime.fanout import local_fanout
from tests.chat.sockets import connect, open_socket
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of this process's /metrics, by name and labels."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


async def ascrape():
    return await sync_to_async(scrape)()


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def alice(login_cookie):
    user = UserFactory(username="alice")
    return user, login_cookie(user)


async def test_error_frames_are_counted_by_their_code(alice):
    before = await ascrape()
    sock = await connect(alice[1])
    await sock.send_text("{not json")
    assert (await sock.receive())["code"] == "invalid_json"
    await sock.send({"type": "send", "room": "nowhere", "body": "hi", "nonce": "n1"})
    assert (await sock.receive())["code"] == "no_such_room"
    await sock.close()

    after = await ascrape()
    for code in ("invalid_json", "no_such_room"):
        assert value(after, "teamchat_errors_total", code=code) == (
            value(before, "teamchat_errors_total", code=code) + 1
        )
    assert value(after, "teamchat_frames_in_total", type="refused") == (
        value(before, "teamchat_frames_in_total", type="refused") + 1
    )


async def test_refused_handshakes_are_counted_by_reason(alice):
    before = await ascrape()
    connected, _ = await open_socket(None)
    assert not connected
    connected, _ = await open_socket(alice[1], origin="http://evil.example")
    assert not connected

    after = await ascrape()
    for outcome in ("refused_unauthenticated", "refused_origin"):
        assert value(after, "teamchat_handshakes_total", outcome=outcome) == (
            value(before, "teamchat_handshakes_total", outcome=outcome) + 1
        )


async def test_a_delivered_event_is_timed_from_its_publish(alice):
    before = await ascrape()
    sock = await connect(alice[1])
    await sock.send({"type": "send", "room": "general", "body": "timed", "nonce": "t1"})
    assert (await sock.receive())["body"] == "timed"
    await sock.close()

    after = await ascrape()
    assert value(after, "teamchat_fanout_latency_seconds_count") > value(
        before, "teamchat_fanout_latency_seconds_count"
    )
    assert value(after, "teamchat_messages_stored_total") == (
        value(before, "teamchat_messages_stored_total") + 1
    )
    assert value(after, "teamchat_commit_batch_messages_count") > value(
        before, "teamchat_commit_batch_messages_count"
    )


async def test_an_expired_login_closing_its_socket_is_counted(alice):
    sock = await connect(alice[1])
    before = await ascrape()
    key = alice[1].split("=", 1)[1]
    await sync_to_async(Session.objects.filter(session_key=key).update)(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    # Two re-checks at once (the periodic one may run beside another) count it once.
    fanout = local_fanout()
    await asyncio.gather(fanout.recheck_sessions(), fanout.recheck_sessions())
    assert await sock.receive_close() == 4401

    after = await ascrape()
    assert value(after, "teamchat_sessions_ended_total", reason="expired") == (
        value(before, "teamchat_sessions_ended_total", reason="expired") + 1
    )


async def test_a_failing_channel_layer_shows_as_degraded_until_it_answers(
    alice, monkeypatch, settings
):
    settings.CHAT_GAP_CHECK_SECONDS = 3600  # the test looks itself, when it means to
    sock = await connect(alice[1])
    before = await ascrape()

    def layer_down(items):
        raise ConnectionError("channel layer unreachable")

    monkeypatch.setattr(eventlog, "_group_send", layer_down)
    await sync_to_async(services.message_send)(
        author=alice[0], room="general", body="published nowhere", nonce="p-1"
    )
    monkeypatch.undo()
    failed = await ascrape()
    assert value(failed, "teamchat_channel_layer_failures_total", operation="publish") == (
        value(before, "teamchat_channel_layer_failures_total", operation="publish") + 1
    )

    # The watch marks the live path degraded, then finds the layer back.
    fanout = local_fanout()
    fanout._set_degraded("publish")
    assert value(await ascrape(), "teamchat_live_degraded") == 1
    await fanout.watch_log()
    assert value(await ascrape(), "teamchat_live_degraded") == 0

    # The socket caught up: a replay of the missed message was run and measured.
    events = [await sock.receive() for _ in range(4)]
    assert [e["type"] for e in events][-1] == "resumed"
    await sock.close()
    after = await ascrape()
    assert value(after, "teamchat_replays_total") > value(before, "teamchat_replays_total")
    assert (
        value(after, "teamchat_replay_events_sum")
        >= value(before, "teamchat_replay_events_sum") + 1
    )


@pytest.mark.postgres
def test_the_database_pool_is_read_at_scrape_time(alice):
    Client().get("/readyz")  # uses the pool, whatever ran before
    samples = scrape()
    assert value(samples, "teamchat_db_pool_max") >= 1
    assert value(samples, "teamchat_db_pool_size") >= value(samples, "teamchat_db_pool_in_use")
