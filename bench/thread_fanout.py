"""What a thread reply costs when the whole room is connected: `thread` and `thread_read`.

A reply is a message of its room, and its root's summary (reply count, last
reply, latest repliers) changes for everyone who sees the room: each reply
sends the room one `message` and one `thread` event, and each follower of
the thread (the replier included) one `thread_read` with their exact counts.
This starts a fresh server (PostgreSQL + Redis), connects N authenticated
members of one room, has one person post a root, then `--repliers` people
reply in turn, `--replies` times in all at `--rate` per second over their
sockets, and measures at every socket when each reply's `thread` summary
arrived (matched by its reply count): p50/p99/max, deliveries against
N x replies (nothing lost or doubled), the `thread_read` events the
followers got against what they should get, and the server's CPU per reply
and per delivered frame. Run at several N to see the cost grow linearly.

    .venv/bin/python bench/thread_fanout.py --users 1000,2000,5000
    -> bench/results/thread_fanout.json and .md
"""

import argparse
import asyncio
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

ROOM = "bench-threads"


def prepare(users: int, secret: str) -> list[str]:
    """A fresh bench database with `users` people (all in one room) and their sessions."""
    reset_database("postgres")
    keys_path = TMP / "sessions-threads.json"
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


async def measure(
    server: Server, keys: list[str], replies: int, repliers: int, rate: float
) -> dict[str, Any]:
    users = len(keys)
    latencies: list[float] = []
    got = [0] * users
    frames = [0] * users
    thread_reads = [0] * users
    seen: list[set[int]] = [set() for _ in range(users)]
    duplicates = 0
    count_open = 0
    opened = asyncio.Event()
    stop = asyncio.Event()
    all_in = asyncio.Event()
    delivered = 0
    sent_at: dict[int, float] = {}  # reply count -> when the reply that makes it was sent
    root_id: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    sockets: list[Any] = [None] * users

    async def client(i: int) -> None:
        nonlocal count_open, duplicates, delivered
        headers = {"Cookie": f"sessionid={keys[i]}"}
        async with websockets.connect(
            server.url, origin=server.origin, additional_headers=headers, max_queue=None,
            open_timeout=120, ping_interval=None,
        ) as ws:  # fmt: skip
            sockets[i] = ws
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
                kind = event.get("type")
                if kind == "message" and i == 0 and event.get("nonce") == "root":
                    if not root_id.done():
                        root_id.set_result(event["id"])
                elif kind == "thread_read":
                    thread_reads[i] += 1
                elif kind == "thread" and root_id.done() and event.get("root") == root_id.result():
                    count = event["replies"]
                    if count in seen[i]:
                        duplicates += 1
                        continue
                    seen[i].add(count)
                    got[i] += 1
                    if count in sent_at:
                        latencies.append(time.time() - sent_at[count])
                    delivered += 1
                    if delivered == users * replies:
                        all_in.set()
                elif kind == "error":
                    print("error:", event, flush=True)

    tasks = []
    t_connect = time.monotonic()
    for i in range(users):
        tasks.append(asyncio.create_task(client(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # a steady arrival, not a storm: this measures replies
    await asyncio.wait_for(opened.wait(), timeout=300)
    connected_s = time.monotonic() - t_connect
    await sockets[0].send(
        json.dumps({"type": "send", "room": ROOM, "body": "a root", "nonce": "root"})
    )
    root = await asyncio.wait_for(root_id, timeout=30)
    await asyncio.sleep(2)  # presence and the root's delivery settle before the replies
    for i in range(users):
        frames[i] = 0
        thread_reads[i] = 0

    proc = psutil.Process(server.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    for n in range(replies):
        due = t0 + n / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        author = 1 + n % repliers  # the root's author (0) follows; so does each replier
        sent_at[n + 1] = time.time()
        frame = {"type": "send", "room": ROOM, "body": f"reply {n}", "thread": root,
                 "nonce": f"r-{n}"}  # fmt: skip
        await sockets[author].send(json.dumps(frame))
    try:
        await asyncio.wait_for(all_in.wait(), timeout=30)
    except TimeoutError:
        pass  # counted as lost below
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    expected = users * replies
    # Every follower gets one thread_read per reply (the replier too: their
    # marker moves to their reply): the root's author and the repliers so far.
    followers_expected = sum(1 + min(n + 1, repliers) for n in range(replies))
    all_frames = sum(frames)
    return {
        "users": users,
        "replies": replies,
        "repliers": repliers,
        "rate_per_s": rate,
        "connected_s": round(connected_s, 2),
        "thread_delivered": sum(got),
        "thread_expected": expected,
        "lost": expected - sum(got),
        "duplicates": duplicates,
        "thread_read_delivered": sum(thread_reads),
        "thread_read_expected": followers_expected,
        "latency_ms": percentiles(latencies, 1000.0),
        "frames_per_socket_max": max(frames),
        "frames_total": all_frames,
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_reply": round(cpu * 1000 / replies, 1),
        "server_cpu_us_per_frame": round(cpu * 1e6 / max(1, all_frames), 1),
    }


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Thread replies to a whole room (bench/thread_fanout.py)",
        "",
        "One server process, PostgreSQL + Redis, loopback; everyone is a member of one",
        "room; people reply in one thread; every socket must receive each reply's",
        "`thread` summary once, and the thread's followers their `thread_read` counts.",
        "",
        "| users | replies | thread delivered / expected | lost | dup | thread_read got / expected "
        "| p50 ms | p99 ms | max ms | server CPU ms per reply | µs per frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['users']} | {r['replies']} | {r['thread_delivered']} / {r['thread_expected']} "
            f"| {r['lost']} | {r['duplicates']} "
            f"| {r['thread_read_delivered']} / {r['thread_read_expected']} "
            f"| {lat['p50']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} "
            f"| {r['server_cpu_ms_per_reply']} | {r['server_cpu_us_per_frame']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1000,2000", help="comma-separated sizes")
    parser.add_argument("--replies", type=int, default=30)
    parser.add_argument("--repliers", type=int, default=5)
    parser.add_argument("--rate", type=float, default=2.0, help="replies per second")
    parser.add_argument("--name", default="thread_fanout")
    args = parser.parse_args()
    raise_fd_limit()
    secret = "bench-" + os.urandom(32).hex()
    results = []
    for users in (int(n) for n in args.users.split(",")):
        keys = prepare(users, secret)
        spec = TARGETS["teamchat-pg-redis"]
        env = server_env(spec, secret, f"bench-threads-{users}")
        server = Server(spec, f"threads-{users}", env)
        try:
            result = asyncio.run(measure(server, keys, args.replies, args.repliers, args.rate))
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
