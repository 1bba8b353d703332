"""Organization-scale scenarios (G to K) of the TeamChat benchmark, driven by bench/run.py.

- G: connect storm at several organization sizes, with the page's presence_sub;
- H: restart storm: a server process restarted under its clients, who resume from `?seq=`;
- I: read and typing floods from one user next to normal senders;
- J: an organization's day (the one to quote);
- K: growth: the day at several sizes.

Each run gets a freshly prepared organization (bench/prepare_org.py) in its
own PostgreSQL database and a fresh server process; the clients are
bench/orgload.py. See bench/README.md for what each one checks.
"""

from __future__ import annotations

import array
import json
import os
import random
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loadgen import ProcessSampler, percentiles
from orgload import CLIENT, FLOODER, SENDER, OrgGenerator, SockSpec, merge_counts, slow_moments
from prepare import USERNAME

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TMP = BENCH / "results" / "tmp"
PY = sys.executable

ORG_DATABASE = "teamchat_bench_org"
ORG_URL = f"postgres://postgres@127.0.0.1:5432/{ORG_DATABASE}"
ORG_SCENARIOS = "GHIJK"
TARGET = "teamchat-pg-redis"
# The organization the day's rates are given for; smaller or larger ones scale them.
REFERENCE_USERS = 5000


@dataclass
class OrgPlan:
    quick: bool
    workers: int
    subs: int = 10  # presence_sub list per socket: users i+1..i+subs (mod N)
    connect_concurrency: int = 50  # handshakes at a time per generator process, outside storms
    body_size: int = 100
    seed: int = 1
    # G: connect storm
    storm_sizes: list[int] = field(default_factory=lambda: [1000, 2000, 5000])
    storm_after_s: float = 5.0
    storm_timeout_s: float = 60.0
    # H: restart storm
    restart_users: int = 5000
    restart_rate: float = 10.0  # msg/s sent meanwhile through the other server
    restart_before_s: float = 5.0  # sending before the SIGTERM
    restart_after_s: float = 25.0  # and after it
    restart_wait_s: float = 90.0  # at most this long after the SIGTERM for everyone to catch up
    # I: floods
    flood_org_users: int = 1000
    flood_room_size: int = 101
    flood_sockets: int = 5
    flood_read_rate: float = 2000.0
    flood_typing_rate: float = 2000.0
    flood_msg_rate: float = 20.0
    flood_duration: float = 20.0
    flood_factor: float = 2.0
    # J: an organization's day; K: growth
    day_users: int = 5000
    day_duration: float = 600.0
    day_msg_rate: float = 50.0  # per second, for REFERENCE_USERS users
    day_read_rate: float = 200.0
    day_presence_rate: float = 20.0
    day_reconnect_rate: float = 5.0  # typing: one hint before every message (50/s)
    day_p99_ms: float = 100.0
    day_rss_growth_pct: float = 10.0
    day_sample_s: float = 10.0
    growth_sizes: list[int] = field(default_factory=lambda: [1000, 2000, 5000])
    growth_duration: float = 120.0
    drain_s: float = 10.0

    @classmethod
    def make(cls, args: Any) -> OrgPlan:
        plan = cls(quick=args.quick, workers=args.workers)
        if args.quick:
            plan.storm_sizes = [250, 500, 1000]
            plan.restart_users = 1000
            plan.restart_after_s = 15.0
            plan.restart_wait_s = 45.0
            plan.flood_duration = 5.0
            plan.day_users = 1000
            plan.day_duration = 60.0
            plan.growth_sizes = [250, 500, 1000]
            plan.growth_duration = 30.0
        if args.org_sizes:
            plan.storm_sizes = plan.growth_sizes = [int(x) for x in args.org_sizes.split(",")]
        if args.org_users:
            plan.restart_users = plan.day_users = args.org_users
        if args.day_duration:
            plan.day_duration = args.day_duration
        if args.growth_duration:
            plan.growth_duration = args.growth_duration
        return plan


def add_arguments(parser: Any) -> None:
    parser.add_argument("--org-sizes", help="G and K organization sizes, e.g. 1000,2000,5000")
    parser.add_argument("--org-users", type=int, help="H and J organization size (5000)")
    parser.add_argument("--day-duration", type=float, help="J measured seconds (600)")
    parser.add_argument("--growth-duration", type=float, help="K measured seconds per size (120)")


def storm_goal_s(users: int) -> float:
    """All open within 1.5 s at 1,000 users and 10 s at 5,000, linear between and beyond."""
    if users <= 1000:
        return 1.5
    return round(1.5 + (users - 1000) * (10 - 1.5) / 4000, 2)


def log(text: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)


def mib(n: float) -> float:
    return round(n / 2**20, 1)


# --------------------------------------------------------------------------
# Data, metrics
# --------------------------------------------------------------------------


@dataclass
class Org:
    users: int
    keys: list[str]
    slugs: list[str]
    members: list[list[int]]  # by room index
    kinds: list[str]
    rooms_of: list[tuple[int, ...]]  # by user index
    prepare: dict[str, Any]

    def subs(self, user: int, count: int) -> tuple[str, ...]:
        return tuple(USERNAME.format((user + k) % self.users) for k in range(1, count + 1))


def read_metrics(port: int) -> dict[str, float] | None:
    """GET /metrics (Prometheus text) from the server, summed by metric name; None if absent."""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not match:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        name = match.group(1)
        values[name] = values.get(name, 0.0) + value
        le = re.search(r'le="([^"]+)"', match.group(2) or "")
        if name.endswith("_bucket") and le:
            # A histogram's buckets, by bound: "name|bound" (summed over other labels).
            key = f"{name}|{le.group(1)}"
            values[key] = values.get(key, 0.0) + value
    return values or None


