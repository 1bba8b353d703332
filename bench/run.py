"""Run the TeamChat benchmark: every scenario against every target, one command.

    .venv/bin/python bench/run.py            # full run, ~20 minutes -> bench/results/latest.*
    .venv/bin/python bench/run.py --quick    # smoke test, a few minutes -> bench/results/quick.*

Each scenario (and each step of the saturation scenario) gets a freshly
started server, so the numbers are independent. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orgbench as org
import orgreport
from loadgen import LoadGenerator, ProcessSampler, Target, raise_fd_limit
from prepare import solo_slug

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
REFERENCE = BENCH / "reference"
RESULTS = BENCH / "results"
TMP = RESULTS / "tmp"  # git-ignored: logs, session keys
PY = sys.executable

SQLITE_PATH = Path(tempfile.gettempdir()) / "teamchat-bench.sqlite3"
PG_DATABASE = "teamchat_bench"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = f"postgres://postgres@127.0.0.1:5432/{PG_DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/9"  # a database of its own, keys under a bench prefix

ROOM_100 = "bench-100"
ROOM_1000 = "bench-1000"
ROOM_IDLE = "bench-idle"
ROOM_SOLO_PREFIX = "bench-w"  # bench-w00..: user i alone in room i (scenario F)


@dataclass(frozen=True)
class TargetSpec:
    name: str
    label: str
    kind: str  # "teamchat" | "reference" | "floor"
    database: str | None  # "sqlite" | "postgres" | None
    redis: bool


TARGETS = {
    t.name: t
    for t in (
        TargetSpec(
            "teamchat-sqlite", "TeamChat, SQLite + in-memory layer", "teamchat", "sqlite", False
        ),
        TargetSpec(
            "teamchat-pg-redis", "TeamChat, PostgreSQL + Redis", "teamchat", "postgres", True
        ),
        TargetSpec("reference", "Reference (tutorial), in-memory layer", "reference", None, False),
        TargetSpec("reference-redis", "Reference (tutorial), Redis layer", "reference", None, True),
        TargetSpec("floor", "Floor (bare websockets broadcast)", "floor", None, False),
    )
}
SCENARIO_TARGETS = {
    "A": ["teamchat-sqlite", "teamchat-pg-redis", "reference", "floor"],
    "B": ["teamchat-sqlite", "teamchat-pg-redis", "reference", "floor"],
    "C": ["teamchat-sqlite", "teamchat-pg-redis", "reference", "floor"],
    "D": ["teamchat-sqlite", "teamchat-pg-redis", "reference"],
    "E": ["teamchat-pg-redis", "reference-redis"],
    "F": ["teamchat-sqlite", "teamchat-pg-redis"],
    **{letter: [org.TARGET] for letter in org.ORG_SCENARIOS},  # bench/orgbench.py
}
ALL = "".join(SCENARIO_TARGETS)
# Scenario F's rate goal applies to these targets; the others are reported only.
F_GOAL_TARGETS = ("teamchat-pg-redis",)


@dataclass
class Plan:
    quick: bool
    workers: int
    a_members: int = 100
    a_rate: float = 50
    a_senders: int = 10
    a_duration: float = 20
    a_p99_ms: float = 15
    b_members: int = 1000
    b_rate: float = 10
    b_senders: int = 10
    b_duration: float = 20
    b_p99_ms: float = 60
    c_members: int = 100
    c_senders: int = 20
    c_rates: list[float] = field(default_factory=lambda: [50, 100, 200, 300, 400, 600, 800])
    c_step_s: float = 8
    c_p99_ms: float = 250
    d_sockets: int = 10_000
    d_hold_s: float = 30
    e_clients: int = 1000
    e_wait_s: float = 30
    e_hold_s: float = 5
    f_senders: int = 50
    f_window: int = 8
    f_warmup_s: float = 3
    f_duration: float = 15
    f_goal_rate: float = 2000
    drain_s: float = 5
    body_size: int = 100
    quiet_wait_s: float = 30
    probe_wait_s: float = 30

    @classmethod
    def make(cls, args: argparse.Namespace) -> Plan:
        plan = cls(quick=args.quick, workers=args.workers)
        if args.quick:
            plan.a_duration = 5
            plan.b_duration = 5
            plan.c_rates = [50, 200, 800]
            plan.c_step_s = 4
            plan.d_sockets = 1000
            plan.d_hold_s = 5
            plan.e_wait_s = 15
            plan.e_hold_s = 3
            plan.f_warmup_s = 2
            plan.f_duration = 5
            plan.quiet_wait_s = 5
            plan.probe_wait_s = 10
        if args.idle_sockets:
            plan.d_sockets = args.idle_sockets
        if args.storm_clients:
            plan.e_clients = args.storm_clients
        if args.f_window:
            plan.f_window = args.f_window
        if args.f_duration:
            plan.f_duration = args.f_duration
        return plan

    @property
    def users(self) -> int:
        return max(
            self.a_members,
            self.b_members,
            self.c_members,
            self.d_sockets,
            self.e_clients,
            self.f_senders,
        )


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


class Server:
    """One server process under test, started fresh, output to a log file."""

    quiet: dict[str, Any]

    def __init__(
        self, spec: TargetSpec, tag: str, env: dict[str, str], port: int | None = None
    ) -> None:
        self.spec = spec
        self.quiet = {}
        self.port = port or _free_port()
        self.log_path = TMP / "logs" / f"{tag}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if spec.kind == "teamchat":
            cmd = [PY, "-m", "teamchat.server", "--host", "127.0.0.1", "--port", str(self.port)]
            cwd = ROOT
        elif spec.kind == "reference":
            cmd = [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
            cmd.append("refchat.asgi:application")
            cwd = REFERENCE
        else:
            cmd = [PY, str(BENCH / "floor_server.py"), "--port", str(self.port)]
            cwd = BENCH
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _LIVE.add(self)
        try:
            self._wait_listening(60)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server not listening after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _LIVE.discard(self)
        return self.proc.returncode

    def log_summary(self) -> dict[str, Any]:
        return summarize_log(self.log_path)


_LIVE: set[Server] = set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+\s*")
_NUMBERS = re.compile(r"\b\d+\b|0x[0-9a-f]+|specific\.[\w!.-]+", re.IGNORECASE)


def summarize_log(path: Path) -> dict[str, Any]:
    """Count the server log's errors, warnings and tracebacks; the most frequent messages."""
    counts: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"lines": 0}
    for line in lines:
        if "Traceback (most recent call last)" in line:
            counts["tracebacks"] += 1
        level = next((lv for lv in ("CRITICAL", "ERROR", "WARNING") if f" {lv} " in line), None)
        if level is None and re.match(r"^\w+(\.\w+)*(Error|Exception|Full)\b", line):
            level = "EXCEPTION"
        if level is None:
            continue
        counts[level.lower()] += 1
        messages[_NUMBERS.sub("N", _TIMESTAMP.sub("", line))[:200]] += 1
    return {
        "lines": len(lines),
        **counts,
        "top": [{"count": n, "message": m} for m, n in messages.most_common(6)],
        "file": str(path.relative_to(ROOT)),
    }


