"""Soak test: a few hundred clients for a few minutes; nothing lost, nothing twice, flat memory.

    scripts/soak                      # 300 clients, 3 minutes, two server processes
    scripts/soak --duration 600 --clients 500

Against two `python -m teamchat.server` processes on PostgreSQL and Redis
(127.0.0.1:5432 and :6379, a database and a layer prefix of its own), every
client is a signed-in user in a private team room; it sends at a modest rate
with a nonce per message, and now and then drops its socket (a clean close or
a cut connection, sometimes right after a send, so its answer is lost on the
way) and reconnects to either server with `?seq=` of the last event it
applied, resending what was not acknowledged once the catch-up has said what
got through. At the end, after the in-flight sends are answered:

- lost: every acknowledged nonce is stored, and every stored message of a room
  reached every member (live or in a catch-up); no send stays unanswered;
- duplicated: no socket received the same (room, id) twice, nor did a client
  across its reconnects (catch-ups start after the last event it applied);
  every nonce is stored once;
- memory: each server's RSS, sampled every few seconds, grows after the
  warm-up (`--warmup`, default a third of the run, at most 2 minutes) by at
  most `--max-rss-slope` MiB a minute (0.1 by default: 144 MiB a day), the
  slope of a least-squares line through the samples. A percentage would call
  a steady creep flat in a short run.

Prints a summary (and `--json` writes it); the exit status is 1 on any loss,
duplicate, error answer, out-of-order event, server exit or memory growth.
See bench/README.md, "Soak test".
"""

import argparse
import asyncio
import json
import math
import os
import random
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TMP = BENCH / "results" / "tmp"  # git-ignored
PY = sys.executable
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
ROOM_PREFIX = "soak-"


# --------------------------------------------------------------------------
# Setup: database, users, rooms, servers
# --------------------------------------------------------------------------


def log(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 2).close()
        return True
    except OSError:
        return False


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def reset_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


_STRIPPED = ("DJANGO_", "DATABASE_", "REDIS_", "CHANNEL_LAYER", "CHAT_", "ACCOUNT_", "SESSION_")


def server_env(database_url: str, redis_url: str, prefix: str, secret: str) -> dict[str, str]:
    """The product's defaults, on the soak's own database and layer prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED)}
    env.update(
        PYTHONUNBUFFERED="1",
        DJANGO_SECRET_KEY=secret,
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        ACCOUNT_EMAIL_VERIFICATION="none",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CHANNEL_LAYER_PREFIX=prefix,
        LOG_LEVEL="INFO",
    )
    return env


def prepare(env: dict[str, str], clients: int, room_size: int, token: str) -> list[str]:
    """Users with sessions (bench/prepare.py), then one private team room per `room_size`."""
    keys_path = TMP / f"soak-sessions-{token}.json"
    cmd = [PY, str(BENCH / "prepare.py"), "--users", str(clients), "--out", str(keys_path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"prepare failed:\n{done.stdout}\n{done.stderr}")
    cmd = [PY, "-m", "bench.soak", "make-rooms", str(clients), str(room_size)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"making rooms failed:\n{done.stdout}\n{done.stderr}")
    keys = json.loads(keys_path.read_text())
    keys_path.unlink()
    return keys


def room_of(index: int, room_size: int) -> str:
    return f"{ROOM_PREFIX}{index // room_size:03d}"


def make_rooms(users: int, room_size: int) -> None:
    """(Run with the soak's DATABASE_URL.) User i joins the private room soak-<i // size>."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamchat.settings")
    import django

    django.setup()
    from accounts.models import User
    from bench.prepare import USERNAME
    from chat.models import Membership, Room

    names = [USERNAME.format(i) for i in range(users)]
    by_name = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    rooms: dict[str, Room] = {}
    rows = []
    for i, name in enumerate(names):
        slug = room_of(i, room_size)
        if slug not in rooms:
            rooms[slug] = Room.objects.get_or_create(
                slug=slug, defaults={"name": slug, "is_private": True}
            )[0]
        rows.append(Membership(room=rooms[slug], user_id=by_name[name]))
    Membership.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)


