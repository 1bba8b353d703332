"""Faults in real processes: Redis restarted, PostgreSQL down, a server killed mid-conversation.

Each test runs real daphne servers (`python -m teamchat.server`) on a private
Redis and a private PostgreSQL that the test itself starts, kills and
restarts (tests/faults.py), never the shared services. What is asserted is
what clients notice on their sockets, plus what the database holds.
"""

import asyncio
import http.client
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from django.conf import settings

from tests.faults import PrivatePostgres, PrivateRedis, django_env, signed_in_users
from tests.realclients import Peer, Streamer, eventually, got, got_message
from tests.servers import ServerProcess, start_server

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.redis]

STATUS_DOWN = {"type": "status", "live": False, "seq": None}
STATUS_UP = {"type": "status", "live": True, "seq": None}


# --- services and servers ----------------------------------------------------------


@pytest.fixture(scope="module")
def private_postgres():
    pg = PrivatePostgres().init().start()
    try:
        pg.migrate_template(settings.SECRET_KEY)
        yield pg
    finally:
        pg.destroy()


@dataclass
class Stack:
    """One test's private Redis, its own fresh database, and the servers it started."""

    pg: PrivatePostgres
    redis: PrivateRedis
    database_url: str
    prefix: str
    servers: list[ServerProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "CHANNEL_LAYER_PREFIX": self.prefix,
        }

    def server(self, **extra: str) -> ServerProcess:
        server = start_server(**self.env, **extra)
        self.servers.append(server)
        return server

    def users(self, *names: str) -> dict[str, str]:
        env = django_env(self.database_url, self.redis.url, secret_key=settings.SECRET_KEY)
        return signed_in_users(env, list(names))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.pg.execute(sql, self.database_url.rsplit("/", 1)[1], params)

    def nonce_counts(self, nonces: set[str]) -> Counter:
        rows = self.query(
            "SELECT nonce, count(*) FROM chat_message WHERE nonce = ANY(%s) GROUP BY nonce",
            (sorted(nonces),),
        )
        return Counter(dict(rows))

    def assert_servers_alive(self, *servers: ServerProcess) -> None:
        for server in servers:
            code = server.process.poll()
            assert code is None, f"server on {server.port} exited ({code}):\n" + "".join(
                server.output[-60:]
            )


@pytest.fixture
def stack(private_postgres):
    redis = PrivateRedis().start()
    built = Stack(
        private_postgres,
        redis,
        private_postgres.new_database(),
        prefix=f"tc-faults-{os.getpid()}-{redis.port}",
    )
    try:
        yield built
    finally:
        for server in built.servers:
            server.stop()
        redis.stop()
        if not private_postgres.running:  # a test that failed while it was down
            private_postgres.start()


# --- a. Redis restarted under two servers --------------------------------------------