# --------------------------------------------------------------------------
# Environment and data
# --------------------------------------------------------------------------

_STRIPPED = (
    "DJANGO_",
    "DATABASE_",
    "REDIS_",
    "CHANNEL_LAYER",
    "CHAT_",
    "ACCOUNT_",
    "SESSION_",
    "LOG_LEVEL",
)


def server_env(spec: TargetSpec, secret: str, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED)}
    env["PYTHONUNBUFFERED"] = "1"
    env["REDIS_URL"] = REDIS_URL if spec.redis else ""  # explicit: wins over a .env file
    env["CHANNEL_LAYER_PREFIX"] = prefix
    if spec.kind != "teamchat":
        env["DJANGO_SETTINGS_MODULE"] = "refchat.settings"
        return env
    env.update(
        DJANGO_SECRET_KEY=secret,
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=PG_URL if spec.database == "postgres" else f"sqlite:///{SQLITE_PATH}",
        ACCOUNT_EMAIL_VERIFICATION="none",
        CHAT_RATE_LIMIT="100000",
        CHAT_RATE_BURST="100000",
        CHAT_SOCKET_FRAME_RATE="100000",
        CHAT_SOCKET_FRAME_BURST="100000",
        LOG_LEVEL="INFO",
    )
    return env


def reset_database(database: str) -> None:
    if database == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")


def prepare(database: str, plan: Plan, secret: str) -> list[str]:
    """A fresh database with the bench users, rooms and sessions; the session keys."""
    reset_database(database)
    spec = next(t for t in TARGETS.values() if t.database == database)
    keys_path = TMP / f"sessions-{database}.json"
    cmd = [PY, str(BENCH / "prepare.py"), "--users", str(plan.users), "--out", str(keys_path)]
    for slug, members in (
        (ROOM_100, max(plan.a_members, plan.c_members)),
        (ROOM_1000, max(plan.b_members, plan.e_clients)),
        (ROOM_IDLE, plan.d_sockets),
    ):
        cmd += ["--room", f"{slug}:{members}"]
    cmd += ["--solo-rooms", f"{ROOM_SOLO_PREFIX}:{plan.f_senders}"]
    env = server_env(spec, secret, "bench-prepare")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"prepare failed for {database}:\n{done.stdout}\n{done.stderr}")
    log(f"prepared {database}: {done.stdout.strip()}")
    return json.loads(keys_path.read_text())


def count_stored(spec: TargetSpec, secret: str, run: dict[str, Any]) -> dict[str, Any]:
    """What the target's database holds from one scenario F run (bench/count_messages.py)."""
    cmd = [PY, str(BENCH / "count_messages.py"), "--room-prefix", ROOM_SOLO_PREFIX]
    cmd += ["--token", run["token"], "--since", repr(run["t0"]), "--until", repr(run["t_end"])]
    env = server_env(spec, secret, "bench-count")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"counting messages failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