@dataclass
class Server:
    """One server process; its output goes to a log file."""

    env: dict[str, str]
    index: int
    memory_dir: Path | None = None
    tracemalloc_frames: int = 0
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path = Path()

    def start(self) -> "Server":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log_path = TMP / "logs" / f"soak-server-{self.index}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [PY, "-m", "teamchat.server", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.memory_dir:
            cmd += ["--memory-dir", str(self.memory_dir / f"server-{self.index}")]
            cmd += ["--tracemalloc-frames", str(self.tracemalloc_frames)]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server {self.index} did not start:\n{self.log_tail()}")
            time.sleep(0.1)  # polling a port until the server listens
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int | None:
        """VmRSS from /proc (the server is one process: daphne runs in it)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, AttributeError):
            return None
        return None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        try:
            for line in self.log_path.read_text(errors="replace").splitlines():
                for word in ("ERROR", "WARNING", "Traceback"):
                    if word in line:
                        counts[word] += 1
        except OSError:
            pass
        return dict(counts)


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------


@dataclass
class Stats:
    sent: int = 0
    resent: int = 0
    acked: int = 0
    retry_answers: int = 0
    replayed: int = 0
    reconnects_clean: int = 0
    reconnects_cut: int = 0
    connect_failures: int = 0
    duplicates_socket: int = 0
    duplicates_client: int = 0
    out_of_order: int = 0
    status_events: int = 0
    errors: Counter = field(default_factory=Counter)
    ack_ms: list[float] = field(default_factory=list)
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # any client received


class Client:
    """One user with one socket at a time, in one team room."""

    def __init__(self, index: int, key: str, room: str, token: str, stats: Stats) -> None:
        self.index = index
        self.cookie = f"sessionid={key}"
        self.room = room
        self.token = token
        self.stats = stats
        self.rng = random.Random(f"{token}-{index}")
        self.last_seq = 0
        self.sent: dict[str, float] = {}  # nonce -> first sent (time.monotonic)
        self.acked: set[str] = set()  # answered: stored, or refused with an error
        self.refused: set[str] = set()
        self.seen: set[int] = set()  # message ids received (with a seq), over every socket
        self.number = 0
        self.ws: Any = None
        self.changed = asyncio.Event()

    def pending(self) -> list[str]:
        return [n for n in self.sent if n not in self.acked]

    async def connect(self, server: Server) -> None:
        """Open a socket with `?seq=`, read up to `resumed`, then resend what is unacknowledged."""
        import websockets

        self.ws = await websockets.connect(
            f"{server.url}?seq={self.last_seq}",
            additional_headers={"Cookie": self.cookie, "Origin": server.origin},
            open_timeout=30,
            ping_interval=None,
            max_size=None,
            compression=None,
        )
        self.socket_seen: set[int] = set()
        self.socket_last_seq = self.last_seq
        self.catching_up = True
        self.reader = asyncio.create_task(self._read(self.ws))
        deadline = time.monotonic() + 60
        while self.catching_up:
            if self.reader.done() or time.monotonic() > deadline:
                raise ConnectionError("no catch-up")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except TimeoutError:
                pass
        for nonce in self.pending():
            self.stats.resent += 1
            await self._send(nonce)

    async def _read(self, ws) -> None:
        import websockets

        try:
            async for raw in ws:
                self._apply(json.loads(raw))
                self.changed.set()
                self.stats.progress.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.changed.set()

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        seq = event.get("seq")
        if kind == "resumed":
            self.catching_up = False
            return
        if kind == "status":
            self.stats.status_events += 1
        if kind == "error":
            self.stats.errors[event.get("code")] += 1
            nonce = event.get("nonce")
            if nonce in self.sent:
                self.acked.add(nonce)  # answered, not stored
                self.refused.add(nonce)
            return
        if seq is not None:
            if seq <= self.socket_last_seq:
                self.stats.out_of_order += 1
            self.socket_last_seq = max(self.socket_last_seq, seq)
            self.last_seq = max(self.last_seq, seq)
        if kind != "message":
            return
        if self.catching_up:
            self.stats.replayed += 1
        nonce = event.get("nonce")
        if seq is None:  # the answer to a retried nonce: to this socket only
            self.stats.retry_answers += 1
        else:
            message_id = event["id"]
            if message_id in self.socket_seen:
                self.stats.duplicates_socket += 1
            elif message_id in self.seen:
                self.stats.duplicates_client += 1
            self.socket_seen.add(message_id)
            self.seen.add(message_id)
        if nonce in self.sent and nonce not in self.acked:
            self.acked.add(nonce)
            self.stats.acked += 1
            self.stats.ack_ms.append((time.monotonic() - self.sent[nonce]) * 1000)

    async def _send(self, nonce: str) -> None:
        import websockets

        body = f"{nonce} " + "s" * 40
        try:
            await self.ws.send(
                json.dumps({"type": "send", "room": self.room, "body": body, "nonce": nonce})
            )
        except websockets.ConnectionClosed:
            pass  # resent after the reconnect

    async def send_next(self) -> None:
        nonce = f"{self.token}-{self.index}-{self.number}"
        self.number += 1
        self.sent[nonce] = time.monotonic()
        self.stats.sent += 1
        await self._send(nonce)

    async def drop(self, cut: bool) -> None:
        """Leave the socket: a clean close, or a connection cut with no close frame."""
        if cut:
            self.ws.transport.abort()
            self.stats.reconnects_cut += 1
        else:
            await self.ws.close()
            self.stats.reconnects_clean += 1
        await self.reader

    async def run(self, servers: list[Server], plan: "Plan", phase: "Phase") -> None:
        """Send and reconnect until the send window ends; then stay connected."""
        first = servers[self.index % len(servers)]
        await self._connect_with_backoff([first])
        phase.connected += 1
        await phase.start.wait()
        next_send = time.monotonic() + self.rng.expovariate(plan.rate)
        next_drop = time.monotonic() + self.rng.expovariate(1 / plan.reconnect_mean)
        while time.monotonic() < phase.send_until:
            now = time.monotonic()
            if self.reader.done():  # the server dropped us: back at once
                await self._connect_with_backoff(servers)
                continue
            if now >= next_drop:
                if self.rng.random() < plan.send_then_drop:
                    await self.send_next()  # gone right after sending: the answer is in flight
                await self.drop(cut=self.rng.random() < plan.cut_share)
                await self._connect_with_backoff(servers)
                next_drop = time.monotonic() + self.rng.expovariate(1 / plan.reconnect_mean)
                continue
            if now >= next_send:
                await self.send_next()
                next_send += self.rng.expovariate(plan.rate)
                continue
            wake = min(next_send, next_drop, phase.send_until) - now
            await asyncio.sleep(max(0.0, wake))  # paced sending: the schedule is the event
        while not self.reader.done() and self.pending():
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except TimeoutError:
                if time.monotonic() > phase.send_until + plan.drain_s:
                    return

    async def _connect_with_backoff(self, servers: list[Server]) -> None:
        delay = 0.1
        while True:
            try:
                await self.connect(self.rng.choice(servers))
                return
            except Exception:  # refused, reset, timed out: try again, as a browser would
                self.stats.connect_failures += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


@dataclass
class Plan:
    duration: float
    clients: int
    room_size: int
    rate: float
    reconnect_mean: float
    cut_share: float
    send_then_drop: float
    sample_every: float
    max_rss_slope: float
    warmup: float | None
    drain_s: float


@dataclass
class Phase:
    start: asyncio.Event
    send_until: float = math.inf
    connected: int = 0


async def soak(
    plan: Plan, servers: list[Server], keys: list[str], token: str, database: str
) -> dict[str, Any]:
    stats = Stats()
    phase = Phase(asyncio.Event())
    clients = [
        Client(i, key, room_of(i, plan.room_size), token, stats) for i, key in enumerate(keys)
    ]
    tasks: list[asyncio.Task] = []
    for start in range(0, len(clients), 50):  # 50 handshakes at a time
        batch = [
            asyncio.create_task(c.run(servers, plan, phase)) for c in clients[start : start + 50]
        ]
        tasks += batch
        while phase.connected < min(start + 50, len(clients)):
            for task in tasks:
                if task.done():
                    task.result()  # a client that gave up: its exception ends the run
            await asyncio.sleep(0.05)  # waiting on a counter the clients raise
    log(f"{len(clients)} clients connected to {len(servers)} servers; sending")

    samples: list[tuple[float, list[int | None]]] = []
    lag_ms: list[float] = []
    t0 = time.monotonic()
    phase.send_until = t0 + plan.duration
    phase.start.set()
    next_report = t0 + 30
    while time.monotonic() < phase.send_until:
        tick = time.monotonic()
        samples.append((tick - t0, [s.rss_kib() for s in servers]))
        if not all(s.alive() for s in servers):
            log("a server exited")
            break
        if tick >= next_report:
            rss = ", ".join(f"{(r or 0) / 1024:.0f} MiB" for r in samples[-1][1])
            log(
                f"{tick - t0:.0f}s: sent {stats.sent}, acked {stats.acked}, "
                f"reconnects {stats.reconnects_clean + stats.reconnects_cut}, RSS {rss}"
            )
            next_report += 30
        await asyncio.sleep(plan.sample_every)  # the sampling period
        lag_ms.append((time.monotonic() - tick - plan.sample_every) * 1000)
    phase.send_until = min(phase.send_until, time.monotonic())
    samples.append((time.monotonic() - t0, [s.rss_kib() for s in servers]))
    log("send window over; waiting for the last answers and broadcasts")
    await asyncio.gather(*tasks)
    stored, stored_twice = await asyncio.to_thread(stored_messages, database, token)
    by_room: dict[str, set[int]] = {}
    for slug, message_id in stored.values():
        by_room.setdefault(slug, set()).add(message_id)
    try:
        await asyncio.wait_for(wait_for_deliveries(clients, by_room, stats.progress), plan.drain_s)
    except TimeoutError:
        log(f"deliveries still missing after {plan.drain_s:.0f} s")
    for client in clients:
        await client.ws.close()
    return {
        "clients": clients,
        "stats": stats,
        "samples": samples,
        "lag_ms": lag_ms,
        "stored": stored,
        "stored_twice": stored_twice,
        "by_room": by_room,
    }


# --------------------------------------------------------------------------
# Checking and reporting
# --------------------------------------------------------------------------


def stored_messages(database: str, token: str) -> tuple[dict[str, tuple[str, int]], int]:
    """nonce -> (room slug, id) for this run's messages, and how many nonces are stored twice."""
    import psycopg

    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={database}"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT m.nonce, r.slug, m.id FROM chat_message m JOIN chat_room r ON r.id = m.room_id"
            " WHERE m.nonce LIKE %s",
            (f"{token}-%",),
        ).fetchall()
    counts = Counter(nonce for nonce, _, _ in rows)
    found = {nonce: (slug, message_id) for nonce, slug, message_id in rows}
    return found, sum(1 for n in counts.values() if n > 1)