def histogram_ms(before: dict, after: dict, name: str) -> dict[str, float | None]:
    """p50 and p99 (ms) of a server histogram between two reads, interpolated in buckets."""
    prefix = f"{name}_bucket|"
    bounds = sorted(
        (float("inf") if key.endswith("+Inf") else float(key[len(prefix) :]), key)
        for key in after
        if key.startswith(prefix)
    )
    cumulative = [(bound, after[key] - before.get(key, 0.0)) for bound, key in bounds]
    total = cumulative[-1][1] if cumulative else 0.0
    out: dict[str, float | None] = {"count": total}
    for q in (50, 99):
        out[f"p{q}"] = None
        if not total:
            continue
        rank, low, below = total * q / 100, 0.0, 0.0
        for bound, count in cumulative:
            if count >= rank:
                if bound == float("inf"):
                    out[f"p{q}"] = round(low * 1000, 2)  # past the last bound: at least that
                else:
                    share = (rank - below) / (count - below) if count > below else 1.0
                    out[f"p{q}"] = round((low + (bound - low) * share) * 1000, 2)
                break
            low, below = bound, count
    return out


def metrics_delta(before: dict | None, after: dict | None) -> dict[str, Any]:
    """Differences of the counters named in the brief; queries per stored message."""
    names = (
        "teamchat_db_queries_total",
        "teamchat_messages_stored_total",
        "teamchat_events_delivered_total",
    )
    if before is None or after is None:
        return {"available": False}
    out: dict[str, Any] = {"available": True}
    for name in names:
        if name in before and name in after:
            out[name] = after[name] - before[name]
    out["teamchat_open_sockets"] = after.get("teamchat_open_sockets")
    queries = out.get("teamchat_db_queries_total")
    stored = out.get("teamchat_messages_stored_total")
    out["queries_per_message"] = round(queries / stored, 2) if queries and stored else None
    # Inside the server: publish -> frame handed to the last local socket, and
    # the global ordering lock. Far below the clients' latency, the rest of the
    # time is spent after the server wrote (socket buffers, the generator).
    out["server_fanout_ms"] = histogram_ms(before, after, "teamchat_fanout_latency_seconds")
    out["order_lock_wait_ms"] = histogram_ms(before, after, "teamchat_order_lock_wait_seconds")
    out["order_lock_held_ms"] = histogram_ms(before, after, "teamchat_order_lock_held_seconds")
    # A group commit's whole trip: the hop to the database thread and the wait
    # for it, the access checks, the ordered commit and the publish.
    out["commit_ms"] = histogram_ms(before, after, "teamchat_commit_seconds")
    out["gc_pauses"] = gc_pauses(before, after)
    return out


def gc_pauses(before: dict, after: dict) -> dict[str, float]:
    """The server's garbage collections between two reads: count, total, how many took 50 ms+."""
    name = "teamchat_gc_pause_seconds"
    count = after.get(f"{name}_count", 0.0) - before.get(f"{name}_count", 0.0)
    short = after.get(f"{name}_bucket|0.05", 0.0) - before.get(f"{name}_bucket|0.05", 0.0)
    total = after.get(f"{name}_sum", 0.0) - before.get(f"{name}_sum", 0.0)
    return {"count": count, "seconds": round(total, 3), "over_50ms": count - short}


class DatabaseActivity:
    """PostgreSQL's running totals (checkpoint buffers written, WAL bytes and full-page
    images), read over one connection kept open for the run: no new backend per reading."""

    def __init__(self) -> None:
        import psycopg

        try:
            self._conn: Any = psycopg.connect(
                ORG_URL.replace("postgres://", "postgresql://"), autocommit=True
            )
        except Exception:
            self._conn = None

    def read(self) -> dict[str, float] | None:
        if self._conn is None:
            return None
        try:
            written, checkpoints = self._conn.execute(
                "SELECT buffers_checkpoint, checkpoints_timed + checkpoints_req "
                "FROM pg_stat_bgwriter"
            ).fetchone()
            wal_bytes, fpi = self._conn.execute(
                "SELECT wal_bytes, wal_fpi FROM pg_stat_wal"
            ).fetchone()
        except Exception:
            return None
        return {
            "checkpoint_buffers": float(written),
            "checkpoints": float(checkpoints),
            "wal_bytes": float(wal_bytes),
            "wal_fpi": float(fpi),
        }

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def add_window_readings(
    series: list[dict], readings: list[tuple[float, Any, Any]], slow: dict[str, Any], t0: float
) -> None:
    """Per window of `series`: what the server and PostgreSQL did in it, and the live tail.

    `readings` are (time, /metrics, DatabaseActivity.read()) taken at each
    window's edges; `slow["by_window"]` the 99th percentile over the
    messages sent in each window of their slowest delivery.
    """
    tails = slow.get("by_window") or []
    for i, row in enumerate(series):
        if i < len(tails):
            row["slowest_p99_ms"] = tails[i]
        if i + 1 >= len(readings):
            continue
        (_, m0, d0), (_, m1, d1) = readings[i], readings[i + 1]
        if m0 is not None and m1 is not None:
            row["commit_p99_ms"] = histogram_ms(m0, m1, "teamchat_commit_seconds")["p99"]
            row["lock_held_p99_ms"] = histogram_ms(m0, m1, "teamchat_order_lock_held_seconds")[
                "p99"
            ]
            row["fanout_p99_ms"] = histogram_ms(m0, m1, "teamchat_fanout_latency_seconds")["p99"]
            row["gc_s"] = gc_pauses(m0, m1)["seconds"]
        if d0 is not None and d1 is not None:
            row["checkpoint_buffers"] = int(d1["checkpoint_buffers"] - d0["checkpoint_buffers"])
            row["checkpoints"] = int(d1["checkpoints"] - d0["checkpoints"])
            row["wal_mib"] = round((d1["wal_bytes"] - d0["wal_bytes"]) / 2**20, 1)
            row["wal_fpi"] = int(d1["wal_fpi"] - d0["wal_fpi"])


