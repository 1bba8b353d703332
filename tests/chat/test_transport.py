"""The socket transport on a real daphne process: direct sends, slow clients, the start-up check."""

import asyncio
import base64
import json
import logging
import os
import select
import socket
import struct
import time
import urllib.request

import pytest
import websockets
from prometheus_client import REGISTRY

from chat.realtime import transport
from teamchat import server as teamchat_server
from tests.factories import UserFactory
from tests.servers import start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
]


def scrape(server) -> str:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as response:
        return response.read().decode()


def connect(server, cookie):
    return websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": cookie, "Origin": server.http_url},
        open_timeout=10,
        max_size=None,
    )


async def next_message(ws) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        if event["type"] == "message":
            return event


@pytest.fixture
def required_server():
    # With the setting on, a server that starts at all found every internal.
    server = start_server(
        TEAMCHAT_TRANSPORT_REQUIRED="true", CHAT_RATE_LIMIT="100000", CHAT_RATE_BURST="100000"
    )
    yield server
    server.stop()


def test_the_server_sends_directly_and_frames_arrive_whole(required_server, login_cookie):
    server = required_server
    assert "teamchat_transport_fast_path 1.0" in scrape(server)
    started = [line for line in server.output if "socket transport: direct send" in line]
    # On Linux the writes call the C library's send, keeping the GIL; the log says so.
    assert started and "direct send (libc send, keeping the GIL" in started[0]
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    alice_cookie, bob_cookie = login_cookie(alice), login_cookie(bob)
    # Over 64 KiB once framed (the 8-byte length form), and every UTF-8 width.
    large = ("é漢😀a" * 2500)[:9990]
    small = "héllo 世界 🎉"

    async def scenario():
        async with connect(server, alice_cookie) as wa, connect(server, bob_cookie) as wb:
            for body in (large, small):
                await wa.send(json.dumps({"type": "send", "room": "general", "body": body}))
            got = [await next_message(wb), await next_message(wb)]
            raw_sizes = []
            for _ in range(2):
                event = await next_message(wa)
                raw_sizes.append(len(json.dumps(event).encode()))
            return got, raw_sizes

    got, sizes = asyncio.run(scenario())
    assert [m["body"] for m in got] == [large, small]
    assert max(sizes) > 65535


def _ring_writes(pid: int) -> int:
    """Writes the server process has handed to io_uring so far (its rings' submission tails)."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if "io_uring" not in os.readlink(f"/proc/{pid}/fd/{fd}"):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                fields = dict(line.split(":", 1) for line in info if ":" in line)
        except OSError:
            continue
        total = max(total, int(fields.get("SqTail", "0")))  # an mmap's copy of the fd: the same
    return total


def test_a_big_rooms_writes_reach_every_socket_whole_and_in_order(login_cookie):
    # 70 sockets in one room: each event goes through one write batch (at
    # least 64 sockets; io_uring where the kernel has it, one by one where not).
    server = start_server(
        CHAT_MAX_SOCKETS_PER_USER="100", CHAT_RATE_LIMIT="100000", CHAT_RATE_BURST="100000"
    )
    try:
        started = [line for line in server.output if "socket transport: direct send" in line]
        batched = "batched through io_uring" in started[0]
        alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
        alice_cookie, bob_cookie = login_cookie(alice), login_cookie(bob)
        bodies = [f"{n} " + "é漢😀" * (n * 600) for n in range(6)]  # up to a 30 KiB frame

        async def scenario() -> list[list[str]]:
            readers = [connect(server, alice_cookie) for _ in range(70)]
            sockets = [await r.__aenter__() for r in readers]
            try:
                async with connect(server, bob_cookie) as sender:
                    for body in bodies:
                        await sender.send(
                            json.dumps({"type": "send", "room": "general", "body": body})
                        )
                    return [[(await next_message(ws))["body"] for _ in bodies] for ws in sockets]
            finally:
                for r in readers:
                    await r.__aexit__(None, None, None)

        got = asyncio.run(scenario())
        assert got == [bodies] * 70
        if batched:
            assert _ring_writes(server.process.pid) >= 70 * len(bodies)
    finally:
        server.stop()


def _handshake(server, cookie: str) -> socket.socket:
    """A socket that completes the WebSocket handshake and then never reads again."""
    raw = socket.socket()
    # A small receive window, so the server's writes stop being taken soon.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            "GET /ws/chat/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {server.http_url}\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1)  # byte by byte: nothing past the headers is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return raw


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each whole unmasked frame in `data`."""
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[at : at + 2])
            at += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[at : at + 8])
            at += 8
        if at + length > len(data):
            break
        frames.append((opcode, data[at : at + length]))
        at += length
    return frames