async def wait_for_deliveries(
    clients: list[Client], by_room: dict[str, set[int]], progress: asyncio.Event
) -> None:
    """Until every client has every stored message of its room (the caller bounds the wait)."""
    while True:
        progress.clear()
        if all(by_room.get(c.room, set()) <= c.seen for c in clients):
            return
        await progress.wait()


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB a minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if not var:
        return None
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    return cov / var * 60


def rss_summary(
    samples: list[tuple[float, list[int | None]]], duration: float, i: int, warmup: float | None
) -> dict:
    window = min(60.0, duration / 3)
    warm = warmup if warmup is not None else min(120.0, duration / 3)
    end = samples[-1][0]
    first = [s[1][i] for s in samples if s[0] < window and s[1][i]]
    last = [s[1][i] for s in samples if s[0] >= end - window and s[1][i]]
    every = [s[1][i] for s in samples if s[1][i]]
    after = [(s[0], s[1][i] / 1024) for s in samples if s[0] >= warm and s[1][i]]
    first_avg = sum(first) / len(first) / 1024 if first else 0.0
    last_avg = sum(last) / len(last) / 1024 if last else 0.0
    slope = slope_per_minute(after)
    return {
        "window_s": window,
        "warmup_s": warm,
        "first_avg_mib": round(first_avg, 1),
        "last_avg_mib": round(last_avg, 1),
        "max_mib": round(max(every) / 1024, 1) if every else 0.0,
        "growth_pct": round((last_avg / first_avg - 1) * 100, 2) if first_avg else None,
        "slope_mib_per_min": round(slope, 3) if slope is not None else None,
        "samples": len(every),
    }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def check(plan: Plan, run: dict[str, Any], servers: list[Server]) -> dict[str, Any]:
    clients: list[Client] = run["clients"]
    stats: Stats = run["stats"]
    stored, stored_twice, by_room = run["stored"], run["stored_twice"], run["by_room"]
    acked = {n for c in clients for n in c.acked - c.refused}
    unanswered = sum(len(c.pending()) for c in clients)
    acked_not_stored = len(acked - set(stored))
    missed = sum(len(by_room.get(c.room, set()) - c.seen) for c in clients)
    expected = sum(len(by_room.get(c.room, set())) for c in clients)
    memory = [
        rss_summary(run["samples"], plan.duration, i, plan.warmup) for i in range(len(servers))
    ]
    grown = [
        m
        for m in memory
        if m["slope_mib_per_min"] is None or m["slope_mib_per_min"] > plan.max_rss_slope
    ]
    failures = []
    if acked_not_stored:
        failures.append(f"{acked_not_stored} acknowledged but not stored")
    if missed:
        failures.append(f"{missed} deliveries missing")
    if unanswered:
        failures.append(f"{unanswered} sends never answered")
    if stats.duplicates_socket or stats.duplicates_client or stored_twice:
        failures.append("duplicates")
    if stats.out_of_order:
        failures.append(f"{stats.out_of_order} events out of seq order")
    if stats.errors:
        failures.append(f"error answers {dict(stats.errors)}")
    if not all(s.alive() for s in servers):
        failures.append("a server exited")
    if grown:
        failures.append("server memory grew")
    return {
        "verdict": "FAIL" if failures else "PASS",
        "failures": failures,
        "sent": stats.sent,
        "resent_after_reconnect": stats.resent,
        "acknowledged": len(acked),
        "stored": len(stored),
        "stored_twice": stored_twice,
        "acknowledged_not_stored": acked_not_stored,
        "unanswered": unanswered,
        "deliveries_expected": expected,
        "deliveries_missing": missed,
        "duplicates_per_socket": stats.duplicates_socket,
        "duplicates_per_client": stats.duplicates_client,
        "out_of_order": stats.out_of_order,
        "replayed_messages": stats.replayed,
        "retry_answers": stats.retry_answers,
        "reconnects_clean": stats.reconnects_clean,
        "reconnects_cut": stats.reconnects_cut,
        "connect_failures": stats.connect_failures,
        "status_events": stats.status_events,
        "errors": dict(stats.errors),
        "ack_ms_p50": percentile(stats.ack_ms, 0.5),
        "ack_ms_p99": percentile(stats.ack_ms, 0.99),
        "generator_lag_ms_max": round(max(run["lag_ms"], default=0.0), 1),
        "server_memory": memory,
        "server_rss_mib": [
            [round(t, 1), *(round((r or 0) / 1024, 1) for r in rss)] for t, rss in run["samples"]
        ],
        "server_logs": [s.log_counts() for s in servers],
    }


