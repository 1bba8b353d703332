"""WebSocket load generator for TeamChat and the reference design.

Several worker processes (multiprocessing, "spawn") each hold a share of the
sockets and run one asyncio loop with the `websockets` client. The parent
drives them in phases over pipes: connect, measure (senders pace their sends
by absolute deadlines from a common start time, every socket records the
fan-out latency of every message it receives), drain, close. Bodies carry a
run token, a sequence number and the send time (time.time(); one machine, one
clock), so each receiving socket can tell lost, duplicated and foreign
messages apart.

A second kind of run, `flood` (scenario F), measures the write path instead:
every socket is a closed-loop sender with a window of in-flight sends to its
own one-member room, and the server's `message` event carrying a send's nonce
is its acknowledgement (TeamChat commits before it broadcasts).

Standalone use (run.py drives it the same way):

    python bench/loadgen.py --url ws://127.0.0.1:8000/ws/chat/ --protocol teamchat \\
        --cookies keys.json --room bench-100 --members 100 --senders 10 --rate 50 \\
        --duration 20 --server-pid 1234
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import multiprocessing
import os
import resource
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

PROTOCOLS = ("teamchat", "reference")
# Longest a worker process lives, whatever happens to its parent.
WORKER_LIFETIME_S = 3 * 3600
# Frames a socket buffers before websockets stops reading it; large, so a
# short stall of the generator does not push back on the server.
MAX_QUEUE = 4096
# Most sends one flood sender makes in one run, whatever the timing.
MAX_FLOOD_SENDS = 1_000_000


@dataclass(frozen=True)
class Target:
    url: str  # ws://127.0.0.1:PORT/ws/chat/
    protocol: str  # "teamchat" or "reference"
    room: str = ""  # TeamChat room slug; unused by the reference design
    origin: str | None = None  # sent as the Origin header

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}")
        if not self.url.startswith("ws://127.0.0.1:"):
            raise ValueError("load goes to ws://127.0.0.1 only")


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE as far as allowed; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new_soft, new_hard in ((wanted, max(hard, wanted)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, new_hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------
# Worker side: runs in its own process with its own event loop.
# --------------------------------------------------------------------------


class _Sock:
    __slots__ = ("index", "cookie", "ws", "reader", "closed", "by_us", "code", "seen", "last_id")

    def __init__(self, index: int, cookie: str | None) -> None:
        self.index = index
        self.cookie = cookie
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.closed = False
        self.by_us = False
        self.code: int | None = None
        self.seen: bytearray | None = None
        self.last_id = 0


class _Measure:
    """What the sockets of one worker received during one measured run."""

    def __init__(self, token: str, total: int) -> None:
        self.token = token
        self.total = total
        self.per_seq = array.array("I", bytes(4 * total))
        self.latency = array.array("d")
        self.got = 0
        self.needed = float("inf")
        self.done = asyncio.Event()
        self.duplicates = 0
        self.foreign = 0
        self.order_violations = 0
        self.bad_frames = 0
        self.errors: Counter[str] = Counter()
        self.other_types: Counter[str] = Counter()
        self.last_recv = 0.0
        self.lags: list[float] = []
        self.sending = False


class _Flood:
    """What the closed-loop senders of one worker sent and got back in one flood run."""

    def __init__(self, token: str, rooms: dict[int, str]) -> None:
        self.prefix = f"{token}-"
        self.rooms = rooms  # socket index -> the room it sends to
        self.pending: dict[str, float] = {}  # nonce -> time.time() just before the send
        self.credit: dict[int, asyncio.Semaphore] = {}  # socket index -> free window slots
        self.sent = 0
        self.ack_times = array.array("d")
        self.latency = array.array("d")  # seconds, same order as ack_times
        self.errors: Counter[str] = Counter()
        self.errors_unmatched = 0
        self.duplicates = 0  # a message event for a nonce that is not in flight
        self.foreign = 0
        self.wrong_room = 0
        self.order_violations = 0
        self.bad_frames = 0
        self.other_types: Counter[str] = Counter()
        self.send_failed: Counter[str] = Counter()
        self.lags: list[float] = []
        self.sending = False
        self.stopped = False  # no new sends; waiting for the last acknowledgements
        self.idle = asyncio.Event()

    def on_frame(self, sock: _Sock, text: Any, now: float) -> None:
        if not isinstance(text, str):
            self.bad_frames += 1
            return
        frame = json.loads(text)
        kind = frame.get("type")
        nonce = frame.get("nonce")
        if kind == "error":
            self.errors[str(frame.get("code"))] += 1
            if isinstance(nonce, str) and self.pending.pop(nonce, None) is not None:
                self._release(sock)
            else:
                self.errors_unmatched += 1
            return
        if kind != "message":
            self.other_types[str(kind)] += 1
            return
        if not isinstance(nonce, str) or not nonce.startswith(self.prefix):
            self.foreign += 1
            return
        sent_at = self.pending.pop(nonce, None)
        if sent_at is None:
            self.duplicates += 1
            return
        msg_id = frame.get("id")
        if isinstance(msg_id, int):
            if msg_id <= sock.last_id:
                self.order_violations += 1
            else:
                sock.last_id = msg_id
        if frame.get("room") != self.rooms.get(sock.index):
            self.wrong_room += 1
        self.ack_times.append(now)
        self.latency.append(now - sent_at)
        self._release(sock)

    def _release(self, sock: _Sock) -> None:
        credit = self.credit.get(sock.index)
        if credit is not None:
            credit.release()
        if self.stopped and not self.pending:
            self.idle.set()


class _Worker:
    def __init__(self, conn: Any, target: Target, sockets: list[tuple[int, str | None]]) -> None:
        self.conn = conn
        self.target = target
        self.socks = [_Sock(i, c) for i, c in sockets]
        self.measure: _Measure | None = None
        self.flood: _Flood | None = None
        self.frames_outside = 0
        self.client_errors: Counter[str] = Counter()
        self.deadline = time.time() + WORKER_LIFETIME_S
        self.ppid = os.getppid()

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
            active = self.measure or self.flood
            if active is not None and active.sending:
                active.lags.append(time.perf_counter() - start - period)

    # --- connect -----------------------------------------------------------

    async def cmd_connect(
        self,
        lo: int,
        hi: int,
        concurrency: int | None,
        open_timeout: float,
        phase_timeout: float,
        start_at: float | None = None,
    ) -> dict[str, Any]:
        todo = [s for s in self.socks if lo <= s.index < hi and s.ws is None]
        outcome: Counter[str] = Counter()
        times: list[float] = []
        limit = asyncio.Semaphore(concurrency) if concurrency else None

        async def one(sock: _Sock) -> None:
            if limit is None:
                await self._open(sock, open_timeout, outcome, times)
            else:
                async with limit:
                    await self._open(sock, open_timeout, outcome, times)

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
            "elapsed_s": time.time() - began,
        }

    async def _open(
        self, sock: _Sock, open_timeout: float, outcome: Counter[str], times: list[float]
    ) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidMessage, InvalidStatus

        headers = {"Cookie": f"sessionid={sock.cookie}"} if sock.cookie else None
        began = time.perf_counter()
        try:
            ws = await connect(
                self.target.url,
                origin=self.target.origin,  # type: ignore[arg-type]
                additional_headers=headers,
                open_timeout=open_timeout,
                ping_interval=None,  # no keepalive traffic; a slow pong is not a failure
                compression=None,
                max_queue=MAX_QUEUE,
                close_timeout=2,
                max_size=2**20,
            )
        except InvalidStatus as exc:
            outcome[f"http_{exc.response.status_code}"] += 1
            return
        except TimeoutError:
            outcome["open_timeout"] += 1
            return
        except ConnectionRefusedError:
            outcome["tcp_refused"] += 1
            return
        except InvalidMessage:
            outcome["dropped_in_handshake"] += 1
            return
        except OSError as exc:
            outcome[f"oserror_{exc.errno}"] += 1
            return
        except Exception as exc:
            outcome[type(exc).__name__] += 1
            return
        times.append((time.perf_counter() - began) * 1000)
        sock.ws = ws
        sock.reader = asyncio.create_task(self._reader(sock))
        outcome["ok"] += 1

    # --- receiving ---------------------------------------------------------

    async def _reader(self, sock: _Sock) -> None:
        from websockets.exceptions import ConnectionClosed

        ws = sock.ws
        teamchat = self.target.protocol == "teamchat"
        try:
            async for text in ws:
                now = time.time()
                flood = self.flood
                if flood is not None:
                    try:
                        flood.on_frame(sock, text, now)
                    except (ValueError, KeyError, TypeError, AttributeError):
                        flood.bad_frames += 1
                    continue
                measure = self.measure
                if measure is None:
                    self.frames_outside += 1
                    continue
                try:
                    self._on_frame(sock, text, now, measure, teamchat)
                except (ValueError, KeyError, TypeError, AttributeError):
                    measure.bad_frames += 1
        except ConnectionClosed:
            pass
        except Exception as exc:
            self.client_errors[type(exc).__name__] += 1
        finally:
            sock.closed = True
            sock.code = ws.close_code

    @staticmethod
    def _on_frame(sock: _Sock, text: Any, now: float, m: _Measure, teamchat: bool) -> None:
        if not isinstance(text, str):
            m.bad_frames += 1
            return
        frame = json.loads(text)
        if teamchat:
            kind = frame.get("type")
            if kind != "message":
                if kind == "error":
                    m.errors[str(frame.get("code"))] += 1
                else:
                    m.other_types[str(kind)] += 1
                return
            msg_id = frame.get("id")
            if isinstance(msg_id, int):
                if msg_id <= sock.last_id:
                    m.order_violations += 1
                else:
                    sock.last_id = msg_id
            body = frame["body"]
        else:
            body = frame["message"]
        token, seq_text, sent_text, _ = body.split(" ", 3)
        if token != m.token:
            m.foreign += 1
            return
        seq = int(seq_text)
        seen = sock.seen
        if seen is None or not 0 <= seq < m.total:
            m.foreign += 1
            return
        if seen[seq]:
            m.duplicates += 1
            return
        seen[seq] = 1
        m.per_seq[seq] += 1
        m.latency.append(now - float(sent_text))
        m.last_recv = now
        m.got += 1
        if m.got >= m.needed:
            m.done.set()

    # --- measuring ---------------------------------------------------------

    def _frame(self, token: str, seq: int, sent: float, body_size: int) -> str:
        body = f"{token} {seq} {sent:.6f} "
        body += "x" * max(1, body_size - len(body))
        if self.target.protocol == "teamchat":
            return json.dumps(
                {"type": "send", "room": self.target.room, "body": body, "nonce": f"{token}-{seq}"}
            )
        return json.dumps({"message": body})

    async def cmd_load(
        self,
        token: str,
        total: int,
        senders: int,
        rate: float,
        t0: float,
        duration: float,
        stop_at: float,
        body_size: int,
        first_sender: int = 0,
    ) -> dict[str, Any]:
        """Send this worker's share of `total` messages; return once its senders are done."""
        from websockets.exceptions import ConnectionClosed

        m = _Measure(token, total)
        receivers = [s for s in self.socks if s.ws is not None and not s.closed]
        for sock in receivers:
            sock.seen = bytearray(total)
        self.measure = m
        sent_seqs: list[int] = []
        lateness: list[float] = []
        send_failed: Counter[str] = Counter()
        last_send = 0.0

        async def sender(sock: _Sock, first: int) -> None:
            nonlocal last_send
            for seq in range(first, total, senders):
                due = t0 + seq / rate
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.time()
                if now > stop_at:
                    send_failed["gave_up_late"] += len(range(seq, total, senders))
                    return
                lateness.append(now - due)
                try:
                    await sock.ws.send(self._frame(token, seq, now, body_size))
                except ConnectionClosed:
                    send_failed["closed"] += len(range(seq, total, senders))
                    return
                sent_seqs.append(seq)
                last_send = max(last_send, now)

        mine = [s for s in self.socks if first_sender <= s.index < first_sender + senders]
        tasks = []
        for sock in mine:
            first = sock.index - first_sender
            if sock.ws is None or sock.closed:
                send_failed["sender_not_open"] += len(range(first, total, senders))
            else:
                tasks.append(asyncio.create_task(sender(sock, first)))
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu0, wall0 = _cpu_seconds(), time.time()
        m.sending = True
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, stop_at - time.time()) + 5)
            for task in pending:
                task.cancel()
                send_failed["cancelled_sender"] += 1
        await asyncio.sleep(max(0.0, t0 + duration - time.time()))
        m.sending = False
        cpu1, wall1 = _cpu_seconds(), time.time()
        return {
            "sent_seqs": sent_seqs,
            "last_send": last_send,
            "lateness": lateness,
            "send_failed": dict(send_failed),
            "receivers": len(receivers),
            "cpu_s": cpu1 - cpu0,
            "wall_s": wall1 - wall0,
            "lags": m.lags,
        }

    async def cmd_drain(
        self, until: float, total_sent: int, sent_seqs: list[int]
    ) -> dict[str, Any]:
        """Wait until every socket open at the start has every sent message, or `until`."""
        m = self.measure
        assert m is not None
        receivers = [s for s in self.socks if s.seen is not None]
        m.needed = total_sent * len(receivers)
        if m.got >= m.needed:
            m.done.set()
        try:
            await asyncio.wait_for(m.done.wait(), timeout=max(0.0, until - time.time()))
        except TimeoutError:
            pass
        self.measure = None  # frozen: whatever arrives later is not counted
        closed = Counter(str(s.code) for s in receivers if s.closed and not s.by_us)
        sent = set(sent_seqs)
        unaccounted = sum(n for seq, n in enumerate(m.per_seq) if n and seq not in sent)
        for sock in receivers:
            sock.seen = None
        return {
            "receivers": len(receivers),
            "per_seq": m.per_seq.tobytes(),
            "latency": m.latency.tobytes(),
            "duplicates": m.duplicates,
            "foreign": m.foreign,
            "order_violations": m.order_violations,
            "bad_frames": m.bad_frames,
            "errors": dict(m.errors),
            "other_types": dict(m.other_types),
            "unaccounted": unaccounted,
            "last_recv": m.last_recv,
            "closed_by_server": dict(closed),
            "client_errors": dict(self.client_errors),
        }

    # --- flood (scenario F) -------------------------------------------------

    async def cmd_flood(
        self,
        token: str,
        rooms: list[str],
        window: int,
        t_start: float,
        t0: float,
        t_end: float,
        drain_until: float,
        body_size: int,
    ) -> dict[str, Any]:
        """Closed-loop sends from every open socket until t_end, then wait for the acks.

        Socket i sends to rooms[i] and keeps `window` sends in flight: a slot
        frees when the `message` event (or an `error` event) with one of its
        nonces comes back. Sends start at t_start; t0..t_end is the measured
        window (the generator's CPU is taken over it).
        """
        from websockets.exceptions import ConnectionClosed

        senders = [s for s in self.socks if s.ws is not None and not s.closed]
        f = _Flood(token, {s.index: rooms[s.index] for s in senders})
        self.flood = f
        pad = "x" * body_size

        async def sender(sock: _Sock) -> None:
            credit = f.credit[sock.index] = asyncio.Semaphore(window)
            room = rooms[sock.index]
            await asyncio.sleep(max(0.0, t_start - time.time()))
            for seq in range(MAX_FLOOD_SENDS):
                remaining = t_end - time.time()
                if remaining <= 0 or sock.closed:
                    return
                try:
                    await asyncio.wait_for(credit.acquire(), remaining)
                except TimeoutError:
                    return
                now = time.time()
                if now >= t_end or sock.closed:
                    return
                nonce = f"{token}-{sock.index}-{seq}"
                body = f"{token} {sock.index} {seq} "
                frame = {"type": "send", "room": room, "body": body + pad[len(body) :]}
                frame["nonce"] = nonce
                f.pending[nonce] = now  # before the send: the ack may beat its return
                f.sent += 1
                try:
                    await sock.ws.send(json.dumps(frame))
                except ConnectionClosed:
                    f.pending.pop(nonce, None)
                    f.sent -= 1
                    f.send_failed["closed"] += 1
                    return
            f.send_failed["max_sends"] += 1

        tasks = [asyncio.create_task(sender(s)) for s in senders]
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu0, wall0 = _cpu_seconds(), time.time()
        f.sending = True
        await asyncio.sleep(max(0.0, t_end - time.time()))
        f.sending = False
        cpu1, wall1 = _cpu_seconds(), time.time()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(1.0, drain_until - time.time()))
            for task in late:
                task.cancel()
                f.send_failed["cancelled_sender"] += 1
            await asyncio.gather(*late, return_exceptions=True)
        f.stopped = True
        if f.pending:
            try:
                await asyncio.wait_for(f.idle.wait(), max(0.0, drain_until - time.time()))
            except TimeoutError:
                pass
        self.flood = None  # frozen: whatever arrives later is not counted
        closed = Counter(str(s.code) for s in senders if s.closed and not s.by_us)
        return {
            "senders": len(senders),
            "sent": f.sent,
            "acked": len(f.ack_times),
            "unacked": len(f.pending),
            "ack_times": f.ack_times.tobytes(),
            "latency": f.latency.tobytes(),
            "errors": dict(f.errors),
            "errors_unmatched": f.errors_unmatched,
            "duplicates": f.duplicates,
            "foreign": f.foreign,
            "wrong_room": f.wrong_room,
            "order_violations": f.order_violations,
            "bad_frames": f.bad_frames,
            "other_types": dict(f.other_types),
            "send_failed": dict(f.send_failed),
            "closed_by_server": dict(closed),
            "client_errors": dict(self.client_errors),
            "cpu_s": cpu1 - cpu0,
            "wall_s": wall1 - wall0,
            "lags": f.lags,
        }

    # --- status and close --------------------------------------------------

    async def cmd_status(self) -> dict[str, Any]:
        opened = [s for s in self.socks if s.ws is not None]
        closed = Counter(str(s.code) for s in opened if s.closed and not s.by_us)
        still = [s.index for s in opened if not s.closed]
        return {
            "opened": len(opened),
            "open": len(still),
            "first_open": min(still, default=None),
            "closed_by_server": dict(closed),
            "frames_outside": self.frames_outside,
            "client_errors": dict(self.client_errors),
        }

    async def cmd_close(self) -> dict[str, Any]:
        opened = [s for s in self.socks if s.ws is not None and not s.closed]
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
        for sock in opened:
            if not sock.closed:
                sock.ws.transport.abort()
        readers = [s.reader for s in self.socks if s.reader is not None and not s.reader.done()]
        if readers:
            await asyncio.wait(readers, timeout=5)
        for sock in self.socks:
            sock.ws = None
            sock.reader = None
            sock.closed = False
            sock.by_us = False
        return {"closed": len(opened)}


