"""Many sockets written in one system call, with the GIL let go (Linux io_uring).

A fan-out writes one frame to thousands of sockets. Each write is a `send`
system call in which the kernel does most of the work (on loopback it runs
the receiver's side of TCP too), and `chat.realtime.sendnow` keeps the GIL
through it, so that a write does not hand the interpreter to another thread
and wait to get it back. The price: while the event loop writes to 5,000
sockets, no other thread (the database threads storing the next messages)
runs any Python.

Here the event loop queues a slice's writes in an io_uring submission ring
and hands the whole slice to the kernel in one `io_uring_enter`, with the
GIL let go once for all of them: the other threads run meanwhile. Every
write carries MSG_DONTWAIT, so the kernel does each one at once, in that
call, taking what the socket's buffer takes (a full buffer answers
EAGAIN instead of waiting); when the call returns every write's result is
in the completion ring, and the caller writes what was not taken the
ordinary way, in the same turn of the loop, so no write on a socket
overtakes another.

Nothing here is needed: `ring()` is None where the kernel (or a seccomp
profile, as Docker's default one) refuses io_uring, off Linux, on a byte
order other than little-endian, or with TEAMCHAT_IO_URING=0, and the
writes then go one `send` each, as before.

This module imports nothing of Django.
"""

import ctypes
import errno
import logging
import mmap
import os
import platform
import struct
import sys
import threading
import weakref

log = logging.getLogger(__name__)

# <linux/io_uring.h>
_SYS_SETUP = {"x86_64": 425, "aarch64": 425}
_SYS_ENTER = {"x86_64": 426, "aarch64": 426}
_OFF_SQ_RING = 0
_OFF_CQ_RING = 0x8000000
_OFF_SQES = 0x10000000
_FEAT_SINGLE_MMAP = 1 << 0
_ENTER_GETEVENTS = 1 << 0
_OP_SEND = 26
# opcode, flags, ioprio, fd, off, addr, len, msg_flags, user_data (and 24 bytes unused)
_SQE = struct.Struct("<BBHiQQIIQ24x")
_CQE = struct.Struct("<QiI")  # user_data, res, flags
_U32 = struct.Struct("<I")
_PARAMS = struct.Struct("<IIIIII4I" + "IIIIIIIIQ" + "IIIIIIIIQ")

ENTRIES = 1024  # writes per io_uring_enter; a fan-out slice is smaller
_FLAGS = 0x40 | 0x4000  # MSG_DONTWAIT | MSG_NOSIGNAL


