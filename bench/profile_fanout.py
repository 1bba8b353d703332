"""What a profile change costs when everyone is connected: the `profile` event.

A profile change (a new name, picture or status) goes to every socket of
every server process, as one event row and one fan-out item. This starts a
fresh server (PostgreSQL + Redis, as the bench's other scenarios), connects
N authenticated sockets, then has one person change their title `--changes`
times at `--rate` per second over HTTP, and measures, at every socket, when
each change arrived (the title carries the time it was sent): delivery
p50/p99/max, deliveries against N x changes (nothing lost or doubled), the
frames each socket got, and the server's CPU per change. Run at several N to
see that the cost per change grows linearly with people.

    .venv/bin/python bench/profile_fanout.py --users 1000,2000,5000
    -> bench/results/profile_fanout.json and .md
"""

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
import websockets  # noqa: E402
from loadgen import percentiles, raise_fd_limit  # noqa: E402
from run import (  # noqa: E402
    BENCH,
    PY,
    RESULTS,
    ROOT,
    TARGETS,
    TMP,
    Server,
    reset_database,
    server_env,
)

ROOM = "bench-idle"


def prepare(users: int, secret: str) -> list[str]:
    """A fresh bench database with `users` people (all in one room) and their sessions."""
    reset_database("postgres")
    keys_path = TMP / "sessions-profile.json"
    keys_path.parent.mkdir(parents=True, exist_ok=True)
    spec = TARGETS["teamchat-pg-redis"]
    cmd = [PY, str(BENCH / "prepare.py"), "--users", str(users), "--room", f"{ROOM}:{users}"]
    cmd += ["--out", str(keys_path)]
    done = subprocess.run(
        cmd, cwd=ROOT, env=server_env(spec, secret, "bench-prepare"), capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"prepare failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(keys_path.read_text())


def patch_profile(server: Server, key: str, title: str) -> int:
    """PATCH /api/profile/ as the person with session `key` (CSRF: cookie and header)."""
    token = "b" * 32
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(
            "PATCH",
            "/api/profile/",
            body=json.dumps({"title": title}),
            headers={
                "Content-Type": "application/json",
                "Cookie": f"sessionid={key}; csrftoken={token}",
                "X-CSRFToken": token,
                "Origin": server.origin,
                "Referer": server.origin + "/",
            },
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


async def measure(server: Server, keys: list[str], changes: int, rate: float) -> dict[str, Any]:
    users = len(keys)
    latencies: list[float] = []
    got = [0] * users
    frames = [0] * users
    seen: list[set[str]] = [set() for _ in range(users)]
    duplicates = 0
    opened = asyncio.Event()
    count_open = 0
    stop = asyncio.Event()
    all_in = asyncio.Event()
    delivered = 0

    async def client(i: int) -> None:
        nonlocal count_open, duplicates, delivered
        headers = {"Cookie": f"sessionid={keys[i]}"}
        async with websockets.connect(
            server.url, origin=server.origin, additional_headers=headers, max_queue=None,
            open_timeout=120, ping_interval=None,
        ) as ws:  # fmt: skip
            count_open += 1
            if count_open == users:
                opened.set()
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                frames[i] += 1
                event = json.loads(text)
                if event.get("type") != "profile" or not event.get("title", "").startswith("t="):
                    continue
                if event["title"] in seen[i]:
                    duplicates += 1
                    continue
                seen[i].add(event["title"])
                got[i] += 1
                latencies.append(time.time() - float(event["title"][2:]))
                delivered += 1
                if delivered == users * changes:
                    all_in.set()

    tasks = []
    t_connect = time.monotonic()
    for i in range(users):
        tasks.append(asyncio.create_task(client(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # a steady arrival, not a storm: this measures changes
    await asyncio.wait_for(opened.wait(), timeout=300)
    connected_s = time.monotonic() - t_connect
    await asyncio.sleep(2)  # presence settles before the changes start
    for i in range(users):
        frames[i] = 0

    proc = psutil.Process(server.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    for n in range(changes):
        due = t0 + n / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        status = await asyncio.to_thread(patch_profile, server, keys[0], f"t={time.time():.6f}")
        assert status == 200, status
    try:
        await asyncio.wait_for(all_in.wait(), timeout=30)
    except TimeoutError:
        pass  # counted as lost below
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    expected = users * changes
    return {
        "users": users,
        "changes": changes,
        "rate_per_s": rate,
        "connected_s": round(connected_s, 2),
        "delivered": sum(got),
        "expected": expected,
        "lost": expected - sum(got),
        "duplicates": duplicates,
        "latency_ms": percentiles(latencies, 1000.0),
        "frames_per_socket_max": max(frames),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_change": round(cpu * 1000 / changes, 1),
        "server_cpu_us_per_delivery": round(cpu * 1e6 / max(1, sum(got)), 1),
    }


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Profile changes to everyone (bench/profile_fanout.py)",
        "",
        "One server process, PostgreSQL + Redis, loopback; one person changes their",
        "title; every connected socket must receive every change once.",
        "",
        "| users | changes | delivered / expected | lost | dup | p50 ms | p99 ms | max ms "
        "| server CPU ms per change | µs per delivery |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['users']} | {r['changes']} | {r['delivered']} / {r['expected']} | {r['lost']} "
            f"| {r['duplicates']} | {lat['p50']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} "
            f"| {r['server_cpu_ms_per_change']} | {r['server_cpu_us_per_delivery']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1000,2000", help="comma-separated sizes")
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--rate", type=float, default=2.0, help="changes per second")
    parser.add_argument("--name", default="profile_fanout")
    args = parser.parse_args()
    raise_fd_limit()
    secret = "bench-" + os.urandom(32).hex()
    results = []
    for users in (int(n) for n in args.users.split(",")):
        keys = prepare(users, secret)
        spec = TARGETS["teamchat-pg-redis"]
        env = server_env(spec, secret, f"bench-profile-{users}")
        # Loopback HTTP: the production redirect to HTTPS would answer every change 301.
        env["SECURE_SSL_REDIRECT"] = "false"
        server = Server(spec, f"profile-{users}", env)
        try:
            result = asyncio.run(measure(server, keys, args.changes, args.rate))
        finally:
            server.stop()
        print(json.dumps(result), flush=True)
        results.append(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
