"""Indexes for message search, on PostgreSQL only (other databases search without them).

- A trigram GIN index on chat_message.body answers `body ILIKE '%...%'`:
  parts of words, identifiers, URLs.
- A GIN index on to_tsvector('simple', body) answers the full-text match;
  chat.search writes the same expression so the planner can use it.

The indexes are built CONCURRENTLY (hence a non-atomic migration) so that
building them on a large message table does not block sends meanwhile.
"""

from django.db import migrations

INDEXES = {
    "chat_message_body_trgm": "USING gin (body gin_trgm_ops)",
    "chat_message_body_tsv": "USING gin (to_tsvector('simple'::regconfig, body))",
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        # A concurrent build that failed leaves an invalid index behind;
        # drop it first so IF NOT EXISTS does not keep the broken one.
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON chat_message {definition}"
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    # pg_trgm stays: it may have been there before, and whatever else uses it
    # would break (or, with CASCADE, lose its indexes) if it went.


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("chat", "0003_rooms_events_reactions"),
    ]

    # Not django.contrib.postgres's TrigramExtension: its reverse queries
    # pg_extension on any database, so unapplying failed on SQLite.
    operations = [migrations.RunPython(create_indexes, drop_indexes)]
