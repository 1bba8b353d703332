"""How message search runs on a million messages: EXPLAIN ANALYZE of each kind of query.

    .venv/bin/python bench/search_explain.py [--messages 1000000]
        -> bench/results/search_explain.md

Recreates the PostgreSQL database `teamchat_search` (127.0.0.1, user postgres),
migrates it, fills it with users, public and private rooms and N messages of
made-up text (words from a fixed vocabulary, some identifiers and URLs), then
runs the two queries of a search page exactly as the API does (the page of
hits and the bounded total), for a reader who belongs to some rooms, under
EXPLAIN (ANALYZE, BUFFERS), and writes each plan with its time: first pages,
a page deep into old matches (the cursor of a reader who paged back half the
history), and filters with and without words. What to look for: every scan
of chat_message is an index scan (no "Seq Scan on chat_message"), and the
time stays in milliseconds whether the query is rare or common, short or
long, on the first page or far back.
"""

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "teamchat_search"
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
OUT = ROOT / "bench" / "results" / "search_explain.md"
SECRET = "search-explain-" + "k" * 40
TOTAL_CAP_TEXT = "1,000 (chat.search.TOTAL_CAP)"

START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 365
# (label, query, page far back in the history?)
QUERIES = [
    ("a two-letter query", "qu", False),
    ("a three-letter part of words", "ost", False),
    ("a common word", "deploy", False),
    ("a common word, far back", "deploy", True),
    ("a rare word", "zanzibar", False),
    ("two words", "deploy staging", False),
    ("part of a URL", "example.com/build", False),
    ("part of a URL, far back", "example.com/build", True),
    ("part of an identifier", "user_id", False),
    ("a phrase", '"release notes"', False),
    ("a word from one person", "deploy from:user3", False),
    ("a word in one room", "deploy in:room7", False),
    ("a word in one month", "deploy after:2025-06-01 before:2025-06-30", False),
    ("one person, no words", "from:user3", False),
    ("one person, no words, far back", "from:user3", True),
    ("one room, no words", "in:room7", False),
    ("one month, no words", "after:2025-06-01 before:2025-06-30", False),
    ("before a day, no words", "before:2025-02-01", False),
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
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY chat_message (room_id, author_id, body, html, created, is_deleted) FROM STDIN"
            ) as copy,
        ):
            for i in range(messages):
                text = body(rng, words)
                # Spread over a year, oldest first, as a real history is.
                created = START + timedelta(seconds=i * DAYS * 86400 // messages)
                row = (rng.choice(rooms), rng.choice(users), text, "", created, i % 50 == 0)
                copy.write_row(row)
        print(f"copied {messages} messages in {time.monotonic() - started:.0f} s")
        conn.execute("VACUUM ANALYZE")  # as autovacuum would have, on every table


def explain() -> list[tuple[str, str, list[tuple[str, str]], float, float]]:
    """For each query: (label, query, [(part, plan)], page ms, total ms)."""
    os.environ.update(DATABASE_URL=URL, DJANGO_SECRET_KEY=SECRET, REDIS_URL="")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamchat.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    from accounts.models import User
    from chat import search
    from chat.models import Message

    reader = User.objects.get(username="user10")
    # A reader who paged back through half the history.
    far_back = Message.objects.order_by("-id").values_list("id", flat=True).first() // 2
    results = []
    for label, query, deep in QUERIES:
        parts = search.search_query_parse(reader, query)
        page_trace: list = []
        total_trace: list = []
        # Timed as the search runs them: per half, the text index first
        # within the budget, the planner's walk when that runs out.
        started = time.monotonic()
        search.search_ids(
            reader,
            parts,
            before_id=far_back if deep else None,
            limit=search.SEARCH_DEFAULT_LIMIT + 1,
            trace=page_trace,
        )
        page_took = time.monotonic() - started
        started = time.monotonic()
        search.search_total(reader, parts, trace=total_trace)
        total_took = time.monotonic() - started
        # The plans of the variants that answered (an attempt that ran out is not traced).
        page_plans = [_explain(asked.queryset) for asked in page_trace]
        total_plans = [_explain(asked.queryset) for asked in total_trace]
        how = (_how(page_trace), _how(total_trace))
        plans = [(f"the page, half {i + 1}", plan) for i, plan in enumerate(page_plans)]
        plans += [(f"the total, half {i + 1}", plan) for i, plan in enumerate(total_plans)]
        results.append((label, query, plans, page_took, total_took, how))
        scans = "SEQ SCAN on chat_message" if any(_seq(p) for _, p in plans) else "indexes"
        print(
            f"{label:34} {query!r:44} page {page_took * 1000:8.1f} ms ({how[0]})"
            f"  total {total_took * 1000:8.1f} ms ({how[1]})  {scans}"
        )
    return results


def search_budget_ms() -> int:
    from chat import search

    return search.INDEX_FIRST_BUDGET_MS


def _how(trace: list) -> str:
    return " + ".join("index" if a.index_first else "walk" for a in trace)


def _explain(queryset) -> str:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # The SQL is Django's, its values passed apart as parameters.
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)  # noqa: S608
        return "\n".join(row[0] for row in cursor.fetchall())


def _seq(plan: str) -> bool:
    return "Seq Scan on chat_message" in plan


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
        f"`bench/search_explain.py`, {args.messages:,} messages over a year in 100 rooms"
        " (half of them private), a reader in about one room in seven; the two queries"
        " of a search page as the API runs them (a page of 50 hits, newest first, and"
        f" the total counted up to {TOTAL_CAP_TEXT}), under `EXPLAIN (ANALYZE, BUFFERS)`."
        ' "Far back": the page after a cursor half-way back through the history.',
        "",
        "A query with words has two halves (words through the full-text index,"
        " the text as a substring through the trigram index), each asked for its"
        " newest ids. PostgreSQL guesses that about 1% of messages match any"
        " pattern, so for the newest few it often walks the primary key"
        ' backwards and tests every message ("Index Scan Backward using'
        ' chat_message_pkey ... Rows Removed by Filter"): quick when matches'
        " are common, seconds when they are rare. Ordering by `id + 0` makes it"
        " ask the text index first: quick for rare matches, slow for very"
        " common ones. Each half tries the index first under a statement"
        f" timeout of {search_budget_ms()} ms and falls back to the walk"
        " (chat.search._newest_ids). Times are of the whole sequence (both"
        " halves, attempts that ran out included); \"answered by\" names, per"
        " half, the variant that answered, and the plans below are theirs.",
        "",
        "| query | text | page ms | page answered by | total ms | total answered by"
        " | chat_message read by |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, query, plans, page_took, total_took, how in results:
        seq = any(_seq(plan) for _, plan in plans)
        lines.append(
            f"| {label} | `{query}` | {page_took * 1000:.1f} | {how[0]}"
            f" | {total_took * 1000:.1f} | {how[1]}"
            f" | {'a full scan' if seq else 'indexes'} |"
        )
    for label, query, plans, _, _, _ in results:
        for part, plan in plans:
            lines += ["", f"## {label}: `{query}`, {part}", "", "```", plan, "```"]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
