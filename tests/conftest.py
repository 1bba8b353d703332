"""Shared fixtures, and the rule for tests that need real services.

Tests marked `postgres`, `redis`, `browser` or `processes` need PostgreSQL, the
Redis channel layer, Debian's Chromium or real daphne processes. When
TEAMCHAT_REQUIRE_SERVICES is set (CI sets it through scripts/test), a missing
service fails the run; otherwise those tests are skipped and the summary says
which service was missing.
"""

import logging
import os
import shutil
import sys
import warnings

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.factories import UserFactory

# Every /api/ response the tests see is checked against the OpenAPI schema.
pytest_plugins = ["tests.openapi_check"]

# Production redirects plain HTTP to HTTPS (on by default with DEBUG off); the
# tests speak plain HTTP, in the servers they start (which inherit this
# environment) and in this process (whose settings are already loaded).
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
settings.SECURE_SSL_REDIRECT = False

REQUIRE_SERVICES = os.environ.get("TEAMCHAT_REQUIRE_SERVICES", "") not in ("", "0", "false")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _missing() -> dict[str, str]:
    missing = {}
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        missing["postgres"] = "DATABASE_URL does not point at PostgreSQL"
    if not settings.REDIS_URL:
        missing["redis"] = "REDIS_URL is not set (in-memory channel layer)"
    if not shutil.which(CHROMIUM):
        missing["browser"] = f"no Chromium at {CHROMIUM}"
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        missing["nginx"] = "no nginx (apt-get install nginx-light)"
    if not shutil.which("caddy"):
        missing["caddy"] = "no caddy (apt-get install caddy)"
    if not shutil.which("redis-sentinel"):
        missing["sentinel"] = "no redis-sentinel (apt-get install redis-sentinel)"
    if os.geteuid() != 0:
        missing["netns"] = "network namespaces need root (`ip netns`)"
    elif not shutil.which("ip"):
        missing["netns"] = "no `ip` (apt-get install iproute2)"
    return missing


_skipped_for: dict[str, str] = {}


def pytest_configure(config):
    (settings.BASE_DIR / "test-artifacts").mkdir(exist_ok=True)


def pytest_collection_modifyitems(config, items):
    missing = _missing()
    for item in items:
        for marker, reason in missing.items():
            if item.get_closest_marker(marker) is None:
                continue
            if REQUIRE_SERVICES:
                item.user_properties.append(("missing", reason))
            else:
                _skipped_for[marker] = reason
                item.add_marker(pytest.mark.skip(reason=f"needs {marker}: {reason}"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # A hook, not a fixture added at collection: fixtures are resolved before
    # pytest_collection_modifyitems runs, so one added there never ran.
    reasons = [value for key, value in item.user_properties if key == "missing"]
    if reasons:
        pytest.fail(f"required service missing in this run: {'; '.join(reasons)}")


def pytest_terminal_summary(terminalreporter):
    db = connection.vendor
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    terminalreporter.write_line(f"TeamChat test services: database={db}, channel layer={layer}")
    for marker, reason in sorted(_skipped_for.items()):
        terminalreporter.write_line(
            f"NOTE: tests marked '{marker}' were skipped locally: {reason}. "
            "CI runs them against real services.",
            yellow=True,
        )


@pytest.fixture(scope="session", autouse=True)
def _close_worker_thread_connections(django_db_setup, django_db_blocker):
    """Close the connections the consumers' database threads hold, so the test database can go."""
    yield
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    from chat.realtime.writer import close_side_connections

    with django_db_blocker.unblock():
        # Run from a fresh event loop, so it lands on the shared database thread.
        asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())
        close_side_connections()


@pytest.fixture(autouse=True)
def general_room(request):
    """#general, which migrations create, also in tests whose database is flushed between tests."""
    if request.node.get_closest_marker("django_db") is None and not {
        "db",
        "transactional_db",
    } & set(request.fixturenames):
        return None
    request.getfixturevalue("_django_db_helper")
    from chat.models import DEFAULT_ROOM_SLUG, Room

    return Room.objects.get_or_create(slug=DEFAULT_ROOM_SLUG, defaults={"name": "general"})[0]


def _highest_seq_handed_out() -> int:
    """The event log's sequence as it stands: every `seq` given so far, kept or not."""
    from django.db import connection
    from django.db.models import Max

    from chat.models import Event

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'seq')::regclass)",
                [Event._meta.db_table],
            )
            return cursor.fetchone()[0] or 0
    return Event.objects.aggregate(m=Max("seq"))["m"] or 0


