"""A trigram index on chat_upload.name, on PostgreSQL only, for search by file name.

It answers `name ILIKE '%...%'` (chat.search) without reading every upload.
Built CONCURRENTLY, as the message indexes of 0004 are, so that building it
on a large table does not block uploads meanwhile.
"""

from django.db import migrations

NAME = "chat_upload_name_trgm"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # A concurrent build that failed leaves an invalid index behind.
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON chat_upload "
        "USING gin (name gin_trgm_ops)"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("chat", "0007_event_everyone"),
    ]

    operations = [migrations.RunPython(create_index, drop_index)]