class Bench:
    def __init__(self, plan: Plan, secret: str, keys: dict[str, list[str]]) -> None:
        self.plan = plan
        self.secret = secret
        self.keys = keys
        self.run_id = secrets.token_hex(3)
        self.starts = 0

    def new_prefix(self) -> str:
        self.starts += 1
        return f"bench{self.run_id}n{self.starts}"

    def _server(
        self,
        spec: TargetSpec,
        tag: str,
        *,
        prefix: str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        quiet: bool = True,
    ) -> Server:
        """A fresh server once the machine is quiet; `env` overrides (e.g. DATABASE_URL)."""
        prefix = prefix or self.new_prefix()
        found: dict[str, Any] = {}
        if quiet:
            found = wait_quiet(self.plan.quiet_wait_s)
            if found["machine_busy_pct"] >= QUIET_BUSY_PCT:
                log(
                    f"  machine still {found['machine_busy_pct']:.0f}% busy before {tag}: "
                    + "; ".join(found.get("busiest", []))
                )
        server = Server(spec, tag, {**server_env(spec, self.secret, prefix), **(env or {})}, port)
        server.quiet = found
        return server

    def _generator(self, spec: TargetSpec, server: Server, room: str, n: int) -> LoadGenerator:
        protocol = "teamchat" if spec.kind == "teamchat" else "reference"
        target = Target(server.url, protocol, room, server.origin)
        cookies: list[str | None] = (
            list(self.keys[spec.database][:n]) if spec.kind == "teamchat" else [None] * n
        )
        if len(cookies) < n:
            raise RuntimeError(f"only {len(cookies)} sessions prepared, {n} needed")
        return LoadGenerator(target, cookies, self.plan.workers)

    def steady(
        self,
        spec: TargetSpec,
        tag: str,
        *,
        room: str,
        members: int,
        senders: int,
        rate: float,
        duration: float,
        storm: bool = False,
    ) -> dict[str, Any]:
        """Connect `members` sockets, warm up with one message, then a measured run.

        With `storm`, every handshake starts at the same instant and the
        measured run starts as soon as all are open: no warm-up message, no
        settling time (scenario B: the room right after everyone connected).
        """
        server = self._server(spec, tag)
        sampler = ProcessSampler(server.pid)
        gen = None
        out: dict[str, Any] = {"target": spec.name, "machine_before": server.quiet}
        try:
            out["server_rss_start_mib"] = mib(sampler.rss_now())
            gen = self._generator(spec, server, room, members)
            lead = None
            if storm:
                out["connect"] = gen.connect(
                    concurrency=None,
                    open_timeout=30,
                    phase_timeout=60,
                    start_at=time.time() + 1.0,
                )
                lead = STORM_MEASURE_LEAD_S
            else:
                out["connect"] = gen.connect(concurrency=50, open_timeout=30, phase_timeout=300)
                out["warmup"] = probe_summary(gen.measure(senders=1, rate=10, duration=0, total=1))
            out["run"] = gen.measure(
                senders=senders,
                rate=rate,
                duration=duration,
                drain=self.plan.drain_s,
                body_size=self.plan.body_size,
                sampler=sampler,
                lead=lead,
            )
            out["after"] = gen.status()
            gen.close_sockets()
        finally:
            if gen is not None:
                gen.shutdown()
            sampler.stop()
            out["server_peak_rss_mib"] = mib(max(sampler.peak_rss(), sampler.vm_hwm() or 0))
            out["server_exit"] = server.stop()
            out["log"] = server.log_summary()
        return out

    def scenario_a(self, spec: TargetSpec) -> dict[str, Any]:
        p = self.plan
        out = self.steady(
            spec,
            f"A-{spec.name}",
            room=ROOM_100,
            members=p.a_members,
            senders=p.a_senders,
            rate=p.a_rate,
            duration=p.a_duration,
        )
        out["pass"] = passed(out, p.a_p99_ms)
        out["goal"] = f"0% loss, p99 <= {p.a_p99_ms:g} ms"
        return out

    def scenario_b(self, spec: TargetSpec) -> dict[str, Any]:
        p = self.plan
        out = self.steady(
            spec,
            f"B-{spec.name}",
            room=ROOM_1000,
            members=p.b_members,
            senders=p.b_senders,
            rate=p.b_rate,
            duration=p.b_duration,
            storm=True,
        )
        out["pass"] = passed(out, p.b_p99_ms)
        out["goal"] = f"0% loss, p99 <= {p.b_p99_ms:g} ms"
        return out

    def scenario_c(self, spec: TargetSpec) -> dict[str, Any]:
        p = self.plan
        steps = []
        error = None
        for rate in p.c_rates:
            try:
                step = self.steady(
                    spec,
                    f"C-{spec.name}-{rate:g}",
                    room=ROOM_100,
                    members=p.c_members,
                    senders=p.c_senders,
                    rate=rate,
                    duration=p.c_step_s,
                )
            except (RuntimeError, TimeoutError, OSError) as exc:
                error = f"at {rate:g} msg/s: {type(exc).__name__}: {exc}"
                log(f"  C {spec.name} {error}")
                break
            step["pass"] = passed(step, p.c_p99_ms)
            steps.append(step)
            log(f"  C {spec.name} {rate:g} msg/s: {one_line(step)}")
            if not step["pass"]:
                break
        good = [s["run"]["offered_rate"] for s in steps if s["pass"]]
        return {
            "target": spec.name,
            "goal": f"highest rate with 0% loss and p99 <= {p.c_p99_ms:g} ms",
            "max_rate": max(good) if good else None,
            "steps": steps,
            **({"error": error} if error else {}),
        }

    def scenario_d(self, spec: TargetSpec) -> dict[str, Any]:
        p = self.plan
        n = p.d_sockets
        server = self._server(spec, f"D-{spec.name}")
        sampler = ProcessSampler(server.pid, interval=0.25)
        gen = None
        out: dict[str, Any] = {"target": spec.name, "asked": n, "machine_before": server.quiet}
        try:
            gen = self._generator(spec, server, ROOM_IDLE, n)
            warm = min(10, n)
            out["warm_connect"] = gen.connect(0, warm, concurrency=10)
            time.sleep(2)
            before = sampler.rss_now()
            out["connect"] = gen.connect(
                warm, n, concurrency=50, open_timeout=60, phase_timeout=900 if n > 2000 else 300
            )
            time.sleep(5)
            after = sampler.rss_now()
            opened = out["connect"]["ok"]
            time.sleep(p.d_hold_s)
            out["after_hold"] = status = gen.status()
            out["rss_after_hold_mib"] = mib(sampler.rss_now())
            out["probe"] = probe_summary(
                gen.measure(
                    senders=1,
                    rate=10,
                    duration=0,
                    total=1,
                    drain=p.probe_wait_s,
                    first_sender=status["first_open"] or 0,
                )
            )
            gen.close_sockets()
            out.update(
                opened=opened + out["warm_connect"]["ok"],
                still_open=status["open"],
                all_stayed_open=status["open"] == n,
                rss_before_mib=mib(before),
                rss_after_mib=mib(after),
                kib_per_socket=round((after - before) / 1024 / opened, 1) if opened else None,
                hold_s=p.d_hold_s,
            )
        finally:
            if gen is not None:
                gen.shutdown()
            sampler.stop()
            out["server_peak_rss_mib"] = mib(max(sampler.peak_rss(), sampler.vm_hwm() or 0))
            out["server_exit"] = server.stop()
            out["log"] = server.log_summary()
        return out

    def scenario_e(self, spec: TargetSpec) -> dict[str, Any]:
        p = self.plan
        n = p.e_clients
        server = self._server(spec, f"E-{spec.name}")
        sampler = ProcessSampler(server.pid)
        gen = None
        out: dict[str, Any] = {
            "target": spec.name,
            "clients": n,
            "wait_s": p.e_wait_s,
            "machine_before": server.quiet,
        }
        try:
            gen = self._generator(spec, server, ROOM_1000, n)
            start = time.time() + 2.0
            out["connect"] = c = gen.connect(
                concurrency=None,
                open_timeout=p.e_wait_s,
                phase_timeout=p.e_wait_s + 5,
                start_at=start,
            )
            storm_end = start + c["elapsed_s"]
            time.sleep(p.e_hold_s)
            out["after_hold"] = status = gen.status()
            out["storm_server"] = sampler.window(start, storm_end)
            out["probe"] = probe_summary(
                gen.measure(
                    senders=1,
                    rate=10,
                    duration=0,
                    total=1,
                    drain=p.probe_wait_s,
                    first_sender=status["first_open"] or 0,
                )
            )
            gen.close_sockets()
            closed = status["closed_by_server"]
            out.update(
                connected=c["ok"],
                refused=sum(c["failed"].values()),
                refused_by_kind=c["failed"],
                closed_after_open=sum(closed.values()),
                closed_1011=closed.get("1011", 0),
                closed_by_code=closed,
                still_open=status["open"],
                settle_s=c["elapsed_s"],
            )
        finally:
            if gen is not None:
                gen.shutdown()
            sampler.stop()
            out["server_peak_rss_mib"] = mib(max(sampler.peak_rss(), sampler.vm_hwm() or 0))
            out["server_exit"] = server.stop()
            out["log"] = server.log_summary()
        return out

    def scenario_f(self, spec: TargetSpec) -> dict[str, Any]:
        """Stored messages per second: closed-loop senders, each alone in its own room."""
        p = self.plan
        server = self._server(spec, f"F-{spec.name}")
        sampler = ProcessSampler(server.pid)
        gen = None
        out: dict[str, Any] = {
            "target": spec.name,
            "senders": p.f_senders,
            "window": p.f_window,
            "machine_before": server.quiet,
        }
        try:
            out["server_rss_start_mib"] = mib(sampler.rss_now())
            gen = self._generator(spec, server, "", p.f_senders)
            out["connect"] = gen.connect(concurrency=50, open_timeout=30, phase_timeout=120)
            out["run"] = gen.flood(
                rooms=[solo_slug(ROOM_SOLO_PREFIX, i) for i in range(p.f_senders)],
                window=p.f_window,
                warmup=p.f_warmup_s,
                duration=p.f_duration,
                drain=p.drain_s,
                body_size=p.body_size,
                sampler=sampler,
            )
            out["after"] = gen.status()
            gen.close_sockets()
        finally:
            if gen is not None:
                gen.shutdown()
            sampler.stop()
            out["server_peak_rss_mib"] = mib(max(sampler.peak_rss(), sampler.vm_hwm() or 0))
            out["server_exit"] = server.stop()
            out["log"] = server.log_summary()
        # The server has stopped: whatever it stored is committed (or never will be).
        run = out["run"]
        try:
            out["db"] = db = count_stored(spec, self.secret, run)
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            log(f"  F {spec.name}: {exc}")
            out["db"] = db = {"error": f"{type(exc).__name__}: {exc}"}
        stored = db.get("stored")
        errors = sum(run["server_errors"].values())
        out.update(
            acked_per_s=run["acked_per_s"],
            stored_per_s=(
                round(db["stored_in_window"] / run["duration_s"], 1) if stored is not None else None
            ),
            stored=stored,
            acked=run["acked"],
            stored_equals_acked=stored == run["acked"],
            errors=errors,
        )
        consistent = out["stored_equals_acked"] and run["unacked"] == 0
        healthy = (
            consistent
            and errors == 0
            and run["senders"] == p.f_senders
            and not run["closed_by_server"]
            and not run["duplicates"]
            and not run["wrong_room"]
        )
        if spec.name in F_GOAL_TARGETS:
            out["goal"] = f">= {p.f_goal_rate:g} stored msg/s, 0 errors, stored == acked"
            out["pass"] = healthy and (out["stored_per_s"] or 0) >= p.f_goal_rate
        else:
            out["goal"] = "none (reported); stored == acked"
            if not consistent:
                out["pass"] = False  # losing or inventing messages fails whatever the rate
        return out