class Ring:
    """One io_uring instance for one thread (the event loop's): submission, then completion."""

    def __init__(self) -> None:
        machine = platform.machine()
        libc = ctypes.CDLL(None, use_errno=True)  # CDLL: the GIL is let go in every call
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._enter_no = _SYS_ENTER[machine]
        params = ctypes.create_string_buffer(_PARAMS.size)
        fd = self._syscall(ctypes.c_long(_SYS_SETUP[machine]), ctypes.c_uint(ENTRIES), params)
        if fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self.fd = fd
        self._close_fd = weakref.finalize(self, os.close, fd)
        p = _PARAMS.unpack(params.raw)
        sq_entries, cq_entries, features = p[0], p[1], p[5]
        _, sq_tail, sq_mask, _, _, _, sq_array = p[10:17]
        cq_head, cq_tail, cq_mask, _, _, cq_cqes = p[19:25]
        sq_size = sq_array + sq_entries * 4
        cq_size = cq_cqes + cq_entries * _CQE.size
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        if features & _FEAT_SINGLE_MMAP:
            sq_size = cq_size = max(sq_size, cq_size)
            self._sq = self._cq = mmap.mmap(fd, sq_size, flags, prot, offset=_OFF_SQ_RING)
        else:
            self._sq = mmap.mmap(fd, sq_size, flags, prot, offset=_OFF_SQ_RING)
            self._cq = mmap.mmap(fd, cq_size, flags, prot, offset=_OFF_CQ_RING)
        self._sqes = mmap.mmap(fd, sq_entries * _SQE.size, flags, prot, offset=_OFF_SQES)
        self._sq_tail, self._sq_mask = sq_tail, _U32.unpack_from(self._sq, sq_mask)[0]
        self._cq_head, self._cq_tail = cq_head, cq_tail
        self._cq_mask, self._cqes = _U32.unpack_from(self._cq, cq_mask)[0], cq_cqes
        self.capacity = sq_entries
        # Slot i of the submission array always names entry i.
        for i in range(sq_entries):
            _U32.pack_into(self._sq, sq_array + 4 * i, i)
        self.broken = False

    def send_all(self, fds: list[int], data: bytes) -> list[int]:
        """Write `data` to each of `fds` at once; bytes each one took (0 where it took none).

        At most `capacity` sockets. An error is 0, as for "would block": the
        caller's ordinary write meets it again and reports it.
        """
        n = len(fds)
        if not n:
            return []
        if n > self.capacity:
            raise ValueError(f"at most {self.capacity} sockets at a time")
        buf = ctypes.c_char_p(data)  # the bytes' own memory, no copy; kept alive below
        addr = ctypes.cast(buf, ctypes.c_void_p).value or 0
        size = len(data)
        sq, sqes, pack = self._sq, self._sqes, _SQE.pack_into
        tail = _U32.unpack_from(sq, self._sq_tail)[0]
        mask = self._sq_mask
        for i, fd in enumerate(fds):
            pack(sqes, ((tail + i) & mask) * 64, _OP_SEND, 0, 0, fd, 0, addr, size, _FLAGS, i)
        _U32.pack_into(sq, self._sq_tail, (tail + n) & 0xFFFFFFFF)
        submitted = self._enter(n, n)
        taken = [0] * n
        got = self._reap(taken)
        if submitted != n:
            # The kernel left some of them in the ring: they must never go
            # later, after the caller wrote those sockets the ordinary way.
            self.broken = True
            n = max(submitted, 0)
        while got < n:  # each write is done at once (MSG_DONTWAIT): not expected
            if self._enter(0, n - got) < 0 and ctypes.get_errno() != errno.EINTR:
                self.broken = True
                break
            got += self._reap(taken)
        del buf  # the kernel has read it: every write it was given is done
        return taken

    def _enter(self, submit: int, wait: int) -> int:
        """io_uring_enter: hand `submit` writes over; return once `wait` are done (GIL let go)."""
        while True:
            done = self._syscall(
                ctypes.c_long(self._enter_no),
                ctypes.c_uint(self.fd),
                ctypes.c_uint(submit),
                ctypes.c_uint(wait),
                ctypes.c_uint(_ENTER_GETEVENTS),
                None,
                ctypes.c_size_t(0),
            )
            if done >= 0 or ctypes.get_errno() != errno.EINTR or submit:
                return int(done)

    def _reap(self, taken: list[int]) -> int:
        """Read what the completion ring holds into `taken` (bytes taken, by index); how many."""
        cq, cqes, cmask = self._cq, self._cqes, self._cq_mask
        head = _U32.unpack_from(cq, self._cq_head)[0]
        tail = _U32.unpack_from(cq, self._cq_tail)[0]
        unpack, n, got = _CQE.unpack_from, len(taken), 0
        while head != tail:
            index, res, _ = unpack(cq, cqes + (head & cmask) * _CQE.size)
            if res > 0 and index < n:
                taken[index] = res
            head = (head + 1) & 0xFFFFFFFF
            got += 1
        _U32.pack_into(cq, self._cq_head, head)
        return got

    def close(self) -> None:
        for area in {id(m): m for m in (self._sqes, self._sq, self._cq)}.values():
            area.close()
        self._close_fd()


def _usable() -> bool:
    return (
        sys.platform.startswith("linux")
        and sys.byteorder == "little"
        and platform.machine() in _SYS_SETUP
        and os.environ.get("TEAMCHAT_IO_URING", "1") != "0"
    )


_local = threading.local()
_UNKNOWN = object()


def _forget_rings() -> None:
    # A forked child shares its parent's rings: it makes its own.
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_rings)


def ring() -> Ring | None:
    """This thread's ring; None where io_uring cannot be used (then writes go one by one)."""
    r = getattr(_local, "ring", _UNKNOWN)
    if isinstance(r, Ring):
        if not r.broken:
            return r
        log.error("io_uring failed; this thread writes sockets one by one from now on")
        _local.ring = None
        return None
    if r is None:
        return None
    made = None
    if _usable():
        try:
            made = Ring()
        except (OSError, KeyError, ValueError) as exc:
            log.info("io_uring is not available (%s): sockets are written one by one", exc)
    _local.ring = made
    return made
