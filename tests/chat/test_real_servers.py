"""Two real daphne processes sharing Redis and PostgreSQL behave as one chat."""

import asyncio
import json
import random

import pytest
import websockets

from tests.factories import UserFactory
from tests.servers import start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
]


@pytest.fixture
def two_servers():
    servers = [start_server(), start_server()]
    yield servers
    for server in servers:
        server.stop()


def connect(server, cookie, origin=None):
    origin = origin or f"http://127.0.0.1:{server.port}"
    return websockets.connect(
        server.ws_url, additional_headers={"Cookie": cookie, "Origin": origin}, open_timeout=10
    )


async def next_event(ws) -> dict:
    """The next event, leaving out presence changes (for tests that follow someone)."""
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        if event["type"] != "presence":
            return event


def test_clients_on_two_processes_see_each_others_messages(two_servers, login_cookie):
    a, b = two_servers
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    alice_cookie, bob_cookie = login_cookie(alice), login_cookie(bob)

    async def scenario():
        async with connect(a, alice_cookie) as wa, connect(b, bob_cookie) as wb:
            await wa.send(json.dumps({"type": "send", "room": "general", "body": "from A"}))
            got_b = await next_event(wb)
            assert (got_b["user"], got_b["body"]) == ("alice", "from A")
            assert (await next_event(wa))["id"] == got_b["id"]

            await wb.send(json.dumps({"type": "send", "room": "general", "body": "from B"}))
            got_a = await next_event(wa)
            assert (got_a["user"], got_a["body"]) == ("bob", "from B")
            assert (await next_event(wb))["id"] == got_a["id"]

    asyncio.run(scenario())


def test_concurrent_senders_on_two_processes_are_delivered_in_id_order(two_servers, login_cookie):
    a, b = two_servers
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    alice_cookie, bob_cookie = login_cookie(alice), login_cookie(bob)
    per_sender = 15

    async def scenario():
        async with connect(a, alice_cookie) as wa, connect(b, bob_cookie) as wb:

            async def blast(ws, who):
                for i in range(per_sender):
                    await ws.send(
                        json.dumps({"type": "send", "room": "general", "body": f"{who}{i}"})
                    )

            async def collect(ws):
                return [await next_event(ws) for _ in range(2 * per_sender)]

            _, _, seen_a, seen_b = await asyncio.gather(
                blast(wa, "a"), blast(wb, "b"), collect(wa), collect(wb)
            )
            return seen_a, seen_b

    seen_a, seen_b = asyncio.run(scenario())
    for seen in (seen_a, seen_b):
        ids = [event["id"] for event in seen]
        assert ids == sorted(ids)
        assert len(set(ids)) == 2 * per_sender
    assert [e["id"] for e in seen_a] == [e["id"] for e in seen_b]


def test_real_server_refuses_anonymous_and_foreign_origin_handshakes_with_403(
    two_servers, login_cookie
):
    a, _ = two_servers
    cookie = login_cookie(UserFactory())

    async def status_of(cookie, origin):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(a, cookie, origin):
                pass
        return refused.value.response.status_code

    assert asyncio.run(status_of("sessionid=none", None)) == 403
    assert asyncio.run(status_of(cookie, "http://evil.example")) == 403
    # The same host on another port or scheme is another site.
    assert asyncio.run(status_of(cookie, "http://127.0.0.1:9999")) == 403
    assert asyncio.run(status_of(cookie, "https://127.0.0.1")) == 403
    assert asyncio.run(status_of(cookie, f"https://127.0.0.1:{a.port}")) == 403