def render(plan: Plan, result: dict[str, Any]) -> str:
    lines = [
        f"Soak: {plan.clients} clients in rooms of {plan.room_size}, {plan.duration:.0f} s, "
        f"{plan.rate:g} msg/s each, reconnect every ~{plan.reconnect_mean:.0f} s "
        f"({plan.cut_share:.0%} cut, {plan.send_then_drop:.0%} right after a send), 2 servers",
        f"  messages: sent {result['sent']} (+{result['resent_after_reconnect']} resent after a "
        f"reconnect), acknowledged {result['acknowledged']}, stored {result['stored']}, "
        f"unanswered {result['unanswered']}",
        f"  lost: acknowledged not stored {result['acknowledged_not_stored']}, deliveries "
        f"missing {result['deliveries_missing']} of {result['deliveries_expected']}",
        f"  duplicated: per socket {result['duplicates_per_socket']}, per client "
        f"{result['duplicates_per_client']}, nonces stored twice {result['stored_twice']}; "
        f"out of order {result['out_of_order']}",
        f"  reconnects: {result['reconnects_clean']} clean + {result['reconnects_cut']} cut "
        f"(connect failures {result['connect_failures']}); messages caught up "
        f"{result['replayed_messages']}, retry answers {result['retry_answers']}",
        f"  errors: {result['errors'] or 'none'}; status events {result['status_events']}; "
        f"ack p50 {result['ack_ms_p50']} ms, p99 {result['ack_ms_p99']} ms; generator lag max "
        f"{result['generator_lag_ms_max']} ms",
    ]
    for i, (m, logs) in enumerate(zip(result["server_memory"], result["server_logs"], strict=True)):
        lines.append(
            f"  server {i} RSS: first {m['window_s']:.0f} s avg {m['first_avg_mib']} MiB, last "
            f"{m['window_s']:.0f} s avg {m['last_avg_mib']} MiB ({m['growth_pct']:+}%), max "
            f"{m['max_mib']} MiB, {m['samples']} samples; after {m['warmup_s']:.0f} s "
            f"{m['slope_mib_per_min']} MiB/min; log {logs or 'clean'}"
        )
    verdict = result["verdict"]
    lines.append(
        f"  {verdict}" + (f": {'; '.join(result['failures'])}" if result["failures"] else "")
    )
    return "\n".join(lines)


