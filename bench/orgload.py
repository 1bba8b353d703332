"""Client side of the organization scenarios (bench/orgbench.py): sockets that behave like the page.

Worker processes (multiprocessing, spawn; loadgen.py's parent side) each hold
every Nth socket on one asyncio loop. Each socket is one user's tab: it opens
`/ws/chat/?seq=N` with the user's session cookie, right after opening sends a
`presence_sub` for the people it would have in its DM list, remembers the
highest `seq` it has applied and the newest message id of each room (for
read markers), and when it reconnects it resumes from that `seq` with the
page's jitter and backoff (first retry after 500 ms x uniform(0.75, 1.25);
after a failed handshake the delay doubles, capped at 30 s).

The parent drives them in phases over pipes:

- `connect`: open sockets, all at once at `start_at` (a storm) or a few at a
  time per worker;
- `begin`: start counting (frames by type, presence frames and entries,
  deliveries of the run's messages, duplicates, `seq` order, latency,
  errors, closes, reconnects, the generator's CPU and loop lag);
- `act`: this worker's share of a schedule with absolute deadlines: messages
  (each from a given member's socket to a given room), typing hints, read
  marker moves, presence changes, reconnects, and read/typing floods;
- `acks`: wait for the senders' own echoes (the acknowledgement);
- `finish`: given every acknowledged message, wait until every socket has
  every message of its rooms (or a deadline), check each socket exactly
  (lost, duplicated) and report.

Message bodies are `<run token> <message index> <send time> xxx...`, the send
time taken just before the frame is written (one machine, one clock). The
sockets are bench/leanws.py's: a frame is parsed as its bytes arrive and
handed to the counting code at once with its arrival time (no task per
socket to wake). Per frame the work is one `json.loads` and a few dict and
array operations; latencies go into fixed-bin histograms, not lists.
"""

from __future__ import annotations

import array
import asyncio
import functools
import gc
import json
import multiprocessing
import os
import random
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import leanws
from loadgen import (
    WORKER_LIFETIME_S,
    LoadGenerator,
    _cpu_seconds,
    percentiles,
    raise_fd_limit,
)

CLIENT, SENDER, FLOODER = "client", "sender", "flooder"
# Page logic for reconnecting: first retry after FIRST_RETRY_S x uniform(0.75,
# 1.25); each failed handshake doubles the delay, up to MAX_RETRY_S.
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0
JITTER = (0.75, 1.25)
# Latency histogram: 0.1 ms bins up to 10 s; slower values are kept one by one.
BIN_S = 1e-4
BINS = 100_000
TYPING_LEAD_S = 1.5  # a sender's typing hint goes out this long before its message


@dataclass(frozen=True)
class SockSpec:
    """One socket: user index, session key, which server, rooms (indices), presence_sub list."""

    index: int
    cookie: str
    server: int = 0
    rooms: tuple[int, ...] = ()
    subs: tuple[str, ...] = ()
    role: str = CLIENT


class LatencyHistogram:
    """Seconds in BIN_S bins (cheap to add, cheap to ship); percentiles in ms."""

    __slots__ = ("bins", "over")

    def __init__(self) -> None:
        self.bins = array.array("I", bytes(4 * BINS))
        self.over: list[float] = []

    def add(self, seconds: float) -> None:
        i = int(seconds / BIN_S)
        if i < BINS:
            self.bins[i if i > 0 else 0] += 1
        else:
            self.over.append(seconds)

    def wire(self) -> tuple[bytes, list[float]]:
        return self.bins.tobytes(), self.over


# The live deliveries' histograms (general, the other rooms): together, all of them.
LIVE = ("live_general", "live_others")


def merge_histograms(parts: list[tuple[bytes, list[float]]]) -> dict[str, float | None]:
    """Percentiles (ms) of merged histograms: each bin stands for its upper edge."""
    import numpy as np

    counts = np.zeros(BINS, dtype=np.int64)
    over: list[float] = []
    for data, extra in parts:
        counts += np.frombuffer(data, dtype=np.uint32)
        over.extend(extra)
    n = int(counts.sum()) + len(over)
    if n == 0:
        return {"n": 0, "min": None, "p50": None, "p90": None, "p99": None, "max": None}
    cumulative = np.cumsum(counts)
    over_sorted = sorted(over)

    def at(q: float) -> float:
        rank = max(1, int(np.ceil(q * n)))
        if rank <= cumulative[-1]:
            return (int(np.searchsorted(cumulative, rank)) + 1) * BIN_S * 1000
        return over_sorted[rank - int(cumulative[-1]) - 1] * 1000

    nonzero = np.flatnonzero(counts)
    low = (int(nonzero[0]) + 1) * BIN_S * 1000 if nonzero.size else over_sorted[0] * 1000
    high = over_sorted[-1] * 1000 if over_sorted else (int(nonzero[-1]) + 1) * BIN_S * 1000
    return {
        "n": n,
        "min": round(low, 3),
        "p50": round(at(0.50), 3),
        "p90": round(at(0.90), 3),
        "p99": round(at(0.99), 3),
        "max": round(high, 3),
    }


# --------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------