def test_frames_up_to_128_kib_are_read_and_larger_ones_refused(two_servers, login_cookie):
    a, _ = two_servers
    cookie = login_cookie(UserFactory())
    frame = json.dumps({"type": "send", "room": "general", "body": "", "nonce": "big"})
    padding = 128 * 1024 - len(frame)
    at_limit = frame.replace('"body": ""', '"body": "' + "x" * padding + '"')
    assert len(at_limit.encode()) == 128 * 1024

    async def scenario():
        async with connect(a, cookie) as ws:
            await ws.send(at_limit)
            reply = await next_event(ws)
            assert (reply["code"], reply["nonce"]) == ("too_long", "big")
            await ws.send("y" * (128 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=10)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(scenario()) in (1009, None)


@pytest.fixture
def fast_server():
    server = start_server(CHAT_RATE_LIMIT="100000", CHAT_RATE_BURST="100000")
    yield server
    server.stop()


def test_a_client_that_stops_reading_is_closed_and_catches_up(fast_server, login_cookie):
    import socket
    import urllib.request

    server = fast_server
    sender, slow = UserFactory(username="sender"), UserFactory(username="slow")
    sender_cookie, slow_cookie = login_cookie(sender), login_cookie(slow)
    total, body = 1200, "z" * 9000

    def history_after(after: int) -> list[dict]:
        request = urllib.request.Request(
            f"{server.http_url}/api/rooms/general/messages/?after={after}&limit=200",
            headers={"Cookie": slow_cookie},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["messages"]

    async def scenario():
        # A small receive buffer, so the server notices the unread data soon.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        raw.connect(("127.0.0.1", server.port))
        slow_ws = await websockets.connect(
            server.ws_url,
            sock=raw,
            additional_headers={"Cookie": slow_cookie, "Origin": server.http_url},
            max_queue=4,
            max_size=None,
        )
        async with connect(server, sender_cookie) as ws:
            for i in range(total):
                frame = {"type": "send", "room": "general", "body": f"{i} {body}"}
                await ws.send(json.dumps(frame))
            for _ in range(total):  # the sender keeps reading: it is not slow
                await next_event(ws)
        received = []
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                event = json.loads(await asyncio.wait_for(slow_ws.recv(), timeout=10))
                if event["type"] == "message":
                    received.append(event)
        return received, closed.value.rcvd.code if closed.value.rcvd else None

    received, code = asyncio.run(scenario())
    # The close frame queues behind the unread data, so a client this slow
    # usually sees the connection dropped once the close handshake times out.
    assert code in (4008, None)
    assert 0 < len(received) < total
    ids = [m["id"] for m in received]
    caught_up, last = [], ids[-1]
    while page := history_after(last):
        caught_up += page
        last = page[-1]["id"]
    assert len(ids) + len(caught_up) == total
    assert len(set(ids) | {m["id"] for m in caught_up}) == total
    # The operator sees it: the process counts the socket it closed for slowness.
    assert wait_for_metric(server, "teamchat_slow_client_closes_total", lambda v: v >= 1)


def wait_for_metric(server, name: str, ok, timeout: float = 10.0) -> bool:
    """Whether the server's /metrics shows `name` with a value `ok` accepts within `timeout`."""
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        values = [
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        ]
        if values and ok(sum(values)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling the process's own counter, not waiting out an event


@pytest.fixture
def two_roomy_servers():
    # One account opens every socket below: lift the per-user cap for it.
    servers = [start_server(CHAT_MAX_SOCKETS_PER_USER="5000") for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def test_a_thousand_clients_connecting_at_once_all_connect_and_hear(
    two_roomy_servers, login_cookie
):
    # The stock design's channels-redis pool runs out during a burst like this
    # and kills consumers; here a connect makes no channel-layer traffic of its
    # own, and the handshakes share their database reads.
    server, other = two_roomy_servers
    cookie = login_cookie(UserFactory())
    speaker = login_cookie(UserFactory(username="speaker"))
    clients = 1000

    async def scenario():
        sockets = await asyncio.gather(
            *(
                websockets.connect(
                    server.ws_url,
                    additional_headers={"Cookie": cookie, "Origin": server.http_url},
                    open_timeout=60,
                )
                for _ in range(clients)
            )
        )
        try:
            async with connect(other, speaker) as ws:
                await ws.send(json.dumps({"type": "send", "room": "general", "body": "all here?"}))
                heard = await asyncio.gather(*(next_event(s) for s in sockets))
            return [event["body"] for event in heard]
        finally:
            await asyncio.gather(*(s.close() for s in sockets))

    assert asyncio.run(scenario()) == ["all here?"] * clients


def test_presence_seen_from_two_processes_ends_in_the_right_state(login_cookie):
    quick = {"CHAT_PRESENCE_ANNOUNCE_SECONDS": "0.1", "CHAT_PRESENCE_OFFLINE_GRACE_SECONDS": "0.3"}
    servers = [start_server(**quick), start_server(**quick)]
    a, b = servers
    bob = UserFactory(username="bob")
    bob_a, bob_b = login_cookie(bob), login_cookie(bob)
    carol, dave = login_cookie(UserFactory(username="carol")), login_cookie(UserFactory())

    class Watcher:
        """Follows bob; `state` is the last state it was told."""

        def __init__(self, ws):
            self.ws = ws
            self.state = None

        async def follow(self):
            await self.ws.send(json.dumps({"type": "presence_sub", "users": ["bob"]}))
            await self.until("offline")

        async def until(self, state):
            while self.state != state:
                event = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=10))
                if event["type"] == "presence":
                    assert set(event["users"]) <= {"bob"}, event
                    self.state = event["users"].get("bob", self.state)

    async def scenario():
        async with connect(a, carol) as wa, connect(b, dave) as wb:
            watchers = [Watcher(wa), Watcher(wb)]
            for watcher in watchers:
                await watcher.follow()

            async def everyone_sees(state):
                await asyncio.gather(*(w.until(state) for w in watchers))

            tab_a = await connect(a, bob_a)
            await everyone_sees("online")
            tab_b = await connect(b, bob_b)
            await tab_a.send(json.dumps({"type": "presence", "state": "away"}))
            await tab_b.send(json.dumps({"type": "presence", "state": "away"}))
            await everyone_sees("away")  # every tab of his, on either process, is away
            await tab_a.send(json.dumps({"type": "presence", "state": "active"}))
            await everyone_sees("online")
            await tab_a.close()
            await everyone_sees("away")  # the tab left open on the other process is away
            await tab_b.close()
            await everyone_sees("offline")
            # And it stays so: the next thing each watcher hears is a message.
            await wa.send(json.dumps({"type": "send", "room": "general", "body": "end"}))
            for watcher in watchers:
                assert (await next_event(watcher.ws))["body"] == "end"

    try:
        asyncio.run(scenario())
    finally:
        for server in servers:
            server.stop()


def test_clients_resuming_after_a_restart_get_every_message_once(login_cookie):
    """A server restarts under its clients while another keeps sending: nothing lost or doubled.

    The clients reconnect at once, each after a jittered delay as the page does,
    resuming from the last `seq` they saw.
    """
    roomy = {"CHAT_MAX_SOCKETS_PER_USER": "100", "CHAT_RATE_LIMIT": "1000"}
    servers = [start_server(**roomy)]
    sender_server = start_server(**roomy)
    cookies = [login_cookie(UserFactory()) for _ in range(40)]
    speaker = login_cookie(UserFactory(username="speaker"))
    clients_per_user, total = 3, 150

    class Client:
        def __init__(self, cookie):
            self.cookie = cookie
            self.ids: list[int] = []
            self.seqs: list[int] = []
            self.resumes = 0

        async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None):
            attempt = 0
            while not stop.is_set():
                server = servers[-1]
                query = f"?seq={self.seqs[-1] if self.seqs else 0}" if self.resumes else ""
                try:
                    ws = await websockets.connect(
                        server.ws_url + query,
                        additional_headers={"Cookie": self.cookie, "Origin": server.http_url},
                        open_timeout=20,
                    )
                except (OSError, websockets.InvalidHandshake, TimeoutError):
                    attempt += 1
                    await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.75, 1.25))
                    continue
                attempt = 0
                self.resumes += 1
                if ready is not None:
                    ready.set()
                    ready = None
                try:
                    async for raw in ws:
                        event = json.loads(raw)
                        # `resumed` names a position in the log, not an event of its own.
                        if event.get("seq") is not None and event["type"] != "resumed":
                            self.seqs.append(event["seq"])
                        if event["type"] == "message":
                            self.ids.append(event["id"])
                except websockets.ConnectionClosed:
                    pass
                # Cut off: come back after a jittered moment, as the page does.
                await asyncio.sleep(0.05 * random.uniform(0.75, 1.25))

    async def scenario():
        stop = asyncio.Event()
        clients = [Client(c) for c in cookies for _ in range(clients_per_user)]
        ready = [asyncio.Event() for _ in clients]
        tasks = [asyncio.create_task(c.run(stop, r)) for c, r in zip(clients, ready, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), timeout=30)
        sent: list[int] = []
        while_down: list[int] = []

        async def restart():
            await asyncio.to_thread(servers[-1].stop)
            down_from = len(sent)
            servers.append(await asyncio.to_thread(start_server, **roomy))
            while_down.extend(sent[down_from:])

        restarting = None
        async with connect(sender_server, speaker) as ws:
            for i in range(total):
                if i == total // 4:
                    restarting = asyncio.create_task(restart())
                await ws.send(json.dumps({"type": "send", "room": "general", "body": f"m{i}"}))
                while True:
                    event = await next_event(ws)
                    if event["type"] == "message" and event["user"] == "speaker":
                        sent.append(event["id"])
                        break
                await asyncio.sleep(0.02)
        await restarting
        assert while_down, "no message was sent while the server was down"
        deadline = asyncio.get_running_loop().time() + 60
        while not all(set(sent) <= set(c.ids) for c in clients):
            assert asyncio.get_running_loop().time() < deadline, "not every client caught up"
            await asyncio.sleep(0.1)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return clients, sent

    try:
        clients, sent = asyncio.run(scenario())
    finally:
        for server in [*servers, sender_server]:
            server.stop()
    for client in clients:
        mine = [i for i in client.ids if i in set(sent)]
        assert mine == sent  # every one, once, in order
        assert client.seqs == sorted(set(client.seqs))
    assert all(client.resumes >= 2 for client in clients)