def _worker_entry(conn: Any, target: dict[str, Any], sockets: list[tuple[int, str | None]]) -> None:
    raise_fd_limit()
    worker = _Worker(conn, Target(**target), sockets)
    asyncio.run(worker.serve())


# --------------------------------------------------------------------------
# Parent side.
# --------------------------------------------------------------------------


class LoadGenerator:
    """Worker processes holding sockets 0..len(cookies)-1 between them (socket i in i % workers).

    For the reference design pass `[None] * n` as cookies. Socket i is user i of
    the prepared sessions; senders are sockets 0..K-1, so they are spread
    over the workers.
    """

    def __init__(self, target: Target, cookies: list[str | None], workers: int = 2) -> None:
        self.target = target
        self.size = len(cookies)
        self.workers = max(1, min(workers, self.size))
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        try:
            for w in range(self.workers):
                parent_end, child_end = ctx.Pipe()
                share = [(i, cookies[i]) for i in range(w, self.size, self.workers)]
                proc = ctx.Process(
                    target=_worker_entry,
                    args=(child_end, asdict(target), share),
                    name=f"loadgen-{w}",
                    daemon=True,
                )
                proc.start()
                child_end.close()
                self.conns.append(parent_end)
                self.procs.append(proc)
            self.status()  # every worker is up and answering before anything is timed
        except BaseException:
            self.shutdown()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def call(self, command: dict[str, Any] | list[dict[str, Any]], timeout: float) -> list[dict]:
        """Send a command to every worker (or one each) and collect their replies."""
        commands = command if isinstance(command, list) else [command] * len(self.conns)
        for conn, cmd in zip(self.conns, commands, strict=True):
            conn.send(dict(cmd))
        deadline = time.monotonic() + timeout
        replies = []
        for w, conn in enumerate(self.conns):
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"loadgen worker {w} did not answer {commands[w]['cmd']}")
            reply = conn.recv()
            if "error" in reply:
                raise RuntimeError(f"loadgen worker {w}: {reply['error']}")
            replies.append(reply)
        return replies

    # --- phases --------------------------------------------------------------

    def connect(
        self,
        lo: int = 0,
        hi: int | None = None,
        *,
        concurrency: int | None = 100,
        open_timeout: float = 30.0,
        phase_timeout: float = 120.0,
        start_at: float | None = None,
    ) -> dict[str, Any]:
        """Open sockets lo..hi-1, `concurrency` handshakes at a time per worker (None: all)."""
        hi = self.size if hi is None else hi
        replies = self.call(
            {
                "cmd": "connect",
                "lo": lo,
                "hi": hi,
                "concurrency": concurrency,
                "open_timeout": open_timeout,
                "phase_timeout": phase_timeout,
                "start_at": start_at,
            },
            timeout=phase_timeout + 60 + max(0.0, (start_at or 0) - time.time()),
        )
        failed: Counter[str] = Counter()
        times: list[float] = []
        for r in replies:
            failed.update(r["failed"])
            times.extend(r["handshake_ms"])
        return {
            "asked": sum(r["asked"] for r in replies),
            "ok": sum(r["ok"] for r in replies),
            "failed": dict(failed),
            "elapsed_s": round(max(r["elapsed_s"] for r in replies), 3),
            "handshake_ms": percentiles(times),
        }

    def status(self) -> dict[str, Any]:
        replies = self.call({"cmd": "status"}, timeout=30)
        closed: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for r in replies:
            closed.update(r["closed_by_server"])
            errors.update(r["client_errors"])
        first = [r["first_open"] for r in replies if r["first_open"] is not None]
        return {
            "opened": sum(r["opened"] for r in replies),
            "open": sum(r["open"] for r in replies),
            "first_open": min(first, default=None),
            "closed_by_server": dict(closed),
            "frames_outside_measurement": sum(r["frames_outside"] for r in replies),
            "client_errors": dict(errors),
        }

    def measure(
        self,
        *,
        senders: int,
        rate: float,
        duration: float,
        drain: float = 5.0,
        body_size: int = 100,
        total: int | None = None,
        first_sender: int = 0,
        sampler: ProcessSampler | None = None,
        lead: float | None = None,
    ) -> dict[str, Any]:
        """One measured run on the open sockets: `rate` msg/s in total for `duration` s.

        The first send is due `lead` s from now (by default enough for every
        worker to get the command and set up, with room to spare).
        """
        total = total if total is not None else max(1, round(rate * duration))
        duration = max(duration, (total - 1) / rate)
        token = secrets.token_hex(4)
        if lead is None:
            lead = 0.5 + 0.0005 * self.size / self.workers
        t0 = time.time() + lead
        stop_at = t0 + duration + max(10.0, duration / 2)
        loads = self.call(
            {
                "cmd": "load",
                "token": token,
                "total": total,
                "senders": senders,
                "rate": rate,
                "t0": t0,
                "duration": duration,
                "stop_at": stop_at,
                "body_size": body_size,
                "first_sender": first_sender,
            },
            timeout=stop_at - time.time() + 60,
        )
        sent = sorted(seq for r in loads for seq in r["sent_seqs"])
        last_send = max((r["last_send"] for r in loads), default=0.0) or t0
        until = last_send + drain
        drains = self.call(
            {"cmd": "drain", "until": until, "total_sent": len(sent), "sent_seqs": sent},
            timeout=until - time.time() + 60,
        )
        result = _aggregate(loads, drains, sent, total, t0, last_send, rate, duration)
        result.update(senders=senders, body_size=body_size, drain_s=drain, workers=self.workers)
        cores = min(self.workers, os.cpu_count() or 1)
        result["generator_cores"] = cores
        gen_cpu = result["generator_cpu_pct"]
        lag = result["loop_lag_ms"]["p99"]
        result["generator_saturated"] = (gen_cpu is not None and gen_cpu > 90 * cores) or (
            lag is not None and lag > 50
        )
        if sampler is not None:
            window = sampler.window(t0, max(last_send, t0 + duration))
            result["server"] = window
            result["machine_cpu_pct"] = window.pop("machine_cpu_pct")
            result["machine_saturated"] = result["machine_cpu_pct"] > 90
        return result

    def flood(
        self,
        *,
        rooms: list[str],
        window: int,
        warmup: float,
        duration: float,
        drain: float = 5.0,
        body_size: int = 100,
        sampler: ProcessSampler | None = None,
    ) -> dict[str, Any]:
        """Closed-loop sends (scenario F): socket i sends to rooms[i], `window` in flight.

        Sends run for `warmup` + `duration` s; the acknowledgements that arrive
        in the last `duration` s are the measured rate. Then at most `drain` s
        for the acknowledgements still due. Every send carries the nonce
        `<token>-<socket>-<seq>`; the result's `token` finds them in the database.
        """
        import numpy as np

        if len(rooms) < self.size:
            raise ValueError("one room per socket")
        token = secrets.token_hex(4)
        t_start = time.time() + 0.5
        t0 = t_start + warmup
        t_end = t0 + duration
        drain_until = t_end + drain
        replies = self.call(
            {
                "cmd": "flood",
                "token": token,
                "rooms": rooms,
                "window": window,
                "t_start": t_start,
                "t0": t0,
                "t_end": t_end,
                "drain_until": drain_until,
                "body_size": body_size,
            },
            timeout=drain_until - time.time() + 60,
        )
        acks = np.concatenate([np.frombuffer(r["ack_times"], dtype=np.float64) for r in replies])
        lat = np.concatenate([np.frombuffer(r["latency"], dtype=np.float64) for r in replies])
        inside = (acks >= t0) & (acks < t_end)
        per_second = np.histogram(acks[inside], bins=max(1, round(duration)), range=(t0, t_end))[0]

        def merged(key: str) -> dict[str, int]:
            out: Counter[str] = Counter()
            for r in replies:
                out.update(r[key])
            return dict(out)

        walls = [r["wall_s"] for r in replies]
        cpu = (
            round(sum(r["cpu_s"] / r["wall_s"] for r in replies) * 100, 1)
            if walls and min(walls) >= 0.5
            else None
        )
        acked = int(acks.size)
        result: dict[str, Any] = {
            "token": token,
            "t_start": t_start,
            "t0": t0,
            "t_end": t_end,
            "warmup_s": warmup,
            "duration_s": duration,
            "drain_s": drain,
            "window": window,
            "body_size": body_size,
            "workers": self.workers,
            "senders": sum(r["senders"] for r in replies),
            "sent": sum(r["sent"] for r in replies),
            "acked": acked,
            "unacked": sum(r["unacked"] for r in replies),
            "acked_in_window": int(inside.sum()),
            "acked_per_s": round(float(inside.sum()) / duration, 1),
            "acked_per_second": [int(x) for x in per_second],
            "ack_latency_ms": percentiles(lat[inside], 1000),
            "ack_latency_all_ms": percentiles(lat, 1000),
            "server_errors": merged("errors"),
            "errors_unmatched": sum(r["errors_unmatched"] for r in replies),
            "duplicates": sum(r["duplicates"] for r in replies),
            "foreign_frames": sum(r["foreign"] for r in replies),
            "wrong_room": sum(r["wrong_room"] for r in replies),
            "order_violations": sum(r["order_violations"] for r in replies),
            "bad_frames": sum(r["bad_frames"] for r in replies),
            "other_frame_types": merged("other_types"),
            "send_failed": merged("send_failed"),
            "closed_by_server": merged("closed_by_server"),
            "client_errors": merged("client_errors"),
            "loop_lag_ms": percentiles([x for r in replies for x in r["lags"]], 1000),
            "generator_cpu_pct": cpu,
        }
        cores = min(self.workers, os.cpu_count() or 1)
        result["generator_cores"] = cores
        lag = result["loop_lag_ms"]["p99"]
        result["generator_saturated"] = (cpu is not None and cpu > 90 * cores) or (
            lag is not None and lag > 50
        )
        if sampler is not None:
            window_stats = sampler.window(t0, t_end)
            result["server"] = window_stats
            result["machine_cpu_pct"] = window_stats.pop("machine_cpu_pct")
            result["machine_saturated"] = (result["machine_cpu_pct"] or 0) > 90
        return result

    def close_sockets(self) -> dict[str, Any]:
        replies = self.call({"cmd": "close"}, timeout=60)
        return {"closed": sum(r["closed"] for r in replies)}

    def shutdown(self) -> None:
        for conn in self.conns:
            try:
                conn.send({"cmd": "exit"})
            except (OSError, ValueError):
                pass
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.conns, self.procs = [], []

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def percentiles(values: Any, scale: float = 1.0) -> dict[str, float | None]:
    import numpy as np

    data = np.asarray(values, dtype=float) * scale
    if data.size == 0:
        return {"n": 0, "min": None, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(data, [50, 90, 99])
    return {
        "n": int(data.size),
        "min": round(float(data.min()), 3),
        "p50": round(float(p50), 3),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "max": round(float(data.max()), 3),
    }


def _aggregate(
    loads: list[dict],
    drains: list[dict],
    sent: list[int],
    total: int,
    t0: float,
    last_send: float,
    rate: float,
    duration: float,
) -> dict[str, Any]:
    import numpy as np

    per_seq = np.zeros(total, dtype=np.int64)
    latencies = []
    for d in drains:
        per_seq += np.frombuffer(d["per_seq"], dtype=np.uint32)
        latencies.append(np.frombuffer(d["latency"], dtype=np.float64))
    latency = np.concatenate(latencies) if latencies else np.zeros(0)
    receivers = sum(d["receivers"] for d in drains)
    expected = len(sent) * receivers
    delivered = int(per_seq[np.asarray(sent, dtype=np.int64)].sum()) if sent else 0
    lost = expected - delivered
    loss_pct = 100.0 * lost / expected if expected else 0.0
    if lost and expected and lost / expected > 0.01:
        p99_with_lost = None  # more than 1 % never arrived: p99 is unbounded
    elif expected:
        padded = np.concatenate([latency, np.full(lost, np.inf)]) * 1000
        p99_with_lost = round(float(np.percentile(padded, 99, method="higher")), 3)
    else:
        p99_with_lost = None

    def merged(key: str) -> dict[str, int]:
        out: Counter[str] = Counter()
        for d in drains:
            out.update(d[key])
        return dict(out)

    send_failed: Counter[str] = Counter()
    for r in loads:
        send_failed.update(r["send_failed"])
    last_recv = max((d["last_recv"] for d in drains), default=0.0)
    send_span = last_send - t0
    # CPU over the send window; too short a window (a probe) gives no figure.
    walls = [r["wall_s"] for r in loads]
    cpu = (
        round(sum(r["cpu_s"] / r["wall_s"] for r in loads) * 100, 1)
        if walls and min(walls) >= 0.5
        else None
    )
    return {
        "offered_rate": rate,
        "duration_s": round(duration, 3),
        "planned": total,
        "sent": len(sent),
        "send_failed": dict(send_failed),
        "achieved_send_rate": round(len(sent) / send_span, 2) if send_span > 0 else None,
        "sockets": receivers,
        "expected": expected,
        "delivered": delivered,
        "lost": lost,
        "loss_pct": round(loss_pct, 4),
        "duplicates": sum(d["duplicates"] for d in drains),
        "unaccounted": sum(d["unaccounted"] for d in drains),
        "foreign_frames": sum(d["foreign"] for d in drains),
        "bad_frames": sum(d["bad_frames"] for d in drains),
        "order_violations": sum(d["order_violations"] for d in drains),
        "server_errors": merged("errors"),
        "other_frame_types": merged("other_types"),
        "closed_by_server": merged("closed_by_server"),
        "client_errors": merged("client_errors"),
        "latency_ms": percentiles(latency, 1000),
        "p99_counting_lost_ms": p99_with_lost,
        "deliveries_per_s": round(delivered / (last_recv - t0), 1) if last_recv > t0 else 0.0,
        "send_lateness_ms": percentiles([x for r in loads for x in r["lateness"]], 1000),
        "loop_lag_ms": percentiles([x for r in loads for x in r["lags"]], 1000),
        "generator_cpu_pct": cpu,
    }


class ProcessSampler:
    """Samples a process tree's CPU time and RSS (and the machine's CPU) every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.1, max_seconds: float = 3600) -> None:
        import psutil

        self._psutil = psutil
        self.pid = pid
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, float, int, float, float]] = []
        self._stop = threading.Event()
        self._max_samples = int(max_seconds / interval)
        self._lock = threading.Lock()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def sample(self) -> tuple[float, float, int, float, float] | None:
        psutil = self._psutil
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            cpu = 0.0
            rss = 0
            for p in procs:
                try:
                    times = p.cpu_times()
                    cpu += times.user + times.system
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            return None
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        # guest time is already counted in user time
        guest = getattr(machine, "guest", 0.0) + getattr(machine, "guest_nice", 0.0)
        busy_total = sum(machine) - guest
        row = (time.time(), cpu, rss, busy_total - idle, busy_total)
        with self._lock:
            self.samples.append(row)
        return row

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if len(self.samples) >= self._max_samples or self.sample() is None:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def rss_now(self) -> int:
        row = self.sample()
        return row[2] if row else 0

    def peak_rss(self) -> int:
        with self._lock:
            return max((s[2] for s in self.samples), default=0)

    def vm_hwm(self) -> int | None:
        """The kernel's record of the main process's peak RSS, in bytes."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def window(self, start: float, end: float) -> dict[str, float | None]:
        with self._lock:
            rows = [s for s in self.samples if start - self.interval <= s[0] <= end + self.interval]
        if len(rows) < 2:
            return {"cpu_pct": None, "peak_rss_mib": None, "machine_cpu_pct": None}
        first, last = rows[0], rows[-1]
        span = last[0] - first[0]
        machine = last[4] - first[4]
        cores = os.cpu_count() or 1
        return {
            "cpu_pct": round(100 * (last[1] - first[1]) / span, 1) if span > 0 else None,
            "peak_rss_mib": round(max(s[2] for s in rows) / 2**20, 1),
            "machine_cpu_pct": round(100 * (last[3] - first[3]) / machine, 1) if machine else None,
            "machine_cores": cores,
        }


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws/chat/")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="teamchat")
    parser.add_argument("--cookies", help="JSON list of session keys (TeamChat)")
    parser.add_argument("--room", default="")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--drain", type=float, default=5)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 2))
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args()

    raise_fd_limit()
    port = args.url.split(":")[2].split("/")[0]
    target = Target(args.url, args.protocol, args.room, f"http://127.0.0.1:{port}")
    if args.protocol == "teamchat":
        if not args.cookies:
            parser.error("--cookies is required for TeamChat")
        with open(args.cookies) as f:
            cookies: list[str | None] = json.load(f)[: args.members]
    else:
        cookies = [None] * args.members
    sampler = ProcessSampler(args.server_pid) if args.server_pid else None
    with LoadGenerator(target, cookies, args.workers) as gen:
        report: dict[str, Any] = {"connect": gen.connect()}
        report["warmup"] = gen.measure(senders=1, rate=10, duration=0, total=1, drain=10)
        report["run"] = gen.measure(
            senders=args.senders,
            rate=args.rate,
            duration=args.duration,
            drain=args.drain,
            sampler=sampler,
        )
        report["status"] = gen.status()
        gen.close_sockets()
    if sampler is not None:
        sampler.stop()
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
