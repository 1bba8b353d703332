from django.conf import settings
from django.db import migrations


def create_general(apps, schema_editor):
    Room = apps.get_model("chat", "Room")
    Membership = apps.get_model("chat", "Membership")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    room, _ = Room.objects.get_or_create(
        slug="general", defaults={"name": "general", "topic": "Everyone, everything."}
    )
    Membership.objects.bulk_create(
        [Membership(room=room, user=user) for user in User.objects.filter(is_active=True)],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create_general, migrations.RunPython.noop)]
