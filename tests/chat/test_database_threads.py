"""The side and handshake threads never keep a connection inside a transaction between works.

A connection left so holds its locks for as long as the thread is idle:
every TRUNCATE, DDL and vacuum of what it read waits for it.
"""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from chat.realtime import writer
from teamchat import metrics
from tests.conftest import transactions_left_open

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def _left_inside_a_transaction() -> int:
    """Work that reads inside a transaction it never ends, and returns its backend's pid.

    Begun under Django's feet (Django's own `set_autocommit(False)` left so is
    already closed by Channels after each work): Django believes the
    connection is in autocommit, as after an `atomic()` whose end failed to
    restore autocommit on the driver.
    """
    connection.ensure_connection()
    connection.connection.autocommit = False
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chat_room")
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _idle_in_transaction(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0].startswith("idle in transaction")


def _reads() -> tuple[bool, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chat_room")
        return connection.get_autocommit(), cursor.fetchone()[0]


@pytest.mark.parametrize("run_on", [writer.side_sync_to_async, writer.handshake_sync_to_async])
async def test_work_that_leaves_a_transaction_open_does_not_leave_it_open(run_on, caplog):
    before = metrics.TRANSACTIONS_LEFT_OPEN._value.get()
    pid = await run_on(_left_inside_a_transaction)()

    assert not await sync_to_async(_idle_in_transaction)(pid)  # seen from another connection
    assert metrics.TRANSACTIONS_LEFT_OPEN._value.get() == before + 1
    # Expected here: not a report for the run's summary.
    transactions_left_open.messages.clear()
    assert "_left_inside_a_transaction left its connection in a transaction" in caplog.text
    # The thread's next work runs as usual, in autocommit.
    autocommit, rooms = await run_on(_reads)()
    assert autocommit and rooms >= 1
    assert metrics.TRANSACTIONS_LEFT_OPEN._value.get() == before + 1
