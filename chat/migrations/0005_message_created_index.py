"""An index on chat_message.created, for search's date filters (before:, after:).

Search pages by id; a date filter becomes an id bound found through this
index (the first message past the day, give or take a margin), so a search
of one old day reads that day, not the whole history since. Built
CONCURRENTLY on PostgreSQL (hence non-atomic) so sends go on meanwhile.
"""

from django.db import migrations, models

NAME = "message_created"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON chat_message (created)")
        return
    # A concurrent build that failed leaves an invalid index behind.
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON chat_message (created)"
    )


def drop_index(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {NAME}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("chat", "0004_message_search_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(fields=["created"], name=NAME),
                ),
            ],
            database_operations=[migrations.RunPython(create_index, drop_index)],
        ),
    ]