def test_a_client_that_never_reads_is_closed_while_others_keep_receiving(
    required_server, login_cookie
):
    server = required_server
    sender, stuck = UserFactory(username="sender"), UserFactory(username="stuck")
    sender_cookie = login_cookie(sender)
    total, body = 400, "z" * 9000  # about 3.6 MiB: well past the 1 MiB bound
    raw = _handshake(server, login_cookie(stuck))

    async def scenario():
        async with connect(server, sender_cookie) as ws:
            for i in range(total):
                await ws.send(
                    json.dumps({"type": "send", "room": "general", "body": f"{i} {body}"})
                )
            received = [(await next_message(ws))["body"] for _ in range(total)]
            return received

    try:
        received = asyncio.run(scenario())
        # The reading client got everything, in order, while the other was stuck.
        assert [b.split(" ", 1)[0] for b in received] == [str(i) for i in range(total)]
        # The server hangs up on the stuck client instead of holding the rest
        # for it: reading what is left ends (a timeout here would fail the test).
        data = b""
        while True:
            try:
                chunk = raw.recv(65536)
            except ConnectionResetError:
                # A dropped connection's unread bytes are discarded by the kernel.
                break
            if not chunk:
                break
            data += chunk
    finally:
        raw.close()
    assert len(data) < total * len(body)
    # It was sent the first event before it stopped taking data.
    assert data.startswith(b"\x81") and b'"body":"0 ' in data[:200]
    frames = _frames(data)
    closes = [p for op, p in frames if op == 8]
    if closes:  # the close frame queues behind unread data; the drop usually comes first
        assert struct.unpack("!H", closes[0][:2])[0] == transport.CLOSE_TOO_SLOW
    # Nothing is kept for it: the process has no socket open any more.
    deadline = time.monotonic() + 10
    while "teamchat_open_sockets 0.0" not in (page := scrape(server)):
        assert time.monotonic() < deadline, page
        select.select([], [], [], 0.05)
    assert "teamchat_slow_client_closes_total 1.0" in page


@pytest.fixture
def broken_twisted(monkeypatch):
    """A Twisted whose TCP connections keep their write queue elsewhere."""
    from twisted.internet import abstract

    monkeypatch.delattr(abstract.FileDescriptor, "dataBuffer")


def test_the_check_finds_every_internal_on_the_tested_versions():
    assert transport.check_internals() == []
    transport.report_internals()
    assert REGISTRY.get_sample_value("teamchat_transport_fast_path") == 1


def test_a_missing_internal_is_logged_with_versions_and_shown_by_the_metric(broken_twisted, caplog):
    with caplog.at_level(logging.ERROR, logger="chat.realtime.transport"):
        missing = transport.report_internals()
    assert missing == ["twisted.internet.tcp.Connection.dataBuffer"]
    assert REGISTRY.get_sample_value("teamchat_transport_fast_path") == 0
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    text = record.getMessage()
    assert "twisted.internet.tcp.Connection.dataBuffer" in text
    for name, version in transport.versions().items():
        assert f"{name} {version}" in text


def test_an_http_channel_without_what_lets_an_upgraded_one_go_is_found(monkeypatch):
    from twisted.web import http

    monkeypatch.delattr(http.HTTPChannel, "_requestProducer")
    assert transport.check_internals() == ["twisted.web.http.HTTPChannel._requestProducer"]


def test_the_server_refuses_to_start_when_required(broken_twisted, settings):
    settings.TEAMCHAT_TRANSPORT_REQUIRED = True
    with pytest.raises(SystemExit) as exited:
        teamchat_server.check_transport()
    message = str(exited.value.code)
    assert message.startswith("Refusing to start: TEAMCHAT_TRANSPORT_REQUIRED")
    assert "dataBuffer" in message


def test_the_server_starts_with_plain_sends_when_not_required(broken_twisted, settings):
    settings.TEAMCHAT_TRANSPORT_REQUIRED = False
    teamchat_server.check_transport()  # does not exit
    assert REGISTRY.get_sample_value("teamchat_transport_fast_path") == 0