def test_redis_restart_degrades_then_catches_every_socket_up_without_reconnecting(stack):
    a, b = stack.server(), stack.server()
    cookies = stack.users("alice", "bob", "carol")

    async def scenario():
        alice = await Peer("alice", cookies["alice"]).open(a)
        bob = await Peer("bob", cookies["bob"]).open(b)
        carol = await Peer("carol", cookies["carol"]).open(b)
        peers = (alice, bob, carol)

        await alice.say("before", "a-0")
        for peer in peers:
            await peer.until(got_message("a-0"), "the message sent before the outage")

        stack.redis.kill()
        for peer in peers:
            await peer.until(got(STATUS_DOWN), "status live:false after Redis died")
        # Sends while the live path is down: stored, not lost.
        await alice.say("during, via A", "a-1")
        await bob.say("during, via B", "b-1")
        await eventually(
            lambda: stack.nonce_counts({"a-1", "b-1"}) == Counter({"a-1": 1, "b-1": 1}),
            "both sends made during the outage to be committed",
        )
        stack.assert_servers_alive(a, b)

        stack.redis.start()
        for peer in peers:
            await peer.until(
                lambda events: (
                    STATUS_UP in events
                    and any(e["type"] == "resumed" for e in events[events.index(STATUS_UP) :])
                ),
                "status live:true and the catch-up once Redis is back",
                timeout=20,
            )

        # Live again, across both processes.
        await carol.say("after, via B", "c-1")
        await alice.say("after, via A", "a-2")
        for peer in peers:
            await peer.until(got_message("c-1"), "a live message from B after the restart")
            await peer.until(got_message("a-2"), "a live message from A after the restart")
        for peer in peers:
            await peer.close()
        return peers

    peers = asyncio.run(scenario())
    stack.assert_servers_alive(a, b)
    for peer in peers:
        statuses = [e for e in peer.events if e["type"] == "status"]
        assert statuses == [STATUS_DOWN, STATUS_UP], (peer.name, statuses)
        down, up = peer.events.index(STATUS_DOWN), peer.events.index(STATUS_UP)
        resumed = next(i for i, e in enumerate(peer.events) if e["type"] == "resumed" and i > up)
        caught_up = [e for e in peer.events[up + 1 : resumed] if e["type"] == "message"]
        # Exactly the messages missed, each once, in seq order, after "live" again.
        assert sorted(e["nonce"] for e in caught_up) == ["a-1", "b-1"], (peer.name, caught_up)
        assert [e["seq"] for e in caught_up] == sorted(e["seq"] for e in caught_up)
        assert {e["body"] for e in caught_up} == {"during, via A", "during, via B"}
        assert not [e for e in peer.events[down:up] if e["type"] == "message"], peer.name
        # Nothing twice and nothing out of order, over the whole session.
        nonces = [e["nonce"] for e in peer.messages()]
        assert sorted(nonces) == ["a-0", "a-1", "a-2", "b-1", "c-1"], (peer.name, nonces)
        seqs = [e["seq"] for e in peer.events if e["type"] != "resumed" and e.get("seq")]
        assert seqs == sorted(set(seqs)), (peer.name, seqs)
    assert stack.nonce_counts({"a-0", "a-1", "b-1", "c-1", "a-2"}) == Counter(
        {"a-0": 1, "a-1": 1, "b-1": 1, "c-1": 1, "a-2": 1}
    )


# --- b. PostgreSQL down under a server -------------------------------------------------


def test_database_down_refuses_sends_as_unavailable_and_the_same_socket_recovers(stack):
    # A short pool timeout so a send while the database is gone is refused
    # quickly; the outcome is the same with the default, only slower.
    server = stack.server(DATABASE_POOL_TIMEOUT="2")
    cookies = stack.users("alice", "bob")
    frame = {"type": "send", "room": "general", "body": "while it is down", "nonce": "n-down"}

    async def scenario():
        alice = await Peer("alice", cookies["alice"]).open(server)
        bob = await Peer("bob", cookies["bob"]).open(server)
        await alice.say("before", "n-0")
        for peer in (alice, bob):
            await peer.until(got_message("n-0"), "the message sent before the outage")

        stack.pg.stop()
        await alice.send(frame)
        await alice.until(lambda _: alice.errors("n-down"), "an error for the send", timeout=20)
        [error] = alice.errors("n-down")
        assert error["code"] == "unavailable", error
        assert alice.is_open and bob.is_open
        stack.assert_servers_alive(server)

        stack.pg.start()
        # The client retries with the same nonce until the server stores it;
        # the pool reconnects by itself.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not alice.messages("n-down"):
            assert loop.time() < deadline, f"never stored after the restart: {alice.events[-5:]}"
            refused = len(alice.errors("n-down"))
            await alice.send(frame)
            await alice.until(
                lambda _, before=refused: (
                    alice.messages("n-down") or len(alice.errors("n-down")) > before
                ),
                "an answer to the retry",
                timeout=20,
            )
            if not alice.messages("n-down"):
                await asyncio.sleep(0.5)  # back off before the next retry, as a client would

        await bob.until(got_message("n-down"), "the stored message, broadcast once")
        await bob.say("after", "n-after")  # marks the end of what bob can still receive
        for peer in (alice, bob):
            await peer.until(got_message("n-after"), "a message after the recovery")
        for peer in (alice, bob):
            await peer.close()
        return alice, bob

    alice, bob = asyncio.run(scenario())
    stack.assert_servers_alive(server)
    assert len(alice.messages("n-down")) == 1
    assert len(bob.messages("n-down")) == 1
    assert {e["code"] for e in alice.errors("n-down")} == {"unavailable"}
    assert not bob.errors("n-down")
    # Bob heard nothing of the refused send: its only message is the stored one.
    assert [e["nonce"] for e in bob.messages()] == ["n-0", "n-down", "n-after"]
    assert stack.nonce_counts({"n-down"}) == Counter({"n-down": 1})


