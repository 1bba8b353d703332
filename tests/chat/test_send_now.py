"""Direct socket writes (chat.realtime.transport._send_now) keep every byte, in order."""

import socket
import sys

import pytest

from chat.realtime import sendnow, transport


class FakeTransport:
    """What _send_now reads of a Twisted TCP transport; `write` records what Twisted would queue."""

    connected = True
    disconnecting = False
    dataBuffer = b""  # noqa: N815  (Twisted's names)
    _tempDataLen = 0  # noqa: N815

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.queued: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.queued.append(data)


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def read_all(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(size - got)
        assert chunk, "the peer closed early"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def test_a_frame_the_kernel_takes_is_not_queued(pair):
    ours, theirs = pair
    fake = FakeTransport(ours)
    transport._send_now(fake, b"\x81\x05hello")
    assert fake.queued == []
    assert read_all(theirs, 7) == b"\x81\x05hello"


def test_what_the_kernel_does_not_take_is_queued_after_what_it_took(pair):
    ours, theirs = pair
    fake = FakeTransport(ours)
    data = bytes(range(256)) * 40_000  # 10 MB: more than any socket buffer
    transport._send_now(fake, data)
    assert len(fake.queued) == 1
    rest = fake.queued[0]
    assert 0 < len(rest) < len(data)
    assert read_all(theirs, len(data) - len(rest)) + rest == data


def test_a_frame_is_queued_behind_what_is_already_queued(pair):
    ours, theirs = pair
    fake = FakeTransport(ours)
    fake.dataBuffer = b"earlier"
    transport._send_now(fake, b"later")
    assert fake.queued == [b"later"]
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(10)


def test_a_closed_peer_is_left_to_twisted(pair):
    ours, theirs = pair
    theirs.close()
    fake = FakeTransport(ours)
    transport._send_now(fake, b"nobody reads this")  # no exception, no SIGPIPE
    assert fake.queued == [b"nobody reads this"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libc's send is used on Linux")
def test_linux_writes_keep_the_interpreter():
    assert sendnow.SEND is not None