def sampler_series(sampler: ProcessSampler, start: float, end: float, step: float) -> list[dict]:
    """Server CPU % and RSS (MiB), and the machine's CPU %, every `step` s between start and end."""
    with sampler._lock:
        rows = [s for s in sampler.samples if start - sampler.interval <= s[0] <= end + 1]
    out = []
    edge = start
    while edge < end - 1e-6 and rows:
        inside = [r for r in rows if edge <= r[0] <= min(edge + step, end) + 1e-6]
        if len(inside) >= 2:
            first, last = inside[0], inside[-1]
            span = last[0] - first[0]
            out.append(
                {
                    "t_s": round(edge - start + step / 2, 1),
                    "cpu_pct": round(100 * (last[1] - first[1]) / span, 1) if span else None,
                    "rss_mib": mib(sum(r[2] for r in inside) / len(inside)),
                    "machine_cpu_pct": (
                        round(100 * (last[3] - first[3]) / (last[4] - first[4]), 1)
                        if last[4] > first[4]
                        else None
                    ),
                }
            )
        edge += step
    return out


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


class OrgBench:
    """The org-scale scenarios, on the target teamchat-pg-redis; `bench` is run.py's Bench."""

    def __init__(self, bench: Any, plan: OrgPlan, *, server_env: Any, pg_admin: str) -> None:
        self.bench = bench
        self.plan = plan
        self.server_env = server_env
        self.pg_admin = pg_admin

    # --- helpers -------------------------------------------------------------

    def _dataset(self, spec: Any, users: int) -> Org:
        """A fresh database holding an organization of `users` people."""
        import psycopg

        with psycopg.connect(self.pg_admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {ORG_DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {ORG_DATABASE}")
        out_path = TMP / f"org-{users}.json"
        cmd = [PY, str(BENCH / "prepare_org.py"), "--users", str(users)]
        cmd += ["--seed", str(self.plan.seed), "--out", str(out_path)]
        env = {**self.server_env(spec, self.bench.secret, "bench-prepare"), "DATABASE_URL": ORG_URL}
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode:
            raise RuntimeError(f"prepare_org failed:\n{done.stdout}\n{done.stderr}")
        # Statistics, as autovacuum would have gathered them for an organization
        # that has been running for a while (it may be off on a bench machine,
        # and a freshly loaded table has none).
        with psycopg.connect(
            ORG_URL.replace("postgres://", "postgresql://"), autocommit=True
        ) as conn:
            conn.execute("VACUUM ANALYZE")
        data = json.loads(out_path.read_text())
        rooms = data["rooms"]
        rooms_of: list[list[int]] = [[] for _ in range(users)]
        for r, room in enumerate(rooms):
            for u in room["members"]:
                rooms_of[u].append(r)
        return Org(
            users=users,
            keys=data["keys"],
            slugs=[room["slug"] for room in rooms],
            members=[room["members"] for room in rooms],
            kinds=[room["kind"] for room in rooms],
            rooms_of=[tuple(r) for r in rooms_of],
            prepare=json.loads(done.stdout.strip().splitlines()[-1]),
        )

    def _server(
        self, spec: Any, tag: str, extra_env: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        env = {"DATABASE_URL": ORG_URL, **(extra_env or {})}
        return self.bench._server(spec, tag, env=env, **kwargs)

    def _latest_seq(self) -> int | None:
        """The newest event's seq, as the room page embeds it; None if it cannot be read."""
        import psycopg

        try:
            with psycopg.connect(ORG_URL.replace("postgres://", "postgresql://")) as conn:
                return int(
                    conn.execute("SELECT COALESCE(MAX(seq), 0) FROM chat_event").fetchone()[0]
                )
        except Exception as exc:
            log(f"  could not read the latest seq ({exc}); clients connect without ?seq=")
            return None

    def _clients(self, org: Org) -> list[SockSpec]:
        return [
            SockSpec(i, org.keys[i], 0, org.rooms_of[i], org.subs(i, self.plan.subs))
            for i in range(org.users)
        ]

    @staticmethod
    def _finish_server(out: dict[str, Any], server: Any, sampler: ProcessSampler | None) -> None:
        if sampler is not None:
            sampler.stop()
            out["server_peak_rss_mib"] = mib(max(sampler.peak_rss(), sampler.vm_hwm() or 0))
        out["server_exit"] = server.stop()
        out["log"] = server.log_summary()

    def _message_plan(
        self,
        org: Org,
        gen: OrgGenerator,
        *,
        total: int,
        rate: float,
        t0: float,
        rooms: list[int],
        sender_of: Any,
        seed: int,
    ) -> tuple[list[bytes], array.array]:
        """Per worker: (due, index, sender socket, room) quadruples; the room of every message.

        Messages are spread uniformly over `rooms`; the sender is `sender_of(room, rng)`.
        """
        rng = random.Random(seed)
        shares = [array.array("d") for _ in range(gen.workers)]
        room_of = array.array("H")
        for index in range(total):
            room = rng.choice(rooms)
            sock = sender_of(room, rng)
            shares[gen.worker_of[sock]].extend((t0 + index / rate, index, sock, room))
            room_of.append(room)
        return [s.tobytes() for s in shares], room_of

    def _acks_and_finish(
        self,
        gen: OrgGenerator,
        room_of: array.array,
        *,
        t_end: float,
        until: float | None = None,
        drain: float = 10.0,
        caught_up: bool = False,
        t_restart: float = 0.0,
        org: Org | None = None,
        window: tuple[float, float] | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
        """At most 10 s for the echoes; then until `until` (or for `drain` s) for deliveries.

        With `org`, also where the tail of the live latency is (`slow_moments`),
        and with `window` (start, step) that tail in each window of the run.
        """
        import numpy as np

        acks = gen.call({"cmd": "acks", "until": t_end + 10}, timeout=t_end + 10 - time.time() + 60)
        if until is None:
            until = time.time() + drain
        acked = np.zeros(len(room_of), dtype=np.uint8)
        sent_at = np.zeros(len(room_of), dtype=np.float64)
        for r in acks:
            acked |= np.frombuffer(r["acked"], dtype=np.uint8)
            sent_at = np.maximum(sent_at, np.frombuffer(r["sent_at"], dtype=np.float64))
        finished = gen.call(
            {
                "cmd": "finish",
                "acked": acked.tobytes(),
                "rooms_of": room_of.tobytes(),
                "sent_at": sent_at.tobytes(),
                "until": until,
                "caught_up": caught_up,
                "t_restart": t_restart,
            },
            timeout=until - time.time() + 120,
        )
        slowest = np.max([np.frombuffer(r.pop("slowest"), dtype=np.float32) for r in finished], 0)
        summary = merge_counts(finished)
        summary["sent_counts"] = summary.pop("sent")  # what the sockets sent, by kind
        if org is not None:
            sizes = [len(members) for members in org.members]
            rooms = np.frombuffer(room_of.tobytes(), dtype=np.uint16)
            summary["slow_moments"] = slow_moments(slowest, sent_at, rooms, sizes, window=window)
        summary.update(
            sent=int((sent_at > 0).sum()),
            acked=int(acked.sum()),
            unacked=sum(len(r["unacked"]) for r in acks),
            sockets=sum(r["sockets"] for r in finished),
            open_at_end=sum(r["open"] for r in finished),
            expected=sum(r["expected"] for r in finished),
            delivered=sum(r["delivered"] for r in finished),
            lost=sum(r["lost"] for r in finished),
            lost_sockets=sum(r["lost_sockets"] for r in finished),
            delivered_not_acked=sum(r["delivered_not_acked"] for r in finished),
            not_caught_up=sum(r["not_caught_up"] for r in finished),
        )
        return summary, finished, sent_at

    @staticmethod
    def _gen_marks(out: dict[str, Any], cores: int) -> None:
        cpu = out.get("generator_cpu_pct")
        lag = (out.get("loop_lag_ms") or {}).get("p99")
        out["generator_saturated"] = bool(
            (cpu is not None and cpu > 90 * cores) or (lag is not None and lag > 50)
        )

    # --- G: connect storm --------------------------------------------------------

    def scenario_g(self, spec: Any) -> dict[str, Any]:
        p = self.plan
        out: dict[str, Any] = {"target": spec.name, "sizes": []}
        for users in p.storm_sizes:
            log(f"  G: connect storm, {users} users")
            try:
                run = self._storm(spec, users)
            except (RuntimeError, TimeoutError, OSError) as exc:
                log(f"  G {users}: failed: {exc}")
                out["sizes"].append({"users": users, "error": f"{type(exc).__name__}: {exc}"})
                continue
            log(f"  G {users}: {storm_line(run)}")
            out["sizes"].append(run)
        done = [r for r in out["sizes"] if "presence_frames" in r]
        if len(done) >= 2:
            # Linear growth in people means frames per person do not grow with the
            # crowd (batching may make them fall: more arrivals share a frame).
            ordered = sorted(done, key=lambda r: r["users"])
            low = ordered[0]["presence_frames_per_user"]
            high = ordered[-1]["presence_frames_per_user"]
            out["presence_frames_per_user_spread"] = round(high / low, 2) if low else None
            out["linear"] = bool(low and high / low <= 1.5)
        out["pass"] = (
            bool(done) and all(r.get("pass") for r in out["sizes"]) and out.get("linear", True)
        )
        out["goal"] = (
            "all open within 1.5 s (1,000) .. 10 s (5,000), none refused or closed; "
            "presence frames per user at the largest size <= 1.5x those at the smallest"
        )
        return out

    def _storm(self, spec: Any, users: int) -> dict[str, Any]:
        p = self.plan
        org = self._dataset(spec, users)
        server = self._server(spec, f"G-{users}")
        sampler = ProcessSampler(server.pid)
        gen = None
        out: dict[str, Any] = {"users": users, "machine_before": server.quiet, "org": org.prepare}
        try:
            seq = self._latest_seq()
            gen = OrgGenerator(
                [(server.url, server.origin)], org.slugs, self._clients(org), p.workers
            )
            before = read_metrics(server.port)
            start = time.time() + 2.0
            gen.begin(token="", total=0, t_base=start)
            out["connect"] = c = gen.connect_org(
                concurrency=None,
                start_at=start,
                open_timeout=p.storm_timeout_s,
                phase_timeout=p.storm_timeout_s + 5,
                seq=seq,
            )
            last = c["last_open"] or time.time()
            window_end = last + p.storm_after_s
            time.sleep(max(0.0, window_end - time.time()))
            ended = gen.call({"cmd": "end"}, timeout=60)
            counts = merge_counts(ended)
            resumed_at = max((r["last_resumed"] for r in ended), default=0.0)
            out["metrics"] = metrics_delta(before, read_metrics(server.port))
            out["after"] = status = gen.status()
            out["storm_server"] = sampler.window(start, window_end)
            gen.close_sockets()
        finally:
            if gen is not None:
                gen.shutdown()
            self._finish_server(out, server, sampler)
        refused = sum(c["failed"].values())
        closed = sum(status["closed_by_server"].values())
        all_open = round(last - start, 3) if c["ok"] else None
        out.update(
            seq=seq,
            connected=c["ok"],
            refused=refused,
            refused_by_kind=c["failed"],
            closed_after_open=closed,
            closed_by_code=status["closed_by_server"],
            all_open_s=all_open,
            all_resumed_s=round(resumed_at - start, 3) if counts["resumed"] == users else None,
            goal_s=storm_goal_s(users),
            window_s=round(window_end - start, 2),
            presence_frames=counts["presence_frames"],
            presence_entries=counts["presence_entries"],
            presence_frames_per_user=round(counts["presence_frames"] / users, 2),
            presence_entries_per_user=round(counts["presence_entries"] / users, 2),
            presence_max_per_socket_s=counts["presence_max_per_s"],
            frames=counts["frames"],
            errors=counts["errors"],
            resumed=counts["resumed"],
            generator_cpu_pct=counts["generator_cpu_pct"],
            loop_lag_ms=counts["loop_lag_ms"],
            presence_sub_supported=not counts["errors"].get("unknown_type"),
        )
        self._gen_marks(out, min(p.workers, os.cpu_count() or 1))
        out["pass"] = (
            refused == 0
            and closed == 0
            and c["ok"] == users
            and all_open is not None
            and all_open <= out["goal_s"]
        )
        return out

    # --- H: restart storm ----------------------------------------------------------

    def scenario_h(self, spec: Any) -> dict[str, Any]:
        p = self.plan
        users = p.restart_users
        org = self._dataset(spec, users)
        prefix = self.bench.new_prefix()
        server_a = self._server(spec, f"H-{users}-a", prefix=prefix)
        server_b = self._server(spec, f"H-{users}-b", prefix=prefix, quiet=False)
        server_a2 = None
        sampler = ProcessSampler(server_a.pid)
        sampler2 = None
        gen = None
        out: dict[str, Any] = {
            "target": spec.name,
            "users": users,
            "machine_before": server_a.quiet,
            "org": org.prepare,
            "rate": p.restart_rate,
        }
        try:
            # One sending socket per room, on server B: the room's first member's.
            sender_users = sorted({members[0] for members in org.members})
            sender_sock = {u: users + k for k, u in enumerate(sender_users)}
            senders = [
                SockSpec(users + k, org.keys[u], 1, org.rooms_of[u], (), SENDER)
                for k, u in enumerate(sender_users)
            ]
            servers = [(server_a.url, server_a.origin), (server_b.url, server_b.origin)]
            gen = OrgGenerator(servers, org.slugs, self._clients(org) + senders, p.workers)
            seq = self._latest_seq()
            out["connect"] = gen.connect_org(
                concurrency=p.connect_concurrency, seq=seq, roles=[CLIENT], phase_timeout=600
            )
            out["connect_senders"] = gen.connect_org(
                concurrency=p.connect_concurrency, seq=seq, roles=[SENDER]
            )
            total = round(p.restart_rate * (p.restart_before_s + p.restart_after_s))
            t0 = time.time() + 2.0
            t_restart = t0 + p.restart_before_s
            t_end = t0 + total / p.restart_rate
            shares, room_of = self._message_plan(
                org,
                gen,
                total=total,
                rate=p.restart_rate,
                t0=t0,
                rooms=list(range(len(org.slugs))),
                sender_of=lambda room, _rng: sender_sock[org.members[room][0]],
                seed=p.seed + 7,
            )
            token = secrets.token_hex(4)
            gen.begin(token=token, total=total, t_base=t0, arrivals=True, auto_reconnect=True)
            gen.post(
                [
                    {
                        "cmd": "act",
                        "t0": t0,
                        "t_end": t_end,
                        "messages": share,
                        "body_size": p.body_size,
                    }
                    for share in shares
                ]
            )
            time.sleep(max(0.0, t_restart - time.time()))
            sigterm = time.time()
            server_a.proc.terminate()
            try:
                code = server_a.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server_a.proc.kill()
                code = server_a.proc.wait(timeout=10)
            exited = time.time()
            sampler.stop()
            out["old_server"] = {
                "exit_code": code,
                "exit_s": round(exited - sigterm, 3),
                "log": server_a.log_summary(),
            }
            server_a2 = self._server(
                spec, f"H-{users}-a2", prefix=prefix, port=server_a.port, quiet=False
            )
            listening = time.time()
            sampler2 = ProcessSampler(server_a2.pid)
            out["new_server_listening_s"] = round(listening - sigterm, 3)
            acts = gen.collect("act", timeout=t_end - time.time() + 90)
            summary, finished, _ = self._acks_and_finish(
                gen,
                room_of,
                t_end=t_end,
                until=sigterm + p.restart_wait_s,
                caught_up=True,
                t_restart=sigterm,
            )
            out["metrics_new_server"] = metrics_delta(
                {"teamchat_db_queries_total": 0.0, "teamchat_messages_stored_total": 0.0},
                read_metrics(server_a2.port),
            )
            out["new_server"] = sampler2.window(listening, time.time())
            out["after"] = gen.status()
            gen.close_sockets()
        finally:
            if gen is not None:
                gen.shutdown()
            sampler.stop()
            if server_a2 is not None:
                self._finish_server(out, server_a2, sampler2)
            server_a.stop()
            server_b.stop()
            out["log_b"] = server_b.log_summary()
        catch_up = [x for r in finished for x in r["catch_up_s"]]
        clients = summary["sockets"]
        out.update(summary)
        queries = out["metrics_new_server"].get("teamchat_db_queries_total")
        reconnects = out["attempts"].get("ok")
        out["queries_per_reconnect"] = (
            round(queries / reconnects, 2) if queries and reconnects else None
        )
        out.update(
            send_lateness_ms=percentiles([x for r in acts for x in r["lateness"]], 1000),
            caught_up=len(catch_up),
            catch_up_s=percentiles(catch_up),
            all_caught_up_s=round(max(catch_up), 3)
            if catch_up and len(catch_up) == clients
            else None,
            generator_cpu_pct=round(sum(r["cpu_s"] / r["wall_s"] for r in acts) * 100, 1),
        )
        self._gen_marks(out, min(p.workers, os.cpu_count() or 1))
        out["pass"] = (
            out["lost"] == 0
            and out["duplicates"] == 0
            and out["seq_regressions"] == 0
            and out["unacked"] == 0
            and out["not_caught_up"] == 0
            and out["caught_up"] == clients
        )
        out["goal"] = "every client ends with every message of its rooms exactly once"
        return out

    # --- I: floods -------------------------------------------------------------------

    def scenario_i(self, spec: Any) -> dict[str, Any]:
        p = self.plan
        org = self._dataset(spec, p.flood_org_users)
        channels = [r for r in range(1, len(org.slugs)) if org.kinds[r] == "channel"]
        room = min(channels, key=lambda r: abs(len(org.members[r]) - p.flood_room_size))
        flooder, others = org.members[room][0], org.members[room][1:]
        specs = [SockSpec(u, org.keys[u], 0, org.rooms_of[u]) for u in others]
        flooders = [
            SockSpec(org.users + k, org.keys[flooder], 0, org.rooms_of[flooder], (), FLOODER)
            for k in range(p.flood_sockets)
        ]
        # The flood meets the product's own per-socket frame limit (the
        # load generators elsewhere are let past it, as past the send limit).
        server = self._server(
            spec,
            f"I-{org.users}",
            extra_env={"CHAT_SOCKET_FRAME_RATE": "100", "CHAT_SOCKET_FRAME_BURST": "200"},
        )
        sampler = ProcessSampler(server.pid)
        gen = None
        out: dict[str, Any] = {
            "target": spec.name,
            "room": org.slugs[room],
            "room_size": len(org.members[room]),
            "senders": len(others),
            "flooder_sockets": p.flood_sockets,
            "machine_before": server.quiet,
        }
        try:
            # The flooder in a process of its own, as it would be another machine.
            gen = OrgGenerator(
                [(server.url, server.origin)], org.slugs, specs, p.workers, apart=flooders
            )
            seq = self._latest_seq()
            out["connect"] = gen.connect_org(concurrency=p.connect_concurrency, seq=seq)
            time.sleep(2.0)
            flood = {
                "room": room,
                "read_rate": p.flood_read_rate / p.flood_sockets,
                "typing_rate": p.flood_typing_rate / p.flood_sockets,
            }
            for phase, flooding in (("baseline", None), ("flood", flood)):
                out[phase] = self._flood_phase(gen, org, room, others, sampler, server, flooding)
                log(f"  I {phase}: {flood_line(out[phase])}")
            out["after"] = gen.status()
            gen.close_sockets()
        finally:
            if gen is not None:
                gen.shutdown()
            self._finish_server(out, server, sampler)
        base = out["baseline"]["ack_latency_ms"]["p99"]
        flooded = out["flood"]["ack_latency_ms"]["p99"]
        out["p99_ratio"] = round(flooded / base, 2) if base and flooded else None
        out["pass"] = (
            out["p99_ratio"] is not None
            and out["p99_ratio"] <= p.flood_factor
            and all(out[k]["lost"] == 0 and out[k]["unacked"] == 0 for k in ("baseline", "flood"))
        )
        out["goal"] = f"senders' round-trip p99 under the flood within {p.flood_factor:g}x unloaded"
        return out

    def _flood_phase(
        self,
        gen: OrgGenerator,
        org: Org,
        room: int,
        senders: list[int],
        sampler: ProcessSampler,
        server: Any,
        flood: dict[str, Any] | None,
    ) -> dict[str, Any]:
        p = self.plan
        total = round(p.flood_msg_rate * p.flood_duration)
        t0 = time.time() + 1.0
        t_end = t0 + p.flood_duration
        shares, room_of = self._message_plan(
            org,
            gen,
            total=total,
            rate=p.flood_msg_rate,
            t0=t0,
            rooms=[room],
            sender_of=lambda _room, rng: rng.choice(senders),
            seed=p.seed + (11 if flood else 13),
        )
        gen.begin(token=secrets.token_hex(4), total=total, t_base=t0)
        before = read_metrics(server.port)
        acts = gen.call(
            [
                {
                    "cmd": "act",
                    "t0": t0,
                    "t_end": t_end,
                    "messages": share,
                    "body_size": p.body_size,
                    "flood": flood,
                }
                for share in shares
            ],
            timeout=t_end - time.time() + 90,
        )
        after = read_metrics(server.port)
        summary, _, _ = self._acks_and_finish(gen, room_of, t_end=t_end, drain=p.drain_s)
        sent = summary["sent_counts"]
        summary.update(
            duration_s=p.flood_duration,
            msg_rate=p.flood_msg_rate,
            flood_read_per_s=round(sent.get("flood_read", 0) / p.flood_duration, 1),
            flood_typing_per_s=round(sent.get("flood_typing", 0) / p.flood_duration, 1),
            server=sampler.window(t0, t_end),
            metrics=metrics_delta(before, after),
            generator_cpu_pct=round(sum(r["cpu_s"] / r["wall_s"] for r in acts) * 100, 1),
            send_lateness_ms=percentiles([x for r in acts for x in r["lateness"]], 1000),
        )
        summary["machine_cpu_pct"] = summary["server"].pop("machine_cpu_pct", None)
        self._gen_marks(summary, min(p.workers, os.cpu_count() or 1))
        return summary

    # --- J and K: an organization's day ---------------------------------------------------

    def scenario_j(self, spec: Any) -> dict[str, Any]:
        p = self.plan
        out = self._day(spec, p.day_users, p.day_duration, f"J-{p.day_users}")
        out["target"] = spec.name
        return out

    def scenario_k(self, spec: Any) -> dict[str, Any]:
        p = self.plan
        out: dict[str, Any] = {"target": spec.name, "sizes": []}
        for users in p.growth_sizes:
            log(f"  K: the day at {users} users for {p.growth_duration:g} s")
            try:
                run = self._day(spec, users, p.growth_duration, f"K-{users}")
            except (RuntimeError, TimeoutError, OSError) as exc:
                log(f"  K {users}: failed: {exc}")
                out["sizes"].append({"users": users, "error": f"{type(exc).__name__}: {exc}"})
                continue
            out["sizes"].append(run)
        out["pass"] = bool(out["sizes"]) and all(r.get("pass") for r in out["sizes"])
        return out

    def _day(self, spec: Any, users: int, duration: float, tag: str) -> dict[str, Any]:
        p = self.plan
        scale = users / REFERENCE_USERS
        rates = {
            "messages": p.day_msg_rate * scale,
            "typing": p.day_msg_rate * scale,
            "reads": p.day_read_rate * scale,
            "presence": p.day_presence_rate * scale,
            "reconnects": p.day_reconnect_rate * scale,
        }
        org = self._dataset(spec, users)
        server = self._server(spec, tag)
        sampler = ProcessSampler(server.pid, interval=0.5, max_seconds=duration + 1800)
        gen = None
        out: dict[str, Any] = {
            "users": users,
            "duration_s": duration,
            "rates": {k: round(v, 2) for k, v in rates.items()},
            "rooms": len(org.slugs),
            "room_choice": "uniform over rooms; sender uniform over the room's members",
            "machine_before": server.quiet,
            "org": org.prepare,
        }
        try:
            gen = OrgGenerator(
                [(server.url, server.origin)], org.slugs, self._clients(org), p.workers
            )
            seq = self._latest_seq()
            out["connect"] = gen.connect_org(
                concurrency=p.connect_concurrency, seq=seq, phase_timeout=900
            )
            time.sleep(3.0)
            total = max(1, round(rates["messages"] * duration))
            t0 = time.time() + 3.0
            t_end = t0 + duration
            shares, room_of = self._message_plan(
                org,
                gen,
                total=total,
                rate=rates["messages"],
                t0=t0,
                rooms=list(range(len(org.slugs))),
                sender_of=lambda room, rng: rng.choice(org.members[room]),
                seed=p.seed + 3,
            )
            gen.begin(token=secrets.token_hex(4), total=total, t_base=t0)
            workers = gen.workers
            gen.post(
                [
                    {
                        "cmd": "act",
                        "t0": t0,
                        "t_end": t_end,
                        "messages": share,
                        "typing": True,
                        "body_size": p.body_size,
                        "reads_per_s": rates["reads"] / workers,
                        "presence_per_s": rates["presence"] / workers,
                        "reconnects_per_s": rates["reconnects"] / workers,
                    }
                    for share in shares
                ]
            )
            time.sleep(max(0.0, t0 - time.time()))
            database = DatabaseActivity()
            readings = [(time.time(), read_metrics(server.port), database.read())]
            while time.time() < t_end - 1e-3:
                time.sleep(max(0.0, min(t0 + len(readings) * p.day_sample_s, t_end) - time.time()))
                readings.append((time.time(), read_metrics(server.port), database.read()))
            database.close()
            before, after = readings[0][1], readings[-1][1]
            acts = gen.collect("act", timeout=90)
            summary, _, _ = self._acks_and_finish(
                gen, room_of, t_end=t_end, drain=p.drain_s, org=org, window=(t0, p.day_sample_s)
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
        out.update(summary)
        frames: dict[str, int] = {}
        for r in acts:
            for kind, n in r["frames"].items():
                frames[kind] = frames.get(kind, 0) + n
        span = max(r["wall_s"] for r in acts)
        out["frames_per_s"] = {k: round(n / span, 1) for k, n in sorted(frames.items())}
        out["frames_per_s_total"] = round(sum(frames.values()) / span, 1)
        out["presence_entries_per_s"] = round(sum(r["presence_entries"] for r in acts) / span, 1)
        out["generator_cpu_pct"] = round(sum(r["cpu_s"] / r["wall_s"] for r in acts) * 100, 1)
        out["send_lateness_ms"] = percentiles([x for r in acts for x in r["lateness"]], 1000)
        out["server"] = sampler.window(t0, t_end)
        out["machine_cpu_pct"] = out["server"].pop("machine_cpu_pct")
        out["series"] = sampler_series(sampler, t0, t_end, p.day_sample_s)
        add_window_readings(out["series"], readings, out.get("slow_moments", {}), t0)
        out["rss_growth"] = rss_growth(sampler, t0, t_end)
        out["metrics"] = metrics_delta(before, after)
        self._gen_marks(out, min(p.workers, os.cpu_count() or 1))
        p99 = out["latency_ms"]["p99"]
        growth = out["rss_growth"].get("growth_pct")
        out["pass"] = (
            out["lost"] == 0
            and out["duplicates"] == 0
            and out["seq_regressions"] == 0
            and out["unacked"] == 0
            and p99 is not None
            and p99 <= p.day_p99_ms
            and (growth is None or growth <= p.day_rss_growth_pct)
        )
        out["goal"] = (
            f"0 lost, 0 duplicated, live p99 <= {p.day_p99_ms:g} ms, "
            f"RSS growth first->last minute <= {p.day_rss_growth_pct:g} %"
        )
        log(f"  {tag}: {day_line(out)}")
        return out


def rss_growth(sampler: ProcessSampler, start: float, end: float) -> dict[str, Any]:
    """Average RSS over the first and the last minute (thirds, for runs under 3 minutes)."""
    span = min(60.0, (end - start) / 3)
    with sampler._lock:
        first = [s[2] for s in sampler.samples if start <= s[0] <= start + span]
        last = [s[2] for s in sampler.samples if end - span <= s[0] <= end]
    if not first or not last:
        return {"span_s": span}
    a, b = sum(first) / len(first), sum(last) / len(last)
    return {
        "span_s": round(span, 1),
        "first_mib": mib(a),
        "last_mib": mib(b),
        "growth_pct": round(100 * (b - a) / a, 2),
    }


# --------------------------------------------------------------------------
# One-line summaries
# --------------------------------------------------------------------------


def fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _verdict(out: dict[str, Any]) -> str:
    return "PASS" if out.get("pass") else "FAIL"


def storm_line(r: dict[str, Any]) -> str:
    hs = r["connect"]["handshake_ms"]
    return (
        f"{r['connected']}/{r['users']} open in {fmt(r['all_open_s'], 2)} s "
        f"(goal {r['goal_s']:g} s), refused {r['refused']}, closed {r['closed_after_open']}, "
        f"handshake p50 {fmt(hs['p50'], 0)} p99 {fmt(hs['p99'], 0)} ms, presence "
        f"{r['presence_frames']} frames / {r['presence_entries']} entries "
        f"({r['presence_frames_per_user']:g} per user), "
        f"max {r['presence_max_per_socket_s']}/socket/s {_verdict(r)}"
    )


def flood_line(r: dict[str, Any]) -> str:
    lat = r["ack_latency_ms"]
    return (
        f"round trip p50 {fmt(lat['p50'])} p99 {fmt(lat['p99'])} ms, "
        f"lost {r['lost']}, flood {r['flood_read_per_s']:g} read/s + "
        f"{r['flood_typing_per_s']:g} typing/s, answers {r['flood_answers']}"
    )


def day_line(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    slow = r.get("slow_moments") or {}
    worst = (slow.get("worst") or [{}])[0]
    return (
        f"{r['sent']} msgs, {r['delivered']}/{r['expected']} delivered, lost {r['lost']}, "
        f"dups {r['duplicates']}, live p50 {fmt(lat['p50'])} p99 {fmt(lat['p99'])} ms "
        f"(general p99 {fmt((r.get('general_latency_ms') or {}).get('p99'))}, "
        f"other rooms p99 {fmt((r.get('others_latency_ms') or {}).get('p99'))}), "
        f"{fmt(r['frames_per_s_total'], 0)} frames/s, "
        f"server CPU {fmt(r['server'].get('cpu_pct'))}%, "
        f"RSS growth {fmt(r['rss_growth'].get('growth_pct'))}%, "
        f"queries/msg {fmt(r['metrics'].get('queries_per_message'))}, "
        f"in the server p99 {fmt((r['metrics'].get('server_fanout_ms') or {}).get('p99'))} ms, "
        f"{slow.get('messages', '-')} msgs over 100 ms in {slow.get('moments', '-')} moments "
        f"(worst {fmt(worst.get('slowest_ms'))} ms at {fmt(worst.get('at_s'))} s) "
        f"{_verdict(r)}"
    )


def summary_line(scenario: str, out: dict[str, Any]) -> str:
    if scenario == "G":
        linear = "linear" if out.get("linear", True) else "NOT linear"
        opened = (
            "all sizes within their time goal"
            if all(r.get("pass") for r in out["sizes"])
            else "a size missed its time goal"
        )
        return (
            f"presence frames per user spread {out.get('presence_frames_per_user_spread')}"
            f" ({linear}), {opened}: {_verdict(out)}"
        )
    if scenario == "H":
        return (
            f"{out['caught_up']}/{out['sockets']} caught up, all in "
            f"{fmt(out['all_caught_up_s'], 2)} s after SIGTERM, lost {out['lost']}, dups "
            f"{out['duplicates']}, seq regressions {out['seq_regressions']}, unacked "
            f"{out['unacked']} {_verdict(out)}"
        )
    if scenario == "I":
        return f"round-trip p99 ratio {out.get('p99_ratio')} {_verdict(out)}"
    return _verdict(out)  # J and K: each day has had its line already
