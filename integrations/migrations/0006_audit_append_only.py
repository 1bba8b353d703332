"""The audit log is append-only in the database too, on PostgreSQL.

A trigger refuses UPDATE and DELETE of integrations_auditentry rows, so not
even SQL run by hand (or a bug that bypasses the model) changes the record.
One UPDATE stays allowed: setting actor_id to NULL and nothing else, which is
what deleting a user does (the entry keeps actor_name, so it still says who).
TRUNCATE does not fire row triggers: the test runner's flush still works, and
an operator archiving the whole table can still empty it on purpose.

SQLite (the quick local setup) keeps the application's guard only.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION integrations_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
       AND to_jsonb(NEW) - 'actor_id' = to_jsonb(OLD) - 'actor_id' THEN
        RETURN NEW;  -- the actor's account was deleted (on_delete=SET_NULL)
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % of integrations_auditentry refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER integrations_auditentry_append_only
    BEFORE UPDATE OR DELETE ON integrations_auditentry
    FOR EACH ROW EXECUTE FUNCTION integrations_auditentry_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS integrations_auditentry_append_only ON integrations_auditentry;
DROP FUNCTION IF EXISTS integrations_auditentry_append_only();
"""


def forward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0005_exports")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