def test_a_socket_slot_comes_back_even_when_its_handler_is_killed(login_cookie):
    """daphne kills a handler still busy after its client left; the user's slot is returned.

    The handler is kept busy by an edit waiting on a row the test locks; the
    client leaves; daphne gives up on the handler and kills it (so
    disconnect() never runs); then the user opens as many sockets as the cap
    allows.
    """
    import psycopg

    from chat import services
    from tests.servers import test_database_url

    server = start_server(CHAT_MAX_SOCKETS_PER_USER="2", args=("--application-close-timeout", "1"))
    alice = UserFactory(username="alice")
    cookie = login_cookie(alice)
    mid = services.message_send(author=alice, room="general", body="locked", nonce=None).message.id

    async def scenario():
        locker = await psycopg.AsyncConnection.connect(test_database_url())
        try:
            await locker.execute("SELECT id FROM chat_message WHERE id = %s FOR UPDATE", [mid])
            stuck = [await connect(server, cookie) for _ in range(2)]
            for ws in stuck:
                await ws.send(json.dumps({"type": "edit", "id": mid, "body": "waits"}))
            deadline = asyncio.get_running_loop().time() + 20
            while True:  # the first edit waits on the lock (the second, behind it)
                # Activity statistics hold still within a transaction: look afresh each time.
                await locker.execute("SELECT pg_stat_clear_snapshot()")
                waiting = await locker.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'UPDATE%%chat_message%%'"
                )
                if (await waiting.fetchone())[0]:
                    break
                assert asyncio.get_running_loop().time() < deadline, "no edit reached the lock"
                await asyncio.sleep(0.05)
            for ws in stuck:
                await ws.close()
            while sum("was killed" in line for line in server.output) < 2:
                assert asyncio.get_running_loop().time() < deadline, "".join(server.output[-20:])
                await asyncio.sleep(0.1)
        finally:
            await locker.rollback()
            await locker.close()
        # The cap is 2: both slots must be free again.
        async with connect(server, cookie) as one, connect(server, cookie) as two:
            await one.send(json.dumps({"type": "send", "room": "general", "body": "back"}))
            assert (await next_event(two))["body"] in ("waits", "back")

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_one_users_write_budget_is_shared_by_every_process(login_cookie):
    tight = {"CHAT_RATE_LIMIT": "0.001", "CHAT_RATE_BURST": "6"}
    servers = [start_server(**tight), start_server(**tight)]
    cookie = login_cookie(UserFactory(username="alice"))

    async def scenario():
        async with connect(servers[0], cookie) as a, connect(servers[1], cookie) as b:
            answers = {"message": 0, "error": 0}
            for i in range(6):  # twelve sends, six through each process
                for ws in (a, b):
                    await ws.send(json.dumps({"type": "send", "room": "general", "body": f"{i}"}))
            seen = 0
            while seen < 12:  # every send is answered: echoes (to both sockets) or refusals
                for ws in (a, b):
                    try:
                        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
                    except TimeoutError:
                        continue
                    if event["type"] == "error":
                        assert event["code"] == "rate_limited"
                        answers["error"] += 1
                        seen += 1
                    elif event["type"] == "message" and ws is a:
                        answers["message"] += 1
                        seen += 1
            return answers

    try:
        answers = asyncio.run(scenario())
    finally:
        for server in servers:
            server.stop()
    assert answers == {"message": 6, "error": 6}


