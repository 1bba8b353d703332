"""daphne's periodic checks over every connection, as teamchat.server runs them: in slices.

No reactor runs here: a stand-in records what the walks schedule, and the
test runs those calls one at a time, as the event loop would, turn by turn.
"""

import asyncio

import pytest
import twisted.internet

from teamchat import server as teamchat_server


class Reactor:
    def __init__(self) -> None:
        self.calls: list[tuple[float, object, tuple]] = []

    def callLater(self, delay, fn, *args):  # noqa: N802  (Twisted's interface)
        self.calls.append((delay, fn, args))

    def next_turn(self):
        delay, fn, args = self.calls.pop(0)
        fn(*args)
        return delay


class Connection:
    def __init__(self, log: list) -> None:
        self.log = log

    def check_timeouts(self) -> None:
        self.log.append(self)

    def handle_exception(self, error) -> None:
        self.log.append(error)


@pytest.fixture
def reactor(monkeypatch):
    stand_in = Reactor()
    monkeypatch.setattr(twisted.internet, "reactor", stand_in, raising=False)
    return stand_in


@pytest.fixture
def daphne_server():
    endpoint = "tcp:port=0:interface=127.0.0.1"  # never listened on: the reactor does not run
    return teamchat_server.DrainingServer(application=None, endpoints=[endpoint])


def test_every_connection_is_checked_once_per_round_a_slice_per_turn(reactor, daphne_server):
    checked: list = []
    many = teamchat_server.CHECK_SLICE * 2 + 7
    conns = [Connection(checked) for _ in range(many)]
    daphne_server.connections = {c: {} for c in conns}

    daphne_server.timeout_checker()
    per_turn = [len(checked)]
    while reactor.calls and reactor.calls[0][0] == 0:
        before = len(checked)
        reactor.next_turn()
        per_turn.append(len(checked) - before)

    assert per_turn == [teamchat_server.CHECK_SLICE, teamchat_server.CHECK_SLICE, 7]
    assert checked == conns
    # The round is over: the next one in two seconds, as daphne schedules it.
    assert [(d, fn) for d, fn, _ in reactor.calls] == [(2, daphne_server.timeout_checker)]


def test_a_connection_gone_before_its_turn_is_skipped(reactor, daphne_server):
    checked: list = []
    conns = [Connection(checked) for _ in range(teamchat_server.CHECK_SLICE + 1)]
    daphne_server.connections = {c: {} for c in conns}

    daphne_server.timeout_checker()
    del daphne_server.connections[conns[-1]]
    reactor.next_turn()

    assert checked == conns[:-1]


async def test_finished_applications_are_reaped_and_stalled_ones_killed(
    reactor, daphne_server, caplog
):
    loop = asyncio.get_running_loop()
    log: list = []
    finished, failed, running, stalled = (Connection(log) for _ in range(4))
    done, error, pending, hanging = (loop.create_future() for _ in range(4))
    done.set_result(None)
    error.set_exception(ValueError("boom"))
    daphne_server.connections = {
        # The client left and the application is done: forgotten.
        finished: {"application_instance": done, "disconnected": 1.0},
        # Still connected, its application failed: the protocol is told.
        failed: {"application_instance": error},
        # Still connected, still running: left alone.
        running: {"application_instance": pending},
        # Left long ago and the application never finished: cancelled.
        stalled: {"application_instance": hanging, "disconnected": 1.0},
    }

    daphne_server.application_checker()

    assert finished not in daphne_server.connections
    assert daphne_server.connections[failed] == {}
    assert [type(e) for e in log] == [ValueError]
    # Logged as daphne logs them, under its name.
    logged = sorted((r.name, r.levelname, r.getMessage()) for r in caplog.records)
    assert [(name, level) for name, level, _ in logged] == [
        ("daphne.server", "ERROR"),
        ("daphne.server", "WARNING"),
    ]
    assert logged[0][2] == "Exception inside application: boom"
    assert logged[1][2].endswith("took too long to shut down and was killed.")
    assert daphne_server.connections[running] == {"application_instance": pending}
    assert hanging.cancelled()
    assert [(d, fn) for d, fn, _ in reactor.calls] == [(1, daphne_server.application_checker)]
