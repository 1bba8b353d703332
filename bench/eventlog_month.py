"""How big the event log grows, and what pruning it costs: a simulated month (and more).

    .venv/bin/python bench/eventlog_month.py [--per-day 200000] [--days 45] [--keep-days 30]
        -> bench/results/eventlog_month.md

Recreates the PostgreSQL database `teamchat_eventlog` (127.0.0.1, user
postgres), migrates it, and writes `--days` days of logged events at
`--per-day` a day, shaped like an organization's day (bench scenario J: per
message about four read-marker moves, plus reactions, edits and membership
changes), with the payloads those events carry. It reports the table and
index sizes, runs `manage.py prune_events`' code with the `--keep-days`
horizon in batches of 5,000, reports the sizes again and every batch's time
(each is its own transaction: the longest is the longest any lock is held),
then writes the days up to today and reports the sizes once more: the space
pruned is reused, so the table does not grow past the horizon's worth. Sizes
scale linearly with `--per-day`.
"""

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "teamchat_eventlog"
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
OUT = ROOT / "bench" / "results" / "eventlog_month.md"
SECRET = "eventlog-month-" + "k" * 40


def setup_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    env = {**os.environ, "DATABASE_URL": URL, "DJANGO_SECRET_KEY": SECRET, "REDIS_URL": ""}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(DATABASE_URL=URL, DJANGO_SECRET_KEY=SECRET, REDIS_URL="")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamchat.settings")
    import django

    django.setup()


def fill(per_day: int, first: int, last: int) -> float:
    """Events from `first` to `last` days ago, one INSERT ... SELECT a day. Seconds taken."""
    from django.db import connection

    from accounts.models import User
    from chat.models import Room

    users = list(User.objects.all()[:1]) or [User.objects.create(username="user0")]
    for i in range(1, 50):
        User.objects.get_or_create(username=f"user{i}")
    room, _ = Room.objects.get_or_create(slug="general-bench", defaults={"name": "general"})
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for day in range(first, last - 1, -1):
            # seq grows with time, as in the log; 1 in 6 a message, 4 in 6 a
            # read marker, the rest reactions, edits and memberships.
            cursor.execute(
                """
                INSERT INTO chat_event (kind, room_id, user_id, message_id, data, created)
                SELECT
                  CASE WHEN n %% 6 = 0 THEN 'message' WHEN n %% 6 < 5 THEN 'read'
                       WHEN n %% 12 = 5 THEN 'reaction' ELSE 'message_edited' END,
                  CASE WHEN n %% 6 BETWEEN 1 AND 4 THEN NULL ELSE %s END,
                  CASE WHEN n %% 6 BETWEEN 1 AND 4 THEN %s + (n %% 50) ELSE NULL END,
                  NULL,
                  CASE WHEN n %% 6 = 0 THEN '{}'::jsonb
                       WHEN n %% 6 < 5 THEN jsonb_build_object(
                         'room', 'general', 'last_read_id', n, 'unread', 0, 'mentions', 0)
                       ELSE jsonb_build_object(
                         'room', 'general', 'id', n, 'emoji', 'thumbs_up',
                         'users', jsonb_build_array('user1', 'user2'))
                  END,
                  now() - make_interval(days => %s) + (n * interval '86400 seconds') / %s
                FROM generate_series(1, %s) AS n
                """,
                [room.pk, users[0].pk, day, per_day, per_day],
            )
    return time.perf_counter() - started


def sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE chat_event")
        cursor.execute(
            "SELECT count(*), pg_relation_size('chat_event'), pg_indexes_size('chat_event'),"
            " pg_total_relation_size('chat_event') FROM chat_event"
        )
        rows, table, indexes, total = cursor.fetchone()
    return {"rows": rows, "table": table, "indexes": indexes, "total": total}


def prune(keep_days: float, batch: int) -> tuple[list[float], object]:
    """Prune as the command does; the time of every DELETE batch."""
    from django.db import connection

    from chat.eventlog import events_prune

    times: list[float] = []

    def timed(execute, sql, params, many, context):
        if not sql.startswith("DELETE"):
            return execute(sql, params, many, context)
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            times.append(time.perf_counter() - started)

    with connection.execute_wrapper(timed):
        result = events_prune(keep=timedelta(days=keep_days), batch=batch)
    return times, result


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--keep-days", type=float, default=30)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    setup_database()
    django_setup()
    # The older days, a prune, then the rest up to today: does the table grow?
    recent = max(1, round(args.days - args.keep_days))
    fill_s = fill(args.per_day, args.days + recent, recent + 1)
    before = sizes()
    started = time.perf_counter()
    times, result = prune(args.keep_days, args.batch)
    prune_s = time.perf_counter() - started
    after = sizes()
    fill_s += fill(args.per_day, recent, 1)
    refilled = sizes()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    per_row = before["total"] / before["rows"] if before["rows"] else 0
    ordered = sorted(times)
    lines = [
        "# Event log: a simulated month and its pruning",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}: "
        f"{args.days} days at {args.per_day:,} events a day ending {recent} days ago, "
        f"pruned to {args.keep_days:g} days in batches of {args.batch:,}, then {recent} more "
        f"days up to today (filled in {fill_s:.0f} s).",
        "",
        "| | rows | table | indexes | total |",
        "|---|---|---|---|---|",
        f"| before pruning | {before['rows']:,} | {mib(before['table'])} | "
        f"{mib(before['indexes'])} | {mib(before['total'])} |",
        f"| after pruning | {after['rows']:,} | {mib(after['table'])} | "
        f"{mib(after['indexes'])} | {mib(after['total'])} |",
        f"| {recent} more days later | {refilled['rows']:,} | {mib(refilled['table'])} | "
        f"{mib(refilled['indexes'])} | {mib(refilled['total'])} |",
        "",
        f"Pruned {result.deleted:,} events in {result.batches} batches, {prune_s:.1f} s in all; "
        f"a batch took {1000 * ordered[len(ordered) // 2]:.0f} ms (median), "
        f"{1000 * ordered[-1]:.0f} ms at most (each its own transaction)."
        if ordered
        else "Nothing to prune.",
        "",
        f"On disk {per_row:.0f} bytes an event with its indexes (densely written; the space "
        "a prune frees is reused by new events, not returned to the system). At 20 million "
        f"events a day, {args.keep_days:g} days kept is about "
        f"{per_row * 20e6 * args.keep_days / 1024**3:,.0f} GiB.",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