def test_a_socket_sending_past_its_frame_rate_is_read_slowly_yet_every_frame_is_answered(
    login_cookie,
):
    # A client at its frame budget is not read for a while (its frames wait in
    # TCP buffers): nothing it sent is dropped, each frame gets its answer,
    # and the socket goes on working.
    server = start_server(
        CHAT_SOCKET_FRAME_RATE="100",
        CHAT_SOCKET_FRAME_BURST="20",
        CHAT_TYPING_RATE_LIMIT="0.001",
        CHAT_TYPING_RATE_BURST="20",
    )
    cookie = login_cookie(UserFactory(username="alice"))
    flood = 300

    async def scenario():
        async with connect(server, cookie) as ws:
            for i in range(flood):  # past the typing bucket: most are refused
                frame = {"type": "typing", "room": "general", "nonce": f"t{i}"}
                await ws.send(json.dumps(frame))
            await ws.send(json.dumps({"type": "send", "room": "general", "body": "still here"}))
            refused, echo = set(), None
            while echo is None:
                event = await next_event(ws)
                if event["type"] == "error":
                    assert event["code"] == "rate_limited"
                    refused.add(event["nonce"])
                elif event["type"] == "message":
                    echo = event
            return refused, echo

    try:
        refused, echo = asyncio.run(scenario())
        held = wait_for_metric(server, "teamchat_socket_reads_held_total", lambda v: v >= 1)
    finally:
        server.stop()
    # The typing bucket lets its burst through unanswered; every other frame
    # was answered, before the send that came after them all.
    assert len(refused) == flood - 20
    assert refused == {f"t{i}" for i in range(20, flood)}
    assert (echo["user"], echo["body"]) == ("alice", "still here")
    assert held