QUIET_BUSY_PCT = 15.0
# Scenario B: the first measured send is due this long after the last socket
# opened; just enough for the load command to reach every generator process.
STORM_MEASURE_LEAD_S = 0.2


def wait_quiet(max_wait: float) -> dict[str, Any]:
    """Wait (at most `max_wait` s) until the machine's CPUs are under QUIET_BUSY_PCT % busy.

    Other work on the machine (test suites, builds) skews every figure; each
    run records how busy the machine was just before its server started.
    """
    import psutil

    began = time.monotonic()
    busy = psutil.cpu_percent(interval=1.0)
    while busy >= QUIET_BUSY_PCT and time.monotonic() - began < max_wait:
        busy = psutil.cpu_percent(interval=1.0)
    out: dict[str, Any] = {"waited_s": round(time.monotonic() - began, 1), "machine_busy_pct": busy}
    if busy >= QUIET_BUSY_PCT:
        out["busiest"] = busiest_processes()
    return out


def busiest_processes(interval: float = 1.0, top: int = 4) -> list[str]:
    """The processes that used the most CPU over `interval` s, as "pct% command"."""
    import psutil

    def snapshot() -> dict[int, tuple[float, str]]:
        seen = {}
        for proc in psutil.process_iter(["cmdline", "name"]):
            try:
                times = proc.cpu_times()
                name = " ".join(proc.info["cmdline"] or [proc.info["name"] or "?"])
                seen[proc.pid] = (times.user + times.system, name[:100])
            except psutil.Error:
                continue
        return seen

    first = snapshot()
    time.sleep(interval)
    second = snapshot()
    used = [
        ((cpu - first[pid][0]) / interval * 100, name)
        for pid, (cpu, name) in second.items()
        if pid in first
    ]
    used.sort(reverse=True)
    return [f"{pct:.0f}% {name}" for pct, name in used[:top] if pct >= 1]


