"""How message search runs on a million messages: EXPLAIN ANALYZE of each kind of query.

    .venv/bin/python bench/search_explain.py [--messages 1000000]
        -> bench/results/search_explain.md

Recreates the PostgreSQL database `teamchat_search` (127.0.0.1, user postgres),
migrates it, fills it with users, public and private rooms and N messages of
made-up text (words from a fixed vocabulary, some identifiers and URLs), then
runs the search of chat.search exactly as the API does, for a reader who
belongs to some rooms, under EXPLAIN (ANALYZE, BUFFERS), and writes each plan
with its time. What to look for: every scan of chat_message is an index scan
(no "Seq Scan on chat_message"), and the time stays in milliseconds whether
the query is rare or common, short or long.
"""

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "teamchat_search"
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
OUT = ROOT / "bench" / "results" / "search_explain.md"
SECRET = "search-explain-" + "k" * 40

QUERIES = [
    ("a two-letter query", "qu"),
    ("a three-letter part of words", "ost"),
    ("a common word", "deploy"),
    ("a rare word", "zanzibar"),
    ("two words", "deploy staging"),
    ("part of a URL", "example.com/build"),
    ("part of an identifier", "user_id"),
    ("a phrase", '"release notes"'),
]


def vocabulary(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ra", "te", "su", "po", "ne", "vi", "do", "qu", "ost", "an"]
    words = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(6000)}
    return sorted(words) + ["deploy"] * 40 + ["staging", "release", "notes", "user_id"] * 10


def body(rng: random.Random, words: list[str]) -> str:
    parts = rng.choices(words, k=rng.randint(3, 18))
    if rng.random() < 0.05:
        parts.append(f"https://example.com/build/{rng.randint(1, 99999)}")
    if rng.random() < 0.001:
        parts.append("zanzibar")
    return " ".join(parts)


def fill(messages: int) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    env = {**os.environ, "DATABASE_URL": URL, "DJANGO_SECRET_KEY": SECRET, "REDIS_URL": ""}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    rng = random.Random(7)
    words = vocabulary(rng)
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined, role)"
            " SELECT '!', false, 'user' || i, '', '', '', false, true, now(), 'member'"
            " FROM generate_series(1, 200) i"
        )
        conn.execute(
            "INSERT INTO chat_room (slug, name, topic, kind, is_private, is_archived, created)"
            " SELECT 'room' || i, 'room ' || i, '', 'channel', i % 2 = 0, false, now()"
            " FROM generate_series(1, 100) i"
        )
        users = [r[0] for r in conn.execute("SELECT id FROM accounts_user ORDER BY id")]
        rooms = [r[0] for r in conn.execute("SELECT id FROM chat_room ORDER BY id")]
        conn.execute(
            "INSERT INTO chat_membership (room_id, user_id, joined, last_read_id)"
            " SELECT r.id, u.id, now(), 0 FROM chat_room r, accounts_user u"
            " WHERE (r.id + u.id) % 7 = 0"
        )
        started = time.monotonic()
        with conn.cursor() as cur, cur.copy(
            "COPY chat_message (room_id, author_id, body, html, created, is_deleted)"
            " FROM STDIN"
        ) as copy:
            for i in range(messages):
                text = body(rng, words)
                copy.write_row(
                    (rng.choice(rooms), rng.choice(users), text, "", "2026-01-01", i % 50 == 0)
                )
        print(f"copied {messages} messages in {time.monotonic() - started:.0f} s")
        conn.execute("VACUUM ANALYZE")  # as autovacuum would have, on every table


def explain() -> list[tuple[str, str, str, float]]:
    os.environ.update(DATABASE_URL=URL, DJANGO_SECRET_KEY=SECRET, REDIS_URL="")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamchat.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from accounts.models import User
    from chat import search

    reader = User.objects.get(username="user10")
    results = []
    for label, query in QUERIES:
        qs = search.search_queryset(reader, query)
        started = time.monotonic()
        plan = qs[: search.SEARCH_DEFAULT_LIMIT].explain(analyze=True, buffers=True)
        took = time.monotonic() - started
        results.append((label, query, plan, took))
        scans = "SEQ SCAN on chat_message" if "Seq Scan on chat_message" in plan else "indexes"
        print(f"{label:32} {query!r:24} {took * 1000:8.1f} ms  {scans}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep the database if it is there")
    args = parser.parse_args()
    if not args.reuse:
        fill(args.messages)
    results = explain()
    lines = [
        "# Search on PostgreSQL: query plans",
        "",
        f"`bench/search_explain.py`, {args.messages:,} messages in 100 rooms (half of them"
        " private), a reader in about one room in seven; the search the API runs, under"
        " `EXPLAIN (ANALYZE, BUFFERS)`.",
        "",
        "| query | text | time ms | chat_message read by |",
        "|---|---|---|---|",
    ]
    for label, query, plan, took in results:
        seq = "Seq Scan on chat_message" in plan
        lines.append(
            f"| {label} | `{query}` | {took * 1000:.1f} | {'a full scan' if seq else 'indexes'} |"
        )
    for label, query, plan, _ in results:
        lines += ["", f"## {label}: `{query}`", "", "```", plan, "```"]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
