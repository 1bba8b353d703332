"""A big room's writes in one system call (uring, transport.WriteBatch): every byte, in order."""

import socket

import pytest

from chat.realtime import transport, uring
from tests.chat.test_send_now import FakeTransport, read_all

needs_ring = pytest.mark.skipif(
    uring.ring() is None, reason="this kernel refuses io_uring (writes go one by one)"
)


@pytest.fixture
def pairs():
    made = []

    def make(count: int) -> list[tuple[socket.socket, socket.socket]]:
        for _ in range(count):
            ours, theirs = socket.socketpair()
            ours.setblocking(False)
            made.append((ours, theirs))
        return made[-count:]

    yield make
    for ours, theirs in made:
        ours.close()
        theirs.close()


def fill(sock: socket.socket) -> None:
    """Write to `sock` until its peer's buffers are full."""
    while True:
        try:
            sock.send(b"f" * 65536)
        except BlockingIOError:
            return


@needs_ring
def test_the_ring_writes_one_frame_to_every_socket(pairs):
    sockets = pairs(200)
    ring = uring.ring()
    assert ring is not None
    frame = b"\x81\x0bhello world"
    for _ in range(3):  # the rings' heads and tails move on and wrap over their slots
        taken = ring.send_all([ours.fileno() for ours, _ in sockets], frame)
        assert taken == [len(frame)] * len(sockets)
    for _, theirs in sockets:
        assert read_all(theirs, 3 * len(frame)) == frame * 3


@needs_ring
def test_a_full_socket_takes_nothing_at_once_and_a_closed_one_is_an_error_not_a_wait(pairs):
    (full, _), (closed, peer), (fine, fine_peer) = pairs(3)
    fill(full)
    peer.close()
    ring = uring.ring()
    assert ring is not None
    taken = ring.send_all([full.fileno(), closed.fileno(), fine.fileno()], b"frame")
    assert taken == [0, 0, 5]
    assert read_all(fine_peer, 5) == b"frame"


@needs_ring
def test_a_batch_queues_what_a_socket_did_not_take_after_what_it_took(pairs, monkeypatch):
    monkeypatch.setattr(transport, "BATCH_LEAST", 2)
    (ours, theirs), (other, other_peer) = pairs(2)
    fakes = [FakeTransport(ours), FakeTransport(other)]
    data = bytes(range(256)) * 40_000  # 10 MB: more than any socket buffer
    batch = transport.write_batch(len(fakes))
    assert batch is not None
    for fake in fakes:
        transport._send_now(fake, data, batch)
    assert [f.queued for f in fakes] == [[], []]  # nothing written before the flush
    batch.flush()
    for fake, peer in zip(fakes, (theirs, other_peer), strict=True):
        assert len(fake.queued) == 1
        rest = fake.queued[0]
        assert 0 < len(rest) < len(data)
        assert read_all(peer, len(data) - len(rest)) + rest == data


class QueueingTransport(FakeTransport):
    """A fake whose queued writes show in `dataBuffer`, as Twisted's do."""

    def write(self, data: bytes) -> None:
        super().write(data)
        self.dataBuffer += data


class ShortRing:
    """A ring whose sockets take `takes[i]` bytes of the i-th write (all where None): the wire."""

    capacity = 1024

    def __init__(self, *takes: int | None) -> None:
        self.takes = list(takes)
        self.wire = b""

    def send_all(self, fds: list[int], data: bytes) -> list[int]:
        took = []
        for _ in fds:
            take = self.takes.pop(0)
            took.append(len(data) if take is None else take)
            self.wire += data[: took[-1]]
        return took


def test_a_sockets_second_write_in_a_batch_follows_its_first(pairs, monkeypatch):
    monkeypatch.setattr(transport, "BATCH_LEAST", 1)
    monkeypatch.setattr(transport, "send_now", lambda sock, data: 0)  # one by one: all queued
    [(ours, _)] = pairs(1)
    fake = QueueingTransport(ours)
    # The first write's rest waits in Twisted's queue; the socket could take
    # the second whole (its client read meanwhile), but the second must follow.
    ring = ShortRing(3, None)
    batch = transport.WriteBatch(ring)  # type: ignore[arg-type]
    transport._send_now(fake, b"first ", batch)
    transport._send_now(fake, b"second", batch)
    batch.flush()
    assert ring.wire + b"".join(fake.queued) == b"first second"


@pytest.mark.parametrize("least", [1, 64])
def test_batched_writes_arrive_whole_and_in_order_through_either_path(pairs, monkeypatch, least):
    # With a ring, BATCH_LEAST 1 sends these through it; with 64 (or
    # without a ring) write_batch is None and each write goes at once.
    monkeypatch.setattr(transport, "BATCH_LEAST", least)
    sockets = pairs(10)
    fakes = [FakeTransport(ours) for ours, _ in sockets]
    frames = [f"frame {n}".encode() for n in range(5)]
    for frame in frames:
        batch = transport.write_batch(len(fakes))
        for fake in fakes:
            transport._send_now(fake, frame, batch)
        if batch is not None:
            batch.flush()
    expected = b"".join(frames)
    for fake, (_, theirs) in zip(fakes, sockets, strict=True):
        assert fake.queued == []
        assert read_all(theirs, len(expected)) == expected


def test_with_io_uring_turned_off_there_is_no_batch(monkeypatch):
    monkeypatch.setenv("TEAMCHAT_IO_URING", "0")
    monkeypatch.setattr(uring, "_local", type(uring._local)())  # a thread seen for the first time
    assert uring.ring() is None
    assert transport.write_batch(transport.BATCH_LEAST) is None


@needs_ring
def test_a_ring_that_failed_is_not_used_again(monkeypatch):
    monkeypatch.setattr(uring, "_local", type(uring._local)())  # this test's own ring
    ring = uring.ring()
    assert ring is not None
    ring.broken = True
    assert uring.ring() is None
    assert transport.write_batch(transport.BATCH_LEAST) is None


def test_a_small_rooms_event_gets_no_batch():
    assert transport.write_batch(transport.BATCH_LEAST - 1) is None
