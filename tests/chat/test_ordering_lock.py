"""The global ordering lock is released by the database session that took it."""

import logging

import psycopg
import pytest
from django.db import connection, transaction

from chat import eventlog, services
from chat.models import Message
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def another_session_takes_the_lock() -> bool:
    """Whether a session of another process could take the ordering lock now."""
    with _other_session() as other:
        (taken,) = other.execute(
            "SELECT pg_try_advisory_lock(%s)", [eventlog._ORDER_LOCK_KEY]
        ).fetchone()
        if taken:
            other.execute("SELECT pg_advisory_unlock(%s)", [eventlog._ORDER_LOCK_KEY])
        return bool(taken)


def check_out(pool, wanted):
    """Take `wanted` out of the pool (it is idle there), giving back the others taken meanwhile."""
    taken = []
    try:
        while (conn := pool.getconn(timeout=5)) is not wanted:
            taken.append(conn)
        return conn
    finally:
        for conn in taken:
            pool.putconn(conn)


def test_a_change_leaves_the_lock_free():
    with eventlog.ordered():
        assert not another_session_takes_the_lock()
    assert another_session_takes_the_lock()


def test_a_connection_closed_inside_the_lock_does_not_keep_it(caplog):
    # Closing hands the session back to psycopg's pool still open, and a
    # session-level lock goes with it; the pool may lend it to anyone, and
    # the thread's next connection is another session. Every writer of every
    # process would wait for ever.
    pool = connection.pool
    caplog.set_level(logging.ERROR, logger="chat.eventlog")
    with eventlog.ordered():
        holder = connection.connection
        connection.close()
        held_elsewhere = check_out(pool, holder)  # in use by someone else now
    try:
        assert connection.connection is not holder
        assert another_session_takes_the_lock()
        assert "closed inside it" in caplog.text
    finally:
        pool.putconn(held_elsewhere)


def test_the_lock_is_released_when_django_refuses_the_database_inside_it(django_db_blocker):
    # pytest-django refuses database access once a test has ended, while work
    # the test started (a socket's send on a server thread) may still be
    # inside the lock: its unlock must not need Django's cursor.
    # Its commit is refused too, and says so: nothing is acknowledged.
    change = eventlog.ordered()
    change.__enter__()
    with django_db_blocker.block(), pytest.raises(RuntimeError, match="Database access"):
        change.__exit__(None, None, None)
    assert another_session_takes_the_lock()


def test_a_send_on_a_connection_left_outside_autocommit_is_refused_not_lost(general_room):
    # A transaction's end can fail after its COMMIT (the connection drops, or
    # pytest-django refuses the database once a test has ended), leaving the
    # thread's connection with autocommit off. A logged change made on it
    # would only release a savepoint: acknowledged, never committed, and
    # rolled back when the connection goes back to the pool.
    author = UserFactory(username="alice")
    transaction.set_autocommit(False)
    try:
        with pytest.raises(RuntimeError, match="autocommit"):
            services.message_send(author=author, room="general", body="kept?", nonce="n-1")
    finally:
        transaction.rollback()
        transaction.set_autocommit(True)
    assert another_session_takes_the_lock()
    assert not Message.objects.filter(nonce="n-1").exists()


def test_a_send_that_waited_for_the_lock_finds_the_retry_committed_meanwhile(general_room):
    # A send's first reads go to the database with the lock, in one round
    # trip: they must still see what another process committed while the send
    # waited, or a retry stored elsewhere meanwhile would be stored twice.
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from tests.realclients import eventually

    author = UserFactory(username="alice")
    other = _other_session()

    def send():
        try:
            return services.message_send(
                author=author, room="general", body="this try", nonce="n-1"
            )
        finally:
            connection.close()

    def the_send_waits_for_the_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'")
            return cursor.fetchone()[0] > 0

    try:
        other.execute("SELECT pg_advisory_lock(%s)", [eventlog._ORDER_LOCK_KEY])
        with ThreadPoolExecutor(max_workers=1) as pool:
            sending = pool.submit(send)
            asyncio.run(eventually(the_send_waits_for_the_lock, "the send to wait for the lock"))
            stored_elsewhere = Message.objects.create(
                room=general_room, author=author, body="the first try", nonce="n-1"
            )
            other.execute("SELECT pg_advisory_unlock(%s)", [eventlog._ORDER_LOCK_KEY])
            result = sending.result(timeout=30)
    finally:
        other.close()
    assert (result.message.id, result.created) == (stored_elsewhere.id, False)
    assert [m.body for m in Message.objects.filter(nonce="n-1")] == ["the first try"]


def test_the_lock_and_its_reads_show_where_djangos_queries_do(general_room):
    # They go through psycopg directly; query counts and DEBUG's query log
    # must still see every statement a send makes.
    from django.test.utils import CaptureQueriesContext

    author = UserFactory(username="alice")
    with CaptureQueriesContext(connection) as ctx:
        services.message_send(author=author, room="general", body="counted", nonce="n-1")
    sql = [q["sql"] for q in ctx.captured_queries]
    locks = [i for i, q in enumerate(sql) if q.startswith("SELECT pg_advisory_lock(")]
    unlocks = [i for i, q in enumerate(sql) if q.startswith("SELECT pg_advisory_unlock(")]
    assert len(locks) == len(unlocks) == 1 and locks[0] < unlocks[0]
    # The retry look-up by nonce went with the lock, before the inserts.
    assert any("nonce" in q and "'n-1'" in q for q in sql[locks[0] + 1 : locks[0] + 4])
    assert all(float(q["time"]) >= 0 for q in ctx.captured_queries)


def _other_session() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        password=settings["PASSWORD"] or None,
        autocommit=True,
    )