@pytest.fixture(autouse=True)
def _fanout_starts_where_the_log_is(general_room):
    """The suite's one event loop keeps its fan-out from test to test, as a server
    process would: start each test as a process started now would.

    While other tests ran, events published by them (and by the servers they
    started) queued on its channel layer channel; their `seq` are all below
    the log's sequence, so they are dropped as already handed out instead of
    reaching the next test's sockets or being taken for gaps to fill.
    """
    if general_room is None:  # no database in this test
        return
    from chat import eventlog
    from chat.realtime.fanout import local_fanout
    from teamchat import metrics

    fanouts = local_fanout.existing()
    if fanouts:
        high = _highest_seq_handed_out()
        for fanout in fanouts:
            fanout.last_seq = fanout.resume_from = high
            fanout._suspect = None
            fanout._suspect_seen = high
            # A publish another test failed, or a layer it left failing, is
            # not this test's: a process started now has neither.
            fanout.degraded = False
            fanout._degraded_by.clear()
        eventlog.publish_failures.take()
        metrics.LIVE_DEGRADED.set(0)


class _LeftOpen(logging.Handler):
    """What the server's database threads report leaving inside a transaction."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "left its connection in a transaction" in record.getMessage():
            self.messages.append(record.getMessage())


transactions_left_open = _LeftOpen()
logging.getLogger("chat.realtime.writer").addHandler(transactions_left_open)


@pytest.fixture(autouse=True)
async def _close_sockets_left_open(general_room, request):
    """A socket a test leaves open would stay registered in the suite's fan-out:
    later tests would see it answer, or be closed, by what they do."""
    yield
    sockets = sys.modules.get("tests.chat.sockets")
    if sockets is not None:
        await sockets.close_left_open()
    if general_room is not None:
        await _database_threads_done()
    # The thread closed that connection (see chat.realtime.writer); the run
    # goes on, and its summary names the test and the work, for finding how.
    while transactions_left_open.messages:
        warnings.warn(
            f"{request.node.nodeid}: {transactions_left_open.messages.pop(0)}", stacklevel=1
        )


def _nothing() -> None:
    pass


async def _database_threads_done() -> None:
    """Wait for the database work handed to the server's threads (one at a time each).

    A send or catch-up a test's sockets started can still be running when
    the test's last assertion passes; the teardown's flush of the database
    would deadlock with it, and the work would fail half done, with database
    access refused, leaving its connection in a state the next test inherits
    (a transaction never ended, which then blocks every later flush). The
    loop runs while this waits, and what it runs can hand the threads more
    work (the fan-out filling a gap asks the handshake thread for rooms, one
    user after another), so it waits again, three rounds with the loop's
    ready callbacks run in between.
    """
    import asyncio

    from asgiref.sync import sync_to_async

    writer = sys.modules.get("chat.realtime.writer")
    # The side thread (read markers, session re-checks) and the handshake
    # thread (sessions, rooms, first catch-up pages).
    threads = (writer._side_thread, writer._handshake_thread) if writer is not None else ()
    for _ in range(3):
        waits = [sync_to_async(_nothing, thread_sensitive=True)()]
        waits += [asyncio.wrap_future(thread.submit(_nothing)) for thread in threads]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), 30)
        except TimeoutError:
            print("the database threads were still busy 30 s after the test", file=sys.stderr)
            return
        await asyncio.sleep(0)  # what the loop has ready runs: it may hand them more


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing is deliberately slow; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _gap_watch_only_when_asked(settings):
    # A test's own process looks for missed events only when the test calls
    # `watch_log()`; the server processes tests start keep the default.
    settings.CHAT_GAP_CHECK_SECONDS = 3600


@pytest.fixture
def make_user(db):
    return UserFactory


@pytest.fixture
def login_cookie():
    """Log a user in through Django and return the session cookie header value."""

    def _login(user) -> str:
        client = Client()
        client.force_login(user)
        return (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )

    return _login


@pytest.fixture(scope="session", autouse=True)
async def _stop_background_tasks_at_the_end():
    """Stop the tasks sockets and the fan-out leave behind before the session's loop closes.

    They run for the life of a server process; here the loop closes under
    them. Each gets a bounded time to stop. A channels-redis receive that a
    test left pending has been seen not to finish its cancellation, which made
    the loop's shutdown wait forever: such a task is named on stderr and left
    out of the shutdown rather than hanging the run.
    """
    yield
    import asyncio
    import sys

    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in tasks:
        task.cancel()
    _, stuck = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
    for task in stuck:
        print(f"background task did not stop when cancelled: {task!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
        asyncio.tasks._unregister_task(task)