class _Sock:
    __slots__ = (
        "spec",
        "index",
        "rooms",
        "role",
        "ws",
        "reader",
        "is_open",
        "opened",
        "by_us",
        "code",
        "last_seq",
        "replaying",
        "resumed_at",
        "opened_at",
        "connects",
        "seen",
        "arrival",
        "got",
        "room_last",
        "dirty",
        "pending",
        "state",
        "pres_sec",
        "pres_n",
        "reconnecting",
        "closed_at",
    )

    def __init__(self, spec: SockSpec) -> None:
        self.spec = spec
        self.index = spec.index
        self.rooms = frozenset(spec.rooms)
        self.role = spec.role
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.is_open = False
        self.opened = asyncio.Event()
        self.by_us = False
        self.code: int | None = None
        self.last_seq = -1  # -1: none known; connect without ?seq=
        self.replaying = False
        self.resumed_at = 0.0
        self.opened_at = 0.0
        self.connects = 0
        self.seen: bytearray | None = None
        self.arrival: array.array | None = None
        self.got = 0
        self.room_last: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.pending = 0
        self.state = "active"
        self.pres_sec = -1
        self.pres_n = 0
        self.reconnecting = False
        self.closed_at = 0.0


class _Run:
    """What one counting window saw, in one worker."""

    def __init__(self, token: str = "", total: int = 0, t_base: float = 0.0) -> None:
        self.token = token
        self.total = total
        self.t_base = t_base
        self.frames: dict[str, int] = {}
        self.errors: Counter[str] = Counter()
        self.flood_answers: Counter[str] = Counter()
        # The live deliveries of room 0 (general: everyone) and of all the others.
        self.live_general = LatencyHistogram()
        self.live_others = LatencyHistogram()
        self.replay = LatencyHistogram()
        self.ack_latency: list[float] = []
        self.acked = bytearray(total)
        self.sent_at = array.array("d", bytes(8 * total))
        # Each message's slowest live delivery on this worker's sockets (s).
        self.slowest = array.array("f", bytes(4 * total))
        self.pending: dict[int, tuple[_Sock, float]] = {}
        self.got = 0
        self.duplicates = 0
        self.foreign = 0
        self.wrong_room = 0
        self.retry_answers = 0
        self.seq_regressions = 0
        self.pres_frames = 0
        self.pres_entries = 0
        self.pres_max = 0
        self.pres_by_role: Counter[str] = Counter()
        self.resumed = 0
        self.closed: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.reconnect_ms: list[float] = []
        self.sent: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.lateness: list[float] = []
        self.lags: list[float] = []
        # This worker's garbage collections while counting (s each).
        self.gc_pauses: list[float] = []
        self.counting = False
        self.cpu0 = _cpu_seconds()
        self.wall0 = time.time()