# --- c. a server killed mid-conversation and restarted ---------------------------------------
#
# The kill must land where it hurts: after a message is committed and before
# its broadcast reached anyone, the case nonces and the catch-up exist for.
# That window is a millisecond wide, so just before the kill the test stalls
# Redis (SIGSTOP): the server's broadcast hangs, and the test kills it once
# the database holds a message nobody has been told about. Redis resumes
# before the new server starts.


def stored_unacknowledged(stack: Stack, clients: list["Streamer"]) -> set[str]:
    everyone = {n for c in clients for n in c.nonces}
    stored = set(stack.nonce_counts(everyone))
    return stored - {n for c in clients for n in c.acked()}


def test_server_killed_mid_conversation_loses_and_duplicates_nothing(stack):
    fast = {"CHAT_RATE_LIMIT": "1000", "CHAT_RATE_BURST": "1000"}
    servers = [stack.server(**fast)]
    cookies = stack.users("alice", "bob", "carol", "dave")
    clients = [Streamer(name, cookies[name]) for name in ("alice", "bob", "carol")]
    bot = Streamer("dave", cookies["dave"], keeps_position=False)
    everyone = {nonce for client in (*clients, bot) for nonce in client.nonces}

    async def scenario():
        streams = [asyncio.create_task(c.stream(lambda: servers[-1])) for c in (*clients, bot)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while sum(len(c.acked()) for c in clients) < len(everyone) // 3:
            assert loop.time() < deadline, "the conversation never got going"
            assert not any(s.done() for s in streams), [s.exception() for s in streams if s.done()]
            await asyncio.sleep(0.01)

        stack.redis.pause()
        await eventually(
            lambda: stored_unacknowledged(stack, [*clients, bot]),
            "a message stored but not yet broadcast",
            timeout=10,
        )
        servers[0].process.kill()  # SIGKILL: no shutdown, no goodbye
        servers[0].process.wait()
        stack.redis.resume()
        in_limbo = stored_unacknowledged(stack, [*clients, bot])
        acked_at_kill = sum(len(c.acked()) for c in (*clients, bot))
        servers.append(await asyncio.to_thread(stack.server, **fast))

        await asyncio.wait_for(asyncio.gather(*streams), timeout=60)
        for client in clients:
            await client.until(
                lambda _, c=client: everyone <= {e.get("nonce") for e in c.messages()},
                "every message of the conversation",
            )
        for client in (*clients, bot):
            await client.close()
        return acked_at_kill, in_limbo

    acked_at_kill, in_limbo = asyncio.run(scenario())
    assert in_limbo and acked_at_kill < len(everyone), "the kill did not land mid-conversation"
    assert all(c.reconnects == 2 for c in (*clients, bot))  # the first open, and one after
    assert any(c.resent for c in (*clients, bot))

    # Every acknowledged message is stored, and each nonce exactly once.
    assert stack.nonce_counts(everyone) == Counter(dict.fromkeys(everyone, 1))
    for client in clients:
        seen = Counter(e["nonce"] for e in client.messages())
        # Each nonce once, whether it came live, in the catch-up, or as a retry's answer.
        assert seen == Counter(dict.fromkeys(everyone, 1)), (client.name, seen - Counter(everyone))
        # `resumed` names a position in the log, not an event of its own.
        seqs = [e["seq"] for e in client.events if e["type"] != "resumed" and e.get("seq")]
        assert seqs == sorted(set(seqs)), client.name
    # The bot has no catch-up: its own messages reach it live or as retry answers, once each.
    own = Counter(e["nonce"] for e in bot.messages() if e["nonce"] in set(bot.nonces))
    assert own == Counter(dict.fromkeys(bot.nonces, 1)), own
    stack.assert_servers_alive(servers[-1])


def test_a_send_stored_but_never_broadcast_is_answered_once_when_retried_after_a_kill(stack):
    servers = [stack.server()]
    cookies = stack.users("alice", "bob")
    stuck = {"type": "send", "room": "general", "body": "stored, never announced", "nonce": "a-2"}

    async def scenario():
        alice = await Peer("alice", cookies["alice"]).open(servers[0])
        bob = await Peer("bob", cookies["bob"]).open(servers[0], seq=0)
        await bob.until(lambda events: any(e["type"] == "resumed" for e in events), "a position")
        await alice.say("hello", "a-1")
        for peer in (alice, bob):
            await peer.until(got_message("a-1"), "the first message")

        stack.redis.pause()
        await alice.send(stuck)
        await eventually(lambda: stack.nonce_counts({"a-2"})["a-2"] == 1, "the send to be stored")
        servers[0].process.kill()
        servers[0].process.wait()
        stack.redis.resume()
        servers.append(await asyncio.to_thread(stack.server))
        assert not alice.messages("a-2") and not bob.messages("a-2")

        # Alice keeps no position: she resends what was never acknowledged.
        await alice.close()
        await alice.open(servers[1])
        await alice.send(stuck)
        await alice.until(got_message("a-2"), "the answer to the retry")
        # Bob catches up from where he was.
        await bob.close()
        await bob.open(servers[1], seq=max(e["seq"] for e in bob.messages()))
        await bob.until(got_message("a-2"), "the stored message in the catch-up")
        await bob.say("still here", "b-1")
        for peer in (alice, bob):
            await peer.until(got_message("b-1"), "a live message afterwards")
        for peer in (alice, bob):
            await peer.close()
        return alice, bob

    alice, bob = asyncio.run(scenario())
    [answer] = alice.messages("a-2")
    [caught_up] = bob.messages("a-2")
    [(stored_id,)] = stack.query("SELECT id FROM chat_message WHERE nonce = 'a-2'")
    # The retry's answer is the stored message (no new event in the log: no seq).
    assert (answer["id"], answer["body"], answer["seq"]) == (stored_id, stuck["body"], None)
    assert (caught_up["id"], caught_up["body"]) == (stored_id, stuck["body"])
    assert isinstance(caught_up["seq"], int)
    assert [e["nonce"] for e in bob.messages()] == ["a-1", "a-2", "b-1"]


# --- readiness -----------------------------------------------------------------------


def _ready(server: ServerProcess) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _until_ready(server: ServerProcess, ready: bool, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = _ready(server)
        if (status == 200) == ready:
            return body
        assert time.monotonic() < deadline, f"/readyz still {status}: {body}"
        time.sleep(0.2)  # another process's state: polled, bounded by the deadline


def test_readyz_names_the_service_that_fails_and_recovers_with_it(stack):
    server = stack.server()
    assert _ready(server)[0] == 200

    stack.redis.kill()
    body = _until_ready(server, ready=False)
    assert body["failed"] == ["channel_layer"] and body["database"]["ok"]
    stack.redis.start()
    _until_ready(server, ready=True)

    stack.pg.stop()
    body = _until_ready(server, ready=False)
    assert "database" in body["failed"] and not body["database"]["ok"]
    stack.pg.start()
    body = _until_ready(server, ready=True)
    assert body["database"]["pool"]["max"] >= 1
    # Liveness never depended on either.
    stack.assert_servers_alive(server)


# --- graceful restart: SIGTERM drains with 1012 --------------------------------------


def test_a_rolling_restart_under_load_loses_and_duplicates_nothing(stack):
    """Two servers under a live conversation; each in turn gets SIGTERM, then a successor.

    Every socket of a draining server is closed with 1012; its clients
    reconnect to the other one, resume with ?seq= (or, the bot, resend),
    and every message ends up stored and seen exactly once.
    """
    fast = {"CHAT_RATE_LIMIT": "1000", "CHAT_RATE_BURST": "1000"}
    live = [stack.server(**fast), stack.server(**fast)]
    cookies = stack.users("alice", "bob", "carol", "dave")
    clients = [Streamer(name, cookies[name]) for name in ("alice", "bob", "carol")]
    bot = Streamer("dave", cookies["dave"], keeps_position=False)
    everyone = {nonce for client in (*clients, bot) for nonce in client.nonces}
    exits: list[tuple[int | None, float]] = []

    def restart(old: ServerProcess) -> ServerProcess:
        """SIGTERM `old` (new clients already go elsewhere); a successor once it is gone."""
        live.remove(old)
        started = time.monotonic()
        old.process.terminate()
        code = old.process.wait(timeout=40)
        exits.append((code, time.monotonic() - started))
        successor = stack.server(**fast)
        _until_ready(successor, ready=True)
        live.append(successor)
        return successor

    async def scenario():
        streams = [
            asyncio.create_task(c.stream(lambda i=i: live[i % len(live)]))
            for i, c in enumerate((*clients, bot))
        ]
        loop = asyncio.get_running_loop()

        async def progress(share: float) -> None:
            deadline = loop.time() + 30
            while sum(len(c.acked()) for c in (*clients, bot)) < len(everyone) * share:
                assert loop.time() < deadline, "the conversation stalled"
                assert not any(s.done() for s in streams), [
                    s.exception() for s in streams if s.done()
                ]
                await asyncio.sleep(0.01)

        await progress(0.25)
        await asyncio.to_thread(restart, live[0])
        await progress(0.5)
        await asyncio.to_thread(restart, live[0])
        await asyncio.wait_for(asyncio.gather(*streams), timeout=90)
        for client in clients:
            await client.until(
                lambda _, c=client: everyone <= {e.get("nonce") for e in c.messages()},
                "every message of the conversation",
            )
        for client in (*clients, bot):
            await client.close()

    asyncio.run(scenario())
    # Each server left cleanly, well within the 30 s the contract allows.
    assert [code for code, _ in exits] == [0, 0], exits
    assert all(seconds < 30 for _, seconds in exits), exits
    # Its clients were told "service restart", not dropped.
    closed_by_restart = [c for c in (*clients, bot) if 1012 in c.close_codes]
    assert closed_by_restart, [c.close_codes for c in (*clients, bot)]
    assert all(code in (1012, 1000) for c in (*clients, bot) for code in c.close_codes)
    # Every message stored once and seen once by everyone who keeps a position.
    assert stack.nonce_counts(everyone) == Counter(dict.fromkeys(everyone, 1))
    for client in clients:
        seen = Counter(e["nonce"] for e in client.messages())
        assert seen == Counter(dict.fromkeys(everyone, 1)), (client.name, seen - Counter(everyone))
    own = Counter(e["nonce"] for e in bot.messages() if e["nonce"] in set(bot.nonces))
    assert own == Counter(dict.fromkeys(bot.nonces, 1)), own
    stack.assert_servers_alive(*live)


def test_sigterm_closes_the_sockets_with_1012_and_the_process_exits_cleanly(stack):
    server = stack.server()
    cookies = stack.users("alice")

    async def scenario():
        alice = await Peer("alice", cookies["alice"]).open(server)
        await alice.say("hello", "a-1")
        await alice.until(got_message("a-1"), "the message")
        server.process.terminate()
        await alice.until(lambda _: not alice.is_open, "the close", timeout=30)
        return alice.close_codes

    assert asyncio.run(scenario()) == [1012]
    assert server.process.wait(timeout=30) == 0


def test_a_process_whose_database_work_is_stuck_still_exits_within_30_seconds(stack):
    # Another session holds the ordering lock and never lets go: the send
    # waits in the server's database thread, the drain cannot store it, and
    # Python would wait for that thread at exit for ever.
    import psycopg

    from chat import eventlog

    server = stack.server()
    cookies = stack.users("alice")
    holder = psycopg.connect(stack.database_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", [eventlog._ORDER_LOCK_KEY])

    def the_send_waits_for_the_lock() -> bool:
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
        return stack.query(waiting)[0][0] > 0

    async def scenario():
        alice = await Peer("alice", cookies["alice"]).open(server)
        await alice.say("never stored", "s-1")
        await eventually(the_send_waits_for_the_lock, "the send to wait for the lock")
        server.process.terminate()
        await alice.until(lambda _: not alice.is_open, "the close", timeout=30)
        return alice.close_codes

    try:
        assert asyncio.run(scenario()) == [1012]
        # Exited by itself (not by a test's kill), saying it had to.
        assert server.process.wait(timeout=35) == 1
    finally:
        holder.close()
    assert stack.query("SELECT count(*) FROM chat_message WHERE nonce = 's-1'") == [(0,)]