def cleanup_redis(redis_url: str, prefix: str) -> None:
    try:
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        keys += list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*set(keys))
    except Exception as exc:  # noqa: BLE001  (best effort: keys also expire)
        log(f"could not remove the soak's Redis keys: {exc}")


# --------------------------------------------------------------------------


def main() -> int:
    if sys.argv[1:2] == ["make-rooms"]:
        make_rooms(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of sending")
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--room-size", type=int, default=25, help="members per team room")
    parser.add_argument("--rate", type=float, default=0.2, help="messages/s per client")
    parser.add_argument("--reconnect-mean", type=float, default=60.0, help="seconds")
    parser.add_argument("--cut-share", type=float, default=0.5, help="reconnects that cut")
    parser.add_argument(
        "--send-then-drop", type=float, default=0.25, help="reconnects right after a send"
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="RSS sampling, seconds")
    parser.add_argument(
        "--max-rss-slope", type=float, default=0.1, help="MiB a minute after the warm-up"
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds before the slope is judged (a third, at most 120)"
    )
    parser.add_argument(
        "--memory-dump",
        action="store_true",
        help="servers write live object counts a minute (bench/results/tmp/memory/)",
    )
    parser.add_argument(
        "--tracemalloc-frames",
        type=int,
        default=0,
        help="with --memory-dump: also tracemalloc snapshots (slows the servers)",
    )
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait at the end")
    parser.add_argument("--database", default="teamchat_soak", help="recreated on every run")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    plan = Plan(
        duration=args.duration,
        clients=args.clients,
        room_size=args.room_size,
        rate=args.rate,
        reconnect_mean=args.reconnect_mean,
        cut_share=args.cut_share,
        send_then_drop=args.send_then_drop,
        sample_every=args.sample_every,
        max_rss_slope=args.max_rss_slope,
        warmup=args.warmup,
        drain_s=args.drain,
    )
    if not answers(5432) or not answers(6379):
        log("needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")
        return 2
    raise_fd_limit(4 * plan.clients + 1024)
    TMP.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    secret = secrets.token_urlsafe(40)
    prefix = f"soak{token}"
    database_url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    env = server_env(database_url, args.redis_url, prefix, secret)

    log(f"run {token}: recreating database {args.database}, {plan.clients} users")
    reset_database(args.database)
    keys = prepare(env, plan.clients, plan.room_size, token)
    servers: list[Server] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        dumps = TMP / "memory" / token if args.memory_dump else None
        servers = [Server(env, i, dumps, args.tracemalloc_frames).start() for i in range(2)]
        if dumps:
            log(f"memory dumps in {dumps}; compare two with python -m bench.memdiff")
        run = asyncio.run(soak(plan, servers, keys, token, args.database))
        result = check(plan, run, servers)
    finally:
        for server in servers:
            server.stop()
        cleanup_redis(args.redis_url, prefix)
    print(render(plan, result), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"plan": plan.__dict__, **result}, indent=2))
    return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