class _Worker:
    def __init__(
        self, conn: Any, servers: list[tuple[str, str]], slugs: list[str], specs: list[SockSpec]
    ) -> None:
        self.conn = conn
        self.servers = servers  # [(ws url, origin)]
        self.slugs = slugs
        self.room_index = {slug: i for i, slug in enumerate(slugs)}
        self.socks = [_Sock(s) for s in specs]
        self.run = _Run()
        self.dirty: deque[tuple[_Sock, int]] = deque()
        self.auto_reconnect = False
        self.stopping = False
        self.rng = random.Random(os.getpid())
        self.tasks: set[asyncio.Task[Any]] = set()
        self.client_errors: Counter[str] = Counter()
        self.open_timeout = 30.0
        self.deadline = time.time() + WORKER_LIFETIME_S
        self.ppid = os.getppid()
        self.sub_frames = {
            s.index: json.dumps({"type": "presence_sub", "users": list(s.subs)})
            for s in specs
            if s.subs
        }

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # --- command loop ------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        lag_task = asyncio.create_task(self._lag_monitor())
        try:
            while time.time() < self.deadline:
                ready = await loop.run_in_executor(None, self.conn.poll, 1.0)
                if not ready:
                    if os.getppid() != self.ppid:
                        break  # the parent is gone
                    continue
                command = self.conn.recv()
                name = command.pop("cmd")
                if name == "exit":
                    break
                try:
                    reply = await getattr(self, f"cmd_{name}")(**command)
                except Exception as exc:  # report, do not die silently
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                self.conn.send(reply)
        finally:
            lag_task.cancel()
            await self.cmd_close()

    async def _lag_monitor(self) -> None:
        period = 0.02
        while time.time() < self.deadline:
            start = time.perf_counter()
            await asyncio.sleep(period)
            if self.run.counting:
                self.run.lags.append(time.perf_counter() - start - period)

    # --- connecting ----------------------------------------------------------

    async def _open(self, sock: _Sock) -> str | None:
        """One handshake; None when the socket is open, else what went wrong."""
        url, origin = self.servers[sock.spec.server]
        resume = sock.last_seq >= 0
        if resume:
            url = f"{url}?seq={sock.last_seq}"
        try:
            ws = await leanws.connect(
                url,
                origin=origin,
                cookie=f"sessionid={sock.spec.cookie}",
                open_timeout=self.open_timeout,
            )
        except leanws.InvalidStatus as exc:
            return f"http_{exc.status_code}"
        except TimeoutError:
            return "open_timeout"
        except ConnectionRefusedError:
            return "tcp_refused"
        except leanws.HandshakeDropped:
            return "dropped_in_handshake"
        except OSError as exc:
            return f"oserror_{exc.errno}"
        except Exception as exc:
            return type(exc).__name__
        sock.ws = ws
        sock.is_open = True
        sock.by_us = False
        sock.code = None
        sock.replaying = resume
        sock.opened_at = time.time()
        sock.connects += 1
        sock.opened.set()
        sock.reader = asyncio.create_task(self._reader(sock, ws))
        ws.start(functools.partial(self._frame_in, sock))
        frame = self.sub_frames.get(sock.index)
        if frame is not None:
            try:
                await ws.send(frame)
            except Exception as exc:  # closed at once: the reader has seen it
                self.client_errors[f"presence_sub:{type(exc).__name__}"] += 1
        return None

    async def _reconnect(self, sock: _Sock) -> None:
        """The page's retry loop: jittered first retry, doubling after each failure."""
        sock.reconnecting = True
        delay = FIRST_RETRY_S
        try:
            while not self.stopping:
                await asyncio.sleep(delay * self.rng.uniform(*JITTER))
                if self.stopping:
                    return
                began = time.perf_counter()
                failed = await self._open(sock)
                self.run.attempts[failed or "ok"] += 1
                if failed is None:
                    self.run.reconnect_ms.append((time.perf_counter() - began) * 1000)
                    return
                delay = min(MAX_RETRY_S, delay * 2)
        finally:
            sock.reconnecting = False

    async def cmd_connect(
        self,
        lo: int,
        hi: int,
        concurrency: int | None,
        open_timeout: float,
        phase_timeout: float,
        start_at: float | None = None,
        seq: int | None = None,
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        todo = [
            s
            for s in self.socks
            if lo <= s.index < hi and s.ws is None and (roles is None or s.role in roles)
        ]
        if seq is not None:
            for sock in todo:
                sock.last_seq = seq
        self.open_timeout = open_timeout
        outcome: Counter[str] = Counter()
        times: list[float] = []
        opened_at: list[float] = []
        limit = asyncio.Semaphore(concurrency) if concurrency else None

        async def one(sock: _Sock) -> None:
            if limit is not None:
                async with limit:
                    await timed(sock)
            else:
                await timed(sock)

        async def timed(sock: _Sock) -> None:
            began = time.perf_counter()
            failed = await self._open(sock)
            if failed is None:
                times.append((time.perf_counter() - began) * 1000)
                opened_at.append(sock.opened_at)
            outcome[failed or "ok"] += 1

        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        tasks = [asyncio.create_task(one(s)) for s in todo]
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=phase_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        outcome["phase_timeout"] += len(pending)
        ok = outcome.pop("ok", 0)
        return {
            "asked": len(todo),
            "ok": ok,
            "failed": {k: v for k, v in outcome.items() if v},
            "handshake_ms": times,
            "began": began,
            "last_open": max(opened_at, default=None),
        }

    # --- receiving -------------------------------------------------------------

    def _frame_in(self, sock: _Sock, text: str) -> None:
        try:
            self._on_frame(sock, text, time.time())
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            self.run.errors["bench:unparsed_frame"] += 1

    async def _reader(self, sock: _Sock, ws: leanws.LeanSocket) -> None:
        """Frames reach `_frame_in` as they arrive; this waits for the end of the connection."""
        try:
            await ws.closed
        except Exception as exc:
            self.client_errors[type(exc).__name__] += 1
        finally:
            sock.is_open = False
            sock.opened.clear()
            sock.code = ws.close_code
            sock.closed_at = time.time()
            if not sock.by_us:
                self.run.closed[str(sock.code)] += 1
                if self.auto_reconnect and not self.stopping and not sock.reconnecting:
                    self._spawn(self._reconnect(sock))

    def _on_frame(self, sock: _Sock, text: Any, now: float) -> None:
        run = self.run
        frame = json.loads(text)
        kind = frame.get("type")
        seq = frame.get("seq")
        if kind == "resumed":
            seq = None  # the point the replay reached, not an event of its own
            sock.last_seq = max(sock.last_seq, frame.get("seq") or 0)
        if seq is not None:
            if seq > sock.last_seq:
                sock.last_seq = seq
            else:
                run.seq_regressions += 1
        frames = run.frames
        frames[kind] = frames.get(kind, 0) + 1
        if kind == "message":
            self._on_message(sock, frame, now, run, seq)
        elif kind == "presence":
            users = frame.get("users")
            entries = len(users) if isinstance(users, dict) else 1
            run.pres_frames += 1
            run.pres_entries += entries
            run.pres_by_role[sock.role] += 1
            second = int(now - run.t_base)
            if second != sock.pres_sec:
                sock.pres_sec = second
                sock.pres_n = 0
            sock.pres_n += 1
            if sock.pres_n > run.pres_max:
                run.pres_max = sock.pres_n
        elif kind == "resumed":
            sock.replaying = False
            sock.resumed_at = now
            run.resumed += 1
        elif kind == "error":
            code = str(frame.get("code"))
            run.errors[code] += 1
            if sock.role == FLOODER:
                run.flood_answers[f"error:{code}"] += 1
            nonce = frame.get("nonce")
            if isinstance(nonce, str) and nonce.startswith(run.token + "-"):
                index = int(nonce.rpartition("-")[2])
                found = run.pending.pop(index, None)
                if found is not None:
                    found[0].pending -= 1
        elif sock.role == FLOODER:
            run.flood_answers[str(kind)] += 1

    def _on_message(
        self, sock: _Sock, frame: dict[str, Any], now: float, run: _Run, seq: Any
    ) -> None:
        room = self.room_index.get(frame.get("room"), -1)
        msg_id = frame.get("id")
        if room >= 0 and msg_id > sock.room_last.get(room, 0):
            sock.room_last[room] = msg_id
            if room not in sock.dirty:
                sock.dirty.add(room)
                self.dirty.append((sock, room))
        token, _, rest = frame.get("body", "").partition(" ")
        if token != run.token:
            run.foreign += 1
            return
        index_text, _, rest = rest.partition(" ")
        index = int(index_text)
        if not 0 <= index < run.total:
            run.foreign += 1
            return
        found = run.pending.get(index)
        if found is not None and found[0] is sock:
            del run.pending[index]
            sock.pending -= 1
            run.acked[index] = 1
            run.ack_latency.append(now - found[1])
        if seq is None:
            run.retry_answers += 1  # a retried send's answer: to this socket only, not a delivery
            return
        seen = sock.seen
        if seen is None:
            return  # not a counted socket (a sender on the other server)
        if seen[index]:
            run.duplicates += 1
            return
        seen[index] = 1
        sock.got += 1
        run.got += 1
        if room not in sock.rooms:
            run.wrong_room += 1
        latency = now - float(rest.partition(" ")[0])
        if sock.replaying:
            run.replay.add(latency)
        else:
            (run.live_general if room == 0 else run.live_others).add(latency)
            if latency > run.slowest[index]:
                run.slowest[index] = latency
        if sock.arrival is not None:
            sock.arrival[index] = now - run.t_base

    # --- counting window -------------------------------------------------------

    async def cmd_begin(
        self,
        token: str,
        total: int,
        t_base: float,
        arrivals: bool = False,
        auto_reconnect: bool = False,
    ) -> dict[str, Any]:
        """Start counting; every socket tracks which of the run's `total` messages it got."""
        self.run = run = _Run(token, total, t_base)
        _settle_heap(run)
        self.auto_reconnect = auto_reconnect
        self.stopping = False
        for sock in self.socks:
            sock.pres_sec, sock.pres_n, sock.got = -1, 0, 0
            if sock.role == CLIENT:
                sock.seen = bytearray(total)
                sock.arrival = array.array("f", [-1.0]) * total if arrivals else None
        run.counting = True
        return {"sockets": sum(1 for s in self.socks if s.role == CLIENT)}

    # --- acting ------------------------------------------------------------------

    def _message_frame(self, index: int, room: int, body_size: int) -> tuple[str, float]:
        now = time.time()
        body = f"{self.run.token} {index} {now:.6f} "
        body += "x" * max(1, body_size - len(body))
        frame = {"type": "send", "room": self.slugs[room], "body": body}
        frame["nonce"] = f"{self.run.token}-{index}"
        return json.dumps(frame), now

    async def _send_message(
        self, sock: _Sock, index: int, room: int, due: float, body_size: int, give_up: float
    ) -> None:

        run = self.run
        resend = False
        while time.time() < give_up:
            if not sock.is_open:
                try:
                    await asyncio.wait_for(sock.opened.wait(), max(0.01, give_up - time.time()))
                except TimeoutError:
                    break
                continue
            text, now = self._message_frame(index, room, body_size)
            if not resend:
                run.lateness.append(now - due)
                run.pending[index] = (sock, now)
                run.sent_at[index] = now
                sock.pending += 1
                run.sent["message"] += 1
            else:
                run.sent["message_retry"] += 1
            try:
                await sock.ws.send(text)
                return
            except leanws.ConnectionClosed:
                resend = True  # maybe stored, maybe not: the same nonce again after reconnecting
        run.skipped["message_gave_up"] += 1

    async def _send_simple(self, sock: _Sock, text: str, what: str) -> None:

        if not sock.is_open:
            self.run.skipped[what] += 1
            return
        try:
            await sock.ws.send(text)
            self.run.sent[what] += 1
        except leanws.ConnectionClosed:
            self.run.skipped[what] += 1

    def _pick_open(self, role: str = CLIENT, idle: bool = False) -> _Sock | None:
        for _ in range(20):
            sock = self.rng.choice(self.socks)
            if sock.role != role or not sock.is_open or sock.reconnecting:
                continue
            if idle and sock.pending:
                continue
            return sock
        return None

    async def _tick_read(self) -> None:
        while self.dirty:
            sock, room = self.dirty.popleft()
            sock.dirty.discard(room)
            if not sock.is_open:
                continue
            text = json.dumps(
                {"type": "read", "room": self.slugs[room], "id": sock.room_last[room]}
            )
            await self._send_simple(sock, text, "read")
            return
        self.run.skipped["read_nothing_new"] += 1

    async def _tick_presence(self) -> None:
        sock = self._pick_open()
        if sock is None:
            self.run.skipped["presence"] += 1
            return
        sock.state = "away" if sock.state == "active" else "active"
        await self._send_simple(
            sock, json.dumps({"type": "presence", "state": sock.state}), "presence"
        )

    async def _tick_reconnect(self) -> None:
        sock = self._pick_open(idle=True)
        if sock is None:
            self.run.skipped["reconnect"] += 1
            return
        self.run.sent["reconnect"] += 1
        sock.by_us = True
        sock.reconnecting = True
        try:
            await asyncio.wait_for(sock.ws.close(), 3)
        except Exception:
            sock.ws.transport.abort()
        if sock.reader is not None:
            await asyncio.wait({sock.reader}, timeout=3)
        sock.reconnecting = False
        self._spawn(self._reconnect(sock))

    async def _flood(
        self, sock: _Sock, room: int, read_rate: float, typing_rate: float, start: float, end: float
    ) -> None:
        """Read and typing frames as fast as asked, paced by absolute counts, in 5 ms steps."""

        run = self.run
        typing = json.dumps({"type": "typing", "room": self.slugs[room]})
        reads = typing_sent = 0
        await asyncio.sleep(max(0.0, start - time.time()))
        while (now := time.time()) < end:
            due_reads = int((now - start) * read_rate) - reads
            due_typing = int((now - start) * typing_rate) - typing_sent
            if sock.is_open:
                read = json.dumps(
                    {"type": "read", "room": self.slugs[room], "id": sock.room_last.get(room, 1)}
                )
                try:
                    for _ in range(due_reads):
                        await sock.ws.send(read)
                    for _ in range(due_typing):
                        await sock.ws.send(typing)
                except leanws.ConnectionClosed:
                    run.skipped["flood_closed"] += 1
                    return
                run.sent["flood_read"] += due_reads
                run.sent["flood_typing"] += due_typing
            reads += due_reads
            typing_sent += due_typing
            await asyncio.sleep(0.005)

    async def cmd_act(
        self,
        t0: float,
        t_end: float,
        messages: bytes = b"",
        typing: bool = False,
        body_size: int = 100,
        reads_per_s: float = 0.0,
        presence_per_s: float = 0.0,
        reconnects_per_s: float = 0.0,
        flood: dict[str, Any] | None = None,
        give_up_s: float = 30.0,
    ) -> dict[str, Any]:
        """This worker's share of the schedule, from t0 (typing hints a little before) to t_end.

        `messages`: array('d') of (due, message index, socket index, room
        index) quadruples, the sender's socket being one of this worker's.
        Reads, presence changes and reconnects are paced at this worker's
        rate with absolute deadlines, each aimed at a socket picked at the
        time.
        """
        run = self.run
        by_index = {s.index: s for s in self.socks}
        flat = array.array("d")
        flat.frombytes(messages)
        plan: list[tuple[float, int, Any, Any]] = []
        for k in range(0, len(flat), 4):
            due, index, sock_index, room = (
                flat[k],
                int(flat[k + 1]),
                int(flat[k + 2]),
                int(flat[k + 3]),
            )
            sock = by_index[sock_index]
            plan.append((due, 0, sock, (index, room)))
            if typing:
                plan.append((due - TYPING_LEAD_S, 1, sock, room))
        span = t_end - t0
        for kind, rate in ((2, reads_per_s), (3, presence_per_s), (4, reconnects_per_s)):
            if rate > 0:
                offset = self.rng.random()
                plan.extend(
                    (t0 + (k + offset) / rate, kind, None, None) for k in range(int(span * rate))
                )
        plan.sort(key=lambda item: item[0])
        flooders = []
        if flood:
            for sock in self.socks:
                if sock.role == FLOODER:
                    args = (flood["room"], flood["read_rate"], flood["typing_rate"], t0, t_end)
                    flooders.append(self._spawn(self._flood(sock, *args)))
        first = plan[0][0] if plan else t0
        await asyncio.sleep(max(0.0, min(first, t0) - time.time()))
        run.cpu0, run.wall0 = _cpu_seconds(), time.time()
        frames0, presence0 = dict(run.frames), run.pres_entries
        senders: list[asyncio.Task[None]] = []
        for due, kind, sock, extra in plan:
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if kind == 0:
                index, room = extra
                give_up = due + give_up_s
                senders.append(
                    self._spawn(self._send_message(sock, index, room, due, body_size, give_up))
                )
            elif kind == 1:
                text = json.dumps({"type": "typing", "room": self.slugs[extra]})
                await self._send_simple(sock, text, "typing")
            elif kind == 2:
                await self._tick_read()
            elif kind == 3:
                await self._tick_presence()
            else:
                self._spawn(self._tick_reconnect())
        await asyncio.sleep(max(0.0, t_end - time.time()))
        cpu, wall = _cpu_seconds() - run.cpu0, time.time() - run.wall0
        frames = {k: n - frames0.get(k, 0) for k, n in run.frames.items()}
        presence_entries = run.pres_entries - presence0
        if flooders:
            await asyncio.wait(flooders, timeout=5)
        if senders:
            await asyncio.wait(senders, timeout=give_up_s + 5)
        return {
            "cpu_s": cpu,
            "wall_s": wall,
            "began": run.wall0,
            "frames": frames,
            "presence_entries": presence_entries,
            "lateness": run.lateness,
            "sent": dict(run.sent),
        }

    async def cmd_acks(self, until: float) -> dict[str, Any]:
        """Wait (until `until`) for the echoes of this worker's sends; which messages were acked."""
        run = self.run
        while run.pending and time.time() < until:  # noqa: ASYNC110 (polled; bounded)
            await asyncio.sleep(0.05)
        return {
            "acked": bytes(run.acked),
            "sent_at": run.sent_at.tobytes(),
            "unacked": sorted(run.pending),
        }

    async def cmd_finish(
        self,
        acked: bytes,
        rooms_of: bytes,
        sent_at: bytes,
        until: float,
        caught_up: bool = False,
        t_restart: float = 0.0,
    ) -> dict[str, Any]:
        """Wait until every counted socket has every acknowledged message of its rooms, then check.

        `rooms_of`: array('H') of each message's room index. With
        `caught_up`, also each socket's catch-up time after `t_restart`:
        its last `resumed` and every message sent before that moment.
        """
        import numpy as np

        run = self.run
        ok = np.frombuffer(acked, dtype=np.uint8).astype(bool)
        room_of = np.frombuffer(rooms_of, dtype=np.uint16)
        sent_time = np.frombuffer(sent_at, dtype=np.float64)
        by_room: dict[int, np.ndarray] = {}
        clients = [s for s in self.socks if s.role == CLIENT]
        for sock in clients:
            for room in sock.rooms:
                if room not in by_room:
                    by_room[room] = np.flatnonzero(ok & (room_of == room))
        expected = {s.index: sum(by_room[r].size for r in s.rooms) for s in clients}
        needed = sum(expected.values())
        while time.time() < until:
            # Done when every message is in and no socket is still reconnecting or replaying
            # (and, after a restart, every one has had its `resumed`).
            if (
                run.got >= needed
                and not any(s.reconnecting or s.replaying for s in clients)
                and (not caught_up or all(s.resumed_at > t_restart for s in clients))
            ):
                break
            await asyncio.sleep(0.05)
        run.counting = False
        self.stopping = True
        lost = 0
        lost_sockets = 0
        not_acked_delivered = 0
        catch_up: list[float] = []
        not_caught_up = 0
        for sock in clients:
            seen = np.frombuffer(sock.seen or b"", dtype=np.uint8)
            missing = (
                sum(int((seen[by_room[r]] == 0).sum()) for r in sock.rooms) if seen.size else 0
            )
            lost += missing
            lost_sockets += bool(missing)
            not_acked_delivered += int(seen.sum()) - (expected[sock.index] - missing)
            if caught_up:
                arrival = np.frombuffer(sock.arrival, dtype=np.float32)
                if sock.resumed_at <= t_restart or not sock.connects:
                    not_caught_up += 1
                    continue
                mine = np.concatenate([by_room[r] for r in sock.rooms]) if sock.rooms else []
                before = [i for i in mine if sent_time[i] < sock.resumed_at]
                at = [float(arrival[i]) for i in before]
                if any(a < 0 for a in at):
                    not_caught_up += 1
                    continue
                done = max([sock.resumed_at - run.t_base, *at])
                catch_up.append(done + run.t_base - t_restart)
        closed_now = Counter(
            str(s.code) for s in self.socks if s.ws is not None and not s.is_open and not s.by_us
        )
        cpu, wall = _cpu_seconds() - run.cpu0, time.time() - run.wall0
        return {
            "sockets": len(clients),
            "open": sum(1 for s in clients if s.is_open),
            "expected": needed,
            "delivered": run.got,
            "lost": lost,
            "lost_sockets": lost_sockets,
            "delivered_not_acked": not_acked_delivered,
            "catch_up_s": catch_up,
            "not_caught_up": not_caught_up,
            "closed_now": dict(closed_now),
            "slowest": run.slowest.tobytes(),
            **self._counts(run),
            "cpu_s": cpu,
            "wall_s": wall,
        }

    async def cmd_end(self) -> dict[str, Any]:
        """Stop counting (no delivery check: connect storms); what was seen."""
        run = self.run
        run.counting = False
        cpu, wall = _cpu_seconds() - run.cpu0, time.time() - run.wall0
        self.run = _Run()
        last_resumed = max((s.resumed_at for s in self.socks), default=0.0)
        return {**self._counts(run), "cpu_s": cpu, "wall_s": wall, "last_resumed": last_resumed}

    def _counts(self, run: _Run) -> dict[str, Any]:
        return {
            "frames": run.frames,
            "errors": dict(run.errors),
            "flood_answers": dict(run.flood_answers),
            "live_general": run.live_general.wire(),
            "live_others": run.live_others.wire(),
            "replay": run.replay.wire(),
            "ack_latency": run.ack_latency,
            "duplicates": run.duplicates,
            "foreign": run.foreign,
            "wrong_room": run.wrong_room,
            "retry_answers": run.retry_answers,
            "seq_regressions": run.seq_regressions,
            "presence_frames": run.pres_frames,
            "presence_entries": run.pres_entries,
            "presence_max_per_s": run.pres_max,
            "presence_by_role": dict(run.pres_by_role),
            "resumed": run.resumed,
            "closed": dict(run.closed),
            "attempts": dict(run.attempts),
            "reconnect_ms": run.reconnect_ms,
            "sent": dict(run.sent),
            "skipped": dict(run.skipped),
            "lateness": run.lateness,
            "lags": run.lags,
            "gc_pauses": run.gc_pauses,
            "client_errors": dict(self.client_errors),
        }

    # --- status and close --------------------------------------------------

    async def cmd_status(self) -> dict[str, Any]:
        opened = [s for s in self.socks if s.ws is not None]
        closed = Counter(str(s.code) for s in opened if not s.is_open and not s.by_us)
        still = [s.index for s in opened if s.is_open]
        return {
            "opened": len(opened),
            "open": len(still),
            "first_open": min(still, default=None),
            "closed_by_server": dict(closed),
            "frames_outside": 0,
            "client_errors": dict(self.client_errors),
            "reconnecting": sum(1 for s in self.socks if s.reconnecting),
        }

    async def cmd_close(self) -> dict[str, Any]:
        self.stopping = True
        self.auto_reconnect = False
        for task in list(self.tasks):
            task.cancel()
        opened = [s for s in self.socks if s.ws is not None and s.is_open]
        for sock in opened:
            sock.by_us = True

        async def close(sock: _Sock) -> None:
            try:
                await asyncio.wait_for(sock.ws.close(), 3)
            except Exception:
                sock.ws.transport.abort()

        if opened:
            tasks = [asyncio.create_task(close(s)) for s in opened]
            _, pending = await asyncio.wait(tasks, timeout=20)
            for task in pending:
                task.cancel()
        readers = [s.reader for s in self.socks if s.reader is not None and not s.reader.done()]
        for sock in self.socks:
            if sock.ws is not None and sock.is_open:
                sock.ws.transport.abort()
        if readers:
            await asyncio.wait(readers, timeout=5)
        for sock in self.socks:
            sock.ws = None
            sock.reader = None
            sock.is_open = False
        return {"closed": len(opened)}


def _settle_heap(run: _Run) -> None:
    """Leave the sockets and everything else made so far out of garbage collection.

    A worker holds thousands of sockets; with Python's default thresholds a
    full collection walked them all, a pause of up to 100 ms in which every
    frame the worker had received waited, counted as the server's latency.
    The pauses that remain are timed into `run.gc_pauses`.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif run.counting:
            run.gc_pauses.append(time.perf_counter() - started[0])

    gc.callbacks[:] = [timed]


def _gc_summary(pauses: list[float]) -> dict[str, float]:
    return {
        "count": len(pauses),
        "max_ms": round(max(pauses, default=0.0) * 1000, 1),
        "total_ms": round(sum(pauses) * 1000, 1),
    }


def _org_worker_entry(
    conn: Any, servers: list[tuple[str, str]], slugs: list[str], specs: list[SockSpec]
) -> None:
    raise_fd_limit()
    worker = _Worker(conn, servers, slugs, specs)
    asyncio.run(worker.serve())


# --------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------


class OrgGenerator(LoadGenerator):
    """Worker processes holding the given sockets between them (spec k in worker k % workers).

    `apart`: sockets for one more worker of their own (a flooder, which in
    life is another machine, must not slow the measuring clients' loop).
    """

    def __init__(
        self,
        servers: list[tuple[str, str]],
        slugs: list[str],
        specs: list[SockSpec],
        workers: int = 2,
        apart: list[SockSpec] | None = None,
    ) -> None:
        for url, _ in servers:
            if not url.startswith("ws://127.0.0.1:"):
                raise ValueError("load goes to ws://127.0.0.1 only")
        self.size = len(specs) + len(apart or ())
        self.specs = specs + list(apart or ())
        split = max(1, min(workers, len(specs)))
        shares = [specs[w::split] for w in range(split)]
        if apart:
            shares.append(list(apart))
        self.workers = len(shares)
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        self.worker_of: dict[int, int] = {}
        try:
            for w, share in enumerate(shares):
                parent_end, child_end = ctx.Pipe()
                for spec in share:
                    self.worker_of.setdefault(spec.index, w)
                proc = ctx.Process(
                    target=_org_worker_entry,
                    args=(child_end, servers, slugs, share),
                    name=f"orgload-{w}",
                    daemon=True,
                )
                proc.start()
                child_end.close()
                self.conns.append(parent_end)
                self.procs.append(proc)
            self.status()
        except BaseException:
            self.shutdown()
            raise

    def post(self, commands: list[dict[str, Any]]) -> None:
        for conn, cmd in zip(self.conns, commands, strict=True):
            conn.send(dict(cmd))

    def collect(self, name: str, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        replies = []
        for w, conn in enumerate(self.conns):
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"orgload worker {w} did not answer {name}")
            reply = conn.recv()
            if "error" in reply:
                raise RuntimeError(f"orgload worker {w}: {reply['error']}")
            replies.append(reply)
        return replies

    def connect_org(
        self,
        *,
        concurrency: int | None,
        open_timeout: float = 30.0,
        phase_timeout: float = 120.0,
        start_at: float | None = None,
        seq: int | None = None,
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        """Open the sockets (of `roles`), from `?seq=<seq>` when given; summary with open times."""
        replies = self.call(
            {
                "cmd": "connect",
                "lo": 0,
                "hi": 1 << 62,
                "concurrency": concurrency,
                "open_timeout": open_timeout,
                "phase_timeout": phase_timeout,
                "start_at": start_at,
                "seq": seq,
                "roles": roles,
            },
            timeout=phase_timeout + 60 + max(0.0, (start_at or 0) - time.time()),
        )
        failed: Counter[str] = Counter()
        times: list[float] = []
        for r in replies:
            failed.update(r["failed"])
            times.extend(r["handshake_ms"])
        began = min(r["began"] for r in replies)
        last = max((r["last_open"] for r in replies if r["last_open"]), default=None)
        return {
            "asked": sum(r["asked"] for r in replies),
            "ok": sum(r["ok"] for r in replies),
            "failed": dict(failed),
            "began": began,
            "last_open": last,
            "all_open_s": round(last - began, 3) if last else None,
            "handshake_ms": percentiles(times),
        }

    def begin(self, **kwargs: Any) -> None:
        self.call({"cmd": "begin", **kwargs}, timeout=60)


def slow_moments(
    slowest: Any,
    sent_at: Any,
    room_of: Any,
    sizes: list[int],
    over_ms: float = 100.0,
    window: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Where a live run's tail is: the messages whose slowest delivery took over `over_ms`.

    `slowest` (s, per message, the maximum over every worker's sockets),
    `sent_at` (wall time, 0 if never sent) and `room_of` are numpy arrays.
    Slow messages sent less than half a second apart make one moment: a
    stall holds up everything sent during it (their latencies then fall by
    the sending interval, one message after another), while a tail spread
    over the run shows as many short moments. `sizes`: people per room.
    With `window` (start, step): also `by_window`, the 99th percentile (ms)
    over the messages sent in each step of their slowest delivery.
    """
    import numpy as np

    sent = sent_at > 0
    if not sent.any():
        return {"over_ms": over_ms, "messages": 0, "moments": 0, "worst": []}
    t0 = float(sent_at[sent].min())
    slow = np.flatnonzero(sent & (slowest * 1000 > over_ms))
    slow = slow[np.argsort(sent_at[slow])]
    moments: list[dict[str, Any]] = []
    for i in slow:
        at = float(sent_at[i]) - t0
        ms = float(slowest[i]) * 1000
        if moments and at - moments[-1]["last_s"] < 0.5:
            moment = moments[-1]
            moment["last_s"] = at
            moment["messages"] += 1
            moment["deliveries"] += sizes[int(room_of[i])]
            moment["slowest_ms"] = max(moment["slowest_ms"], ms)
        else:
            moments.append(
                {
                    "at_s": at,
                    "last_s": at,
                    "messages": 1,
                    "deliveries": sizes[int(room_of[i])],
                    "slowest_ms": ms,
                }
            )
    worst = sorted(moments, key=lambda m: -m["slowest_ms"])[:8]
    for moment in worst:
        for key in ("at_s", "last_s", "slowest_ms"):
            moment[key] = round(moment[key], 3 if key != "slowest_ms" else 1)
    out: dict[str, Any] = {
        "over_ms": over_ms,
        "messages": int(slow.size),
        "moments": len(moments),
        "worst": worst,
    }
    if window is not None:
        start, step = window
        at = sent_at[sent] - start
        tail = slowest[sent] * 1000
        by_window: list[float | None] = []
        for k in range(int(max(0.0, float(at.max())) // step) + 1):
            inside = tail[(at >= k * step) & (at < (k + 1) * step)]
            by_window.append(round(float(np.percentile(inside, 99)), 1) if inside.size else None)
        out["by_window"] = by_window
    return out


def merge_counts(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' counts of one window, added up (latencies as percentiles in ms)."""

    def added(key: str) -> dict[str, int]:
        out: Counter[str] = Counter()
        for r in replies:
            out.update(r[key])
        return dict(out)

    total = {
        key: sum(r[key] for r in replies)
        for key in (
            "duplicates",
            "foreign",
            "wrong_room",
            "retry_answers",
            "seq_regressions",
            "presence_frames",
            "presence_entries",
            "resumed",
        )
    }
    walls = [r["wall_s"] for r in replies]
    return {
        **total,
        "frames": added("frames"),
        "errors": added("errors"),
        "flood_answers": added("flood_answers"),
        "presence_by_role": added("presence_by_role"),
        "presence_max_per_s": max((r["presence_max_per_s"] for r in replies), default=0),
        "closed": added("closed"),
        "attempts": added("attempts"),
        "sent": added("sent"),
        "skipped": added("skipped"),
        "client_errors": added("client_errors"),
        "latency_ms": merge_histograms([r[k] for r in replies for k in LIVE]),
        "general_latency_ms": merge_histograms([r["live_general"] for r in replies]),
        "others_latency_ms": merge_histograms([r["live_others"] for r in replies]),
        "replay_latency_ms": merge_histograms([r["replay"] for r in replies]),
        "all_latency_ms": merge_histograms([r[k] for r in replies for k in (*LIVE, "replay")]),
        "ack_latency_ms": percentiles([x for r in replies for x in r["ack_latency"]], 1000),
        "reconnect_handshake_ms": percentiles([x for r in replies for x in r["reconnect_ms"]]),
        "loop_lag_ms": percentiles([x for r in replies for x in r["lags"]], 1000),
        "generator_gc": _gc_summary([x for r in replies for x in r.get("gc_pauses", ())]),
        "generator_cpu_pct": (
            round(sum(r["cpu_s"] / r["wall_s"] for r in replies) * 100, 1)
            if walls and min(walls) >= 0.5
            else None
        ),
    }