def mib(n: int | float) -> float:
    return round(n / 2**20, 1)


def passed(out: dict[str, Any], p99_ms: float) -> bool:
    run = out["run"]
    return (
        run["sent"] == run["planned"]
        and run["sockets"] == out["connect"]["asked"]
        and run["expected"] > 0
        and run["lost"] == 0
        and run["latency_ms"]["p99"] is not None
        and run["latency_ms"]["p99"] <= p99_ms
    )


def probe_summary(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("sent", "sockets", "expected", "delivered", "lost", "duplicates", "closed_by_server")
    return {**{k: r[k] for k in keys}, "latency_ms": r["latency_ms"]}


def one_line(out: dict[str, Any]) -> str:
    r = out["run"]
    lat = r["latency_ms"]
    return (
        f"sent {r['sent']}/{r['planned']} to {r['sockets']} sockets, loss {r['loss_pct']:.3f}%, "
        f"p50 {fmt(lat['p50'])} p99 {fmt(lat['p99'])} max {fmt(lat['max'])} ms, "
        f"server CPU {fmt(r.get('server', {}).get('cpu_pct'))}%, "
        f"gen CPU {fmt(r['generator_cpu_pct'])}%"
        + (" PASS" if out.get("pass") else " FAIL" if "pass" in out else "")
    )


def f_line(out: dict[str, Any]) -> str:
    r = out["run"]
    lat = r["ack_latency_ms"]
    return (
        f"{r['senders']} senders x {r['window']}: acked {fmt(r['acked_per_s'], 0)}/s, "
        f"stored {fmt(out['stored_per_s'], 0)}/s, ack p50 {fmt(lat['p50'])} "
        f"p99 {fmt(lat['p99'])} ms, errors {r['server_errors'] or 0}, "
        f"stored {out['stored']} / acked {out['acked']} / unacked {r['unacked']}, "
        f"server CPU {fmt((r.get('server') or {}).get('cpu_pct'))}%, "
        f"gen CPU {fmt(r['generator_cpu_pct'])}%"
        + (" PASS" if out.get("pass") else " FAIL" if "pass" in out else "")
    )


def fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def log(text: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)


# --------------------------------------------------------------------------
# Machine information and reports
# --------------------------------------------------------------------------

PACKAGES = (
    "django",
    "channels",
    "channels-redis",
    "daphne",
    "twisted",
    "autobahn",
    "redis",
    "psycopg",
    "websockets",
    "psutil",
    "numpy",
    "matplotlib",
)


def machine_info(fd_limit: int) -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {},
        "fd_limit": fd_limit,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "env_file_present": (ROOT / ".env").exists(),
    }
    for name in PACKAGES:
        try:
            info["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info["packages"][name] = None
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:
        info["postgresql"] = f"unavailable: {exc}"
    try:
        import redis

        info["redis"] = redis.Redis.from_url(REDIS_URL).info("server")["redis_version"]
    except Exception as exc:
        info["redis"] = f"unavailable: {exc}"
    info["git"] = _git_state()
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout.strip()

    try:
        changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
        return {
            "commit": git("rev-parse", "HEAD"),
            "uncommitted_changes": len(changed),
            "server_code_sha256": _code_digest(),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def _code_digest() -> str:
    """A digest of the server's Python code as it is on disk (committed or not)."""
    digest = hashlib.sha256()
    for folder in ("teamchat", "chat", "accounts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def write_reports(report: dict[str, Any], name: str) -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    report["name"] = name
    json_path = RESULTS / f"{name}.json"
    md_path = RESULTS / f"{name}.md"
    png_path = RESULTS / (
        "latency_vs_rate.png" if name == "latest" else f"{name}_latency_vs_rate.png"
    )
    json_path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    md_path.write_text(render_markdown(report, png_path.name))
    written = [json_path, md_path]
    if report["scenarios"].get("C"):
        plot_saturation(report, png_path)
        written.append(png_path)
    written += orgreport.plot_all(report, RESULTS, name)
    return written


def _marks(run: dict[str, Any]) -> list[str]:
    marks = []
    if run.get("generator_saturated"):
        marks.append("GEN-SAT")
    if run.get("machine_saturated"):
        marks.append("CPU-SAT")
    other = run.get("other_cpu_pct")
    if other is not None and other > 25:
        marks.append(f"OTHER-CPU {other:.0f}%")
    closed = sum(run.get("closed_by_server", {}).values())
    if closed:
        marks.append(f"{closed} closed")
    errors = run.get("server_errors") or {}
    if errors:
        marks.append("errors " + ", ".join(f"{k}×{v}" for k, v in errors.items()))
    if run.get("duplicates"):
        marks.append(f"{run['duplicates']} dups")
    if run.get("order_violations"):
        marks.append(f"{run['order_violations']} out of order")
    presence = (run.get("other_frame_types") or {}).get("presence")
    if presence:
        marks.append(f"{presence} presence frames")
    if run["sent"] < run["planned"]:
        marks.append(f"sent {run['sent']}/{run['planned']}")
    return marks


def _steady_row(scenario: str, out: dict[str, Any]) -> str:
    r = out["run"]
    lat = r["latency_ms"]
    srv = r.get("server") or {}
    verdict = "" if "pass" not in out else ("PASS" if out["pass"] else "FAIL")
    connect = out["connect"]
    sockets = f"{r['sockets']}/{connect['asked']}"
    return (
        f"| {scenario} | {TARGETS[out['target']].label} | {sockets} | "
        f"{fmt(r['offered_rate'], 0)} / {fmt(r['achieved_send_rate'])} | "
        f"{r['loss_pct']:.2f} | {fmt(lat['p50'])} | {fmt(lat['p99'])} | {fmt(lat['max'])} | "
        f"{fmt(r['deliveries_per_s'], 0)} | {fmt(srv.get('cpu_pct'), 0)} | "
        f"{fmt(out['server_peak_rss_mib'], 0)} | {fmt(r['generator_cpu_pct'], 0)} | "
        f"{fmt(r.get('machine_cpu_pct'), 0)} | {verdict} | {'; '.join(_marks(r))} |"
    )


STEADY_HEAD = (
    "| Scenario | Target | Sockets | Offered / sent msg/s | Loss % | p50 ms | p99 ms | max ms "
    "| Deliveries/s | Server CPU % | Server peak RSS MiB | Gen CPU % | Machine CPU % "
    "| Goal | Notes |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def render_markdown(report: dict[str, Any], png_name: str) -> str:
    m = report["machine"]
    sc = report["scenarios"]
    plan = report["plan"]
    lines = [
        f"# TeamChat benchmark ({'quick' if plan['quick'] else 'full'} run)",
        "",
        f"{m['date']} · {m['cpu_count']} CPUs ({m.get('cpu_model')}) · {m['memory_gib']} GiB · "
        f"Python {m['python']} · Django {m['packages'].get('django')} · "
        f"Channels {m['packages'].get('channels')} · daphne {m['packages'].get('daphne')} · "
        f"PostgreSQL {m.get('postgresql')} · Redis {m.get('redis')} · "
        f"commit {str(m.get('git', {}).get('commit', ''))[:10]} "
        f"({m.get('git', {}).get('uncommitted_changes', '?')} files with uncommitted changes, "
        f"server code sha256 {m.get('git', {}).get('server_code_sha256', '?')}) · "
        f"redis-py {m['packages'].get('redis')} · "
        f"load generator: {plan['workers']} processes · took {report.get('elapsed_s', 0):.0f} s",
        "",
        "Latencies are fan-out latencies: from the sender's `time.time()` just before it "
        "writes the frame to the moment a receiving socket's frame is handed to the client "
        "code, over every (message, member socket) pair that arrived. Lost deliveries are "
        "not in the percentiles; see `loss %` (and `p99_counting_lost_ms` in the JSON). "
        "CPU % is per core (100 = one core busy); machine CPU % is of all cores. "
        "Marks: **GEN-SAT** the load generator was out of CPU or its event loop lagged "
        "(p99 lag > 50 ms): the run measured the generator, not the server; **CPU-SAT** the "
        "machine's CPUs were > 90 % busy (server and generator share them); **OTHER-CPU** "
        "processes other than the server and the generator used that much CPU meanwhile.",
        "",
    ]
    steady = [(k, o) for k in ("A", "B") for o in sc.get(k, []) if "run" in o]
    if steady:
        lines += ["## A and B: steady load", "", STEADY_HEAD.rstrip("\n")]
        lines += [_steady_row(k, o) for k, o in steady]
        lines.append("")
    if sc.get("C"):
        lines += ["## C: saturation (100-member room, stepped rate)", ""]
        for c in sc["C"]:
            if "steps" not in c:
                continue
            best = c["max_rate"]
            lines.append(
                f"- {TARGETS[c['target']].label}: highest passing rate "
                f"**{fmt(best, 0) if best is not None else 'none'} msg/s** ({c['goal']})"
            )
        lines += ["", f"![p99 latency vs offered rate]({png_name})", "", STEADY_HEAD.rstrip("\n")]
        for c in sc["C"]:
            for step in c.get("steps", []):
                lines.append(_steady_row("C", step))
        lines.append("")
    if sc.get("D"):
        lines += [
            "## D: idle authenticated sockets on one server process",
            "",
            "| Target | Asked | Opened | Open after hold | Closed by server | Connect s "
            "| RSS before MiB | RSS after MiB | KiB per socket | Probe delivered | Probe p99 ms "
            "| All stayed open |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for d in sc["D"]:
            if "opened" not in d:
                lines.append(f"| {TARGETS[d['target']].label} | failed: {d.get('error')} |")
                continue
            closed = d["after_hold"]["closed_by_server"]
            pr = d["probe"]
            lines.append(
                f"| {TARGETS[d['target']].label} | {d['asked']} | {d['opened']} | "
                f"{d['still_open']} | {_codes(closed)} | {fmt(d['connect']['elapsed_s'])} | "
                f"{fmt(d['rss_before_mib'])} | {fmt(d['rss_after_mib'])} | "
                f"{fmt(d['kib_per_socket'])} | {pr['delivered']}/{pr['expected']} | "
                f"{fmt(pr['latency_ms']['p99'])} | {'yes' if d['all_stayed_open'] else 'NO'} |"
            )
        lines.append("")
    if sc.get("E"):
        lines += [
            "## E: connect storm (all handshakes at once)",
            "",
            "| Target | Clients | Connected | Refused (kind) | Closed after open (code) "
            "| Open after hold | Handshake p50 / p99 / max ms | Settled in s "
            "| Server CPU % during storm | Probe delivered |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in sc["E"]:
            if "connected" not in e:
                lines.append(f"| {TARGETS[e['target']].label} | failed: {e.get('error')} |")
                continue
            hs = e["connect"]["handshake_ms"]
            pr = e["probe"]
            lines.append(
                f"| {TARGETS[e['target']].label} | {e['clients']} | {e['connected']} | "
                f"{e['refused']} {_codes(e['refused_by_kind'])} | "
                f"{e['closed_after_open']} {_codes(e['closed_by_code'])} | {e['still_open']} | "
                f"{fmt(hs['p50'], 0)} / {fmt(hs['p99'], 0)} / {fmt(hs['max'], 0)} | "
                f"{fmt(e['settle_s'])} | {fmt(e['storm_server'].get('cpu_pct'), 0)} | "
                f"{pr['delivered']}/{pr['expected']} |"
            )
        lines.append("")
    if sc.get("F"):
        lines += _f_section(sc["F"], plan)
    lines += orgreport.render_sections(report)
    lines += ["## Server logs", "", "| Run | Errors | Warnings | Tracebacks | Most frequent |"]
    lines.append("|---|---|---|---|---|")
    for key, entry in _all_runs(sc):
        lg = entry.get("log") or {}
        top = lg.get("top") or []
        first = f"{top[0]['count']}× `{top[0]['message'][:120]}`" if top else ""
        lines.append(
            f"| {key} | {lg.get('error', 0) + lg.get('critical', 0)} | {lg.get('warning', 0)} | "
            f"{lg.get('tracebacks', 0)} | {first.replace('|', '/')} |"
        )
    failures = [(k, e["error"]) for k, e in _all_runs(sc) if e.get("error")]
    if failures:
        lines += ["", "## Runs that did not complete", ""]
        lines += [f"- {k}: `{err}`" for k, err in failures]
    lines.append("")
    return "\n".join(lines)


def _f_section(entries: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    lines = [
        "## F: stored messages per second (group commit)",
        "",
        f"Each sender is alone in its own private room and keeps `window` sends in flight; "
        f"the `message` event with a send's nonce is its acknowledgement (the message is "
        f"committed before it is broadcast). Measured over {plan['f_duration']:g} s after a "
        f"{plan['f_warmup_s']:g} s warm-up. Acked msg/s: acknowledgements received in that "
        f"window; stored msg/s: rows in the database created in that window (server clock); "
        f"stored == acked compares every row of the run with every acknowledgement, counted "
        f"after the server stopped. Ack latency: send to acknowledgement, over the window.",
        "",
        "| Target | Senders | Window | Acked msg/s | Stored msg/s | Ack p50 / p99 ms "
        "| Errors | Stored == acked | Server CPU % | Server peak RSS MiB | Gen CPU % "
        "| Machine CPU % | Goal | Notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in entries:
        label = TARGETS[f["target"]].label
        if "stored_per_s" not in f:
            lines.append(f"| {label} | failed: {str(f.get('error')).replace('|', '/')} |")
            continue
        r = f["run"]
        lat = r["ack_latency_ms"]
        errors = f"{f['errors']} {_codes(r['server_errors'])}".strip()
        if f["stored"] is None:
            same = f"NO: count failed, {f['acked']} acked"
        elif f["stored_equals_acked"]:
            same = f"yes ({f['stored']})"
        else:
            same = f"NO: {f['stored']} stored, {f['acked']} acked"
        verdict = "–" if "pass" not in f else ("PASS" if f["pass"] else "FAIL")
        lines.append(
            f"| {label} | {r['senders']}/{f['senders']} | {r['window']} | "
            f"{fmt(r['acked_per_s'], 0)} | {fmt(f['stored_per_s'], 0)} | "
            f"{fmt(lat['p50'])} / {fmt(lat['p99'])} | {errors} | {same} | "
            f"{fmt((r.get('server') or {}).get('cpu_pct'), 0)} | "
            f"{fmt(f['server_peak_rss_mib'], 0)} | {fmt(r['generator_cpu_pct'], 0)} | "
            f"{fmt(r.get('machine_cpu_pct'), 0)} | {verdict} | {'; '.join(_f_marks(r))} |"
        )
    goal = next((f["goal"] for f in entries if f["target"] in F_GOAL_TARGETS and "goal" in f), "")
    if goal:
        lines += ["", f"Goal ({', '.join(F_GOAL_TARGETS)}): {goal}."]
    lines.append("")
    return lines


def _f_marks(run: dict[str, Any]) -> list[str]:
    marks = []
    if run.get("generator_saturated"):
        marks.append("GEN-SAT")
    if run.get("machine_saturated"):
        marks.append("CPU-SAT")
    other = run.get("other_cpu_pct")
    if other is not None and other > 25:
        marks.append(f"OTHER-CPU {other:.0f}%")
    closed = sum(run.get("closed_by_server", {}).values())
    if closed:
        marks.append(f"{closed} closed")
    for key, text in (
        ("unacked", "unacked"),
        ("duplicates", "dups"),
        ("wrong_room", "in the wrong room"),
        ("order_violations", "out of order"),
        ("foreign_frames", "foreign frames"),
    ):
        if run.get(key):
            marks.append(f"{run[key]} {text}")
    if run.get("send_failed"):
        marks.append("send failed " + _codes(run["send_failed"]))
    per_second = run.get("acked_per_second") or []
    if len(per_second) > 1:
        marks.append(f"acks in 1st s {per_second[0]}, last s {per_second[-1]}")
    return marks


def _codes(counts: dict[str, int]) -> str:
    return "(" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")" if counts else ""


def _all_runs(sc: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    runs = []
    for key, entries in sc.items():
        for entry in entries:
            if "steps" in entry:
                for step in entry["steps"]:
                    rate = step.get("run", {}).get("offered_rate")
                    runs.append((f"{key} {entry['target']} {fmt(rate, 0)}/s", step))
                if entry.get("error"):
                    runs.append((f"{key} {entry['target']}", entry))
            elif "sizes" in entry:  # org scenarios G and K: one run per organization size
                for size in entry["sizes"]:
                    runs.append((f"{key} {entry['target']} {size.get('users')} users", size))
            else:
                runs.append((f"{key} {entry['target']}", entry))
    return runs


def plot_saturation(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limit = report["plan"]["c_p99_ms"]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for c in report["scenarios"]["C"]:
        steps = [s for s in c.get("steps", []) if "run" in s]
        if not steps:
            continue
        rates = [s["run"]["offered_rate"] for s in steps]
        p99 = [s["run"]["latency_ms"]["p99"] for s in steps]
        loss = [s["run"]["loss_pct"] for s in steps]
        label = TARGETS[c["target"]].label
        (line,) = top.plot(rates, [v if v else float("nan") for v in p99], "o-", label=label)
        failed = [(r, v) for r, v, s in zip(rates, p99, steps, strict=True) if not s["pass"] and v]
        if failed:
            top.plot(*zip(*failed, strict=True), "x", color="red", markersize=12, mew=2)
        bottom.plot(rates, loss, "o-", color=line.get_color())
    top.axhline(limit, color="grey", linestyle="--", linewidth=1)
    top.text(0.01, limit * 1.1, f"p99 goal {limit:g} ms", transform=top.get_yaxis_transform())
    top.set_yscale("log")
    top.set_ylabel("p99 fan-out latency (ms, log)")
    top.set_title(
        f"Scenario C: {report['plan']['c_members']}-member room "
        f"({'quick' if report['plan']['quick'] else 'full'} run, x = failed step)"
    )
    top.grid(True, which="both", alpha=0.3)
    handles, labels = top.get_legend_handles_labels()
    bottom.legend(handles, labels, loc="center right", fontsize=8)  # clear of the curves
    bottom.set_ylabel("loss %")
    bottom.set_xlabel("offered rate (messages/s, whole room)")
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def _stop_everything(*_: object) -> None:
    for server in list(_LIVE):
        try:
            server.stop()
        except Exception as exc:
            print(f"could not stop server {server.pid}: {exc}", file=sys.stderr)


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke-test version")
    parser.add_argument("--scenarios", default=ALL, help=f"subset, e.g. AB (default {ALL})")
    parser.add_argument("--targets", help="comma-separated subset of: " + ", ".join(TARGETS))
    parser.add_argument("--workers", type=int, default=max(2, min(4, os.cpu_count() or 2)))
    parser.add_argument("--idle-sockets", type=int, help="scenario D socket count")
    parser.add_argument("--storm-clients", type=int, help="scenario E client count")
    parser.add_argument("--f-window", type=int, help="scenario F sends in flight per sender")
    parser.add_argument("--f-duration", type=float, help="scenario F measured seconds")
    parser.add_argument("--name", help="output name in bench/results (latest, or quick)")
    parser.add_argument("--budget-min", type=float, default=90, help="stop starting new runs")
    org.add_arguments(parser)
    args = parser.parse_args()
    name = args.name or ("quick" if args.quick else "latest")
    scenarios = [s for s in args.scenarios.upper() if s in SCENARIO_TARGETS]
    wanted = set(args.targets.split(",")) if args.targets else set(TARGETS)
    unknown = wanted - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")

    signal.signal(signal.SIGTERM, _on_signal)
    fd_limit = raise_fd_limit(65536)
    plan = Plan.make(args)
    org_plan = org.OrgPlan.make(args)
    began = time.monotonic()
    deadline = began + args.budget_min * 60
    TMP.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(50)
    report: dict[str, Any] = {
        "machine": machine_info(fd_limit),
        "plan": plan.__dict__,
        "org_plan": org_plan.__dict__,
        "targets": {k: v.__dict__ for k, v in TARGETS.items()},
        "scenarios": {},
    }
    log(f"fd limit {fd_limit}; plan: {'quick' if plan.quick else 'full'}, scenarios {scenarios}")
    try:
        needed = {
            TARGETS[t].database
            for s in scenarios
            if s not in org.ORG_SCENARIOS  # each org run prepares its own database
            for t in SCENARIO_TARGETS[s]
            if t in wanted and TARGETS[t].database
        }
        keys = {db: prepare(db, plan, secret) for db in sorted(needed)}
        bench = Bench(plan, secret, keys)
        org_bench = org.OrgBench(bench, org_plan, server_env=server_env, pg_admin=PG_ADMIN)
        for scenario in scenarios:
            results = report["scenarios"].setdefault(scenario, [])
            for target_name in SCENARIO_TARGETS[scenario]:
                if target_name not in wanted:
                    continue
                if time.monotonic() > deadline:
                    log(f"time budget spent: skipping {scenario} {target_name}")
                    results.append({"target": target_name, "error": "skipped: time budget"})
                    continue
                spec = TARGETS[target_name]
                log(f"scenario {scenario} on {spec.label}")
                method = f"scenario_{scenario.lower()}"
                try:
                    out = (getattr(bench, method, None) or getattr(org_bench, method))(spec)
                except (RuntimeError, TimeoutError, OSError) as exc:
                    log(f"  failed: {exc}")
                    results.append({"target": target_name, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                results.append(out)
                if scenario in org.ORG_SCENARIOS:
                    log(f"  {org.summary_line(scenario, out)}")
                elif "stored_per_s" in out:
                    log(f"  {f_line(out)}")
                elif "run" in out:
                    log(f"  {one_line(out)}")
                elif "max_rate" in out:
                    log(f"  highest passing rate: {out['max_rate']}")
                elif "kib_per_socket" in out:
                    log(
                        f"  {out['opened']}/{out['asked']} opened, {out['still_open']} open "
                        f"after hold, {out['kib_per_socket']} KiB/socket"
                    )
                elif "connected" in out:
                    log(
                        f"  connected {out['connected']}, refused {out['refused']} "
                        f"{out['refused_by_kind']}, closed after open {out['closed_after_open']}"
                    )
    finally:
        _stop_everything()
        report["elapsed_s"] = round(time.monotonic() - began, 1)
        _add_other_cpu(report)
        for path in write_reports(report, name):
            log(f"wrote {path.relative_to(ROOT)}")


def _add_other_cpu(report: dict[str, Any]) -> None:
    """CPU used by neither the server nor the generator during each measured run."""
    cores = report["machine"]["cpu_count"] or 1
    for _, entry in _all_runs(report["scenarios"]):
        run = entry.get("run")
        if not run or run.get("machine_cpu_pct") is None:
            continue
        srv = (run.get("server") or {}).get("cpu_pct")
        gen = run.get("generator_cpu_pct")
        if srv is not None and gen is not None:
            run["other_cpu_pct"] = round(run["machine_cpu_pct"] * cores - srv - gen, 1)


if __name__ == "__main__":
    main()
