"""Sessions signed in through the two former backends now name the one that replaced them.

Django logs a session out when the backend it names is no longer configured;
without this, everyone would be signed out once by the upgrade.
"""

from django.contrib.auth import BACKEND_SESSION_KEY
from django.db import migrations

FORMER = {
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
}
CURRENT = "accounts.backends.AuthenticationBackend"


def forwards(apps, schema_editor):
    from accounts.session_store import SessionStore

    store = SessionStore()
    Session = apps.get_model("accounts", "Session")
    for session in Session.objects.filter(user__isnull=False).iterator(chunk_size=1000):
        data = store.decode(session.session_data)
        if data.get(BACKEND_SESSION_KEY) in FORMER:
            data[BACKEND_SESSION_KEY] = CURRENT
            session.session_data = store.encode(data)
            session.save(update_fields=["session_data"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_username_ascii_case_insensitive")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
