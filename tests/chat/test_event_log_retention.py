"""The event log keeps a horizon: older events go in batches; a socket from before it reloads."""

from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import services
from chat.eventlog import events_prune
from chat.models import Event, Message
from chat.selectors import latest_seq
from tests.chat.sockets import connect
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(login_cookie):
    user = UserFactory(username="alice")
    return user, login_cookie(user)


def say(user, body: str) -> int:
    """Send a message; its event's seq."""
    services.message_send(author=user, room="general", body=body, nonce=None)
    return latest_seq()


def age(upto_seq: int, days: float) -> None:
    """Make every event up to `upto_seq` look `days` old (as a month of use would)."""
    Event.objects.filter(seq__lte=upto_seq).update(created=timezone.now() - timedelta(days=days))


def test_events_past_the_horizon_are_deleted_in_batches_and_messages_stay(alice):
    old = [say(alice[0], f"old {i}") for i in range(5)]
    age(old[-1], days=40)
    kept = [say(alice[0], f"new {i}") for i in range(2)]

    with CaptureQueriesContext(connection) as queries:
        result = events_prune(keep=timedelta(days=30), batch=2)

    assert (result.cutoff_seq, result.deleted, result.batches) == (old[-1], 5, 3)
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 4  # three batches of at most 2, then one that finds nothing
    assert sorted(Event.objects.values_list("seq", flat=True)) == kept
    assert Message.objects.count() == 7  # the messages themselves are not events


def test_a_dry_run_counts_and_deletes_nothing(alice):
    old = [say(alice[0], f"old {i}") for i in range(3)]
    age(old[-1], days=40)
    say(alice[0], "new")
    out = StringIO()

    call_command("prune_events", "--dry-run", stdout=out)

    assert "Would delete 3 event(s)" in out.getvalue()
    assert Event.objects.count() == 4
    call_command("prune_events", "--batch-size", "1", stdout=out)
    assert "Deleted 3 event(s)" in out.getvalue() and Event.objects.count() == 1


def test_nothing_is_pruned_inside_the_horizon(alice):
    for i in range(3):
        say(alice[0], f"recent {i}")
    assert events_prune(keep=timedelta(days=30)).deleted == 0
    assert Event.objects.count() == 3


async def test_a_socket_resuming_from_before_the_horizon_reloads_one_after_it_catches_up(alice):
    user, cookie = alice
    first = await sync_to_async(say)(user, "old")
    await sync_to_async(age)(first, 40)
    kept_from = await sync_to_async(say)(user, "new one")
    await sync_to_async(say)(user, "new two")
    await sync_to_async(events_prune)(keep=timedelta(days=30))

    # Resuming from before the pruned event: a catch-up would have a hole.
    stale = await connect(cookie, path=f"/ws/chat/?seq={first - 1}")
    assert await stale.receive() == {"type": "reload", "reason": "too_far_behind", "seq": None}
    assert await stale.receive_close() == 4410

    # Resuming from inside what is kept: every later event, then `resumed`.
    fresh = await connect(cookie, path=f"/ws/chat/?seq={kept_from}")
    assert (await fresh.receive())["body"] == "new two"
    assert (await fresh.receive())["type"] == "resumed"
    await fresh.close()

    # Resuming from exactly the last pruned event: nothing it lacks is gone.
    edge = await connect(cookie, path=f"/ws/chat/?seq={first}")
    assert (await edge.receive())["body"] == "new one"
    assert (await edge.receive())["body"] == "new two"
    assert (await edge.receive())["type"] == "resumed"
    await edge.close()
