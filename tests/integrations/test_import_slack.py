"""Importing a Slack export: a small archive built from tests/integrations/fixtures/slack_export."""

import re
import shutil
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from accounts.models import User
from chat.models import Membership, Message, Reaction, Room, Upload, uploads_storage

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURE = Path(__file__).parent / "fixtures" / "slack_export"


@pytest.fixture
def slack_zip(tmp_path) -> str:
    return shutil.make_archive(str(tmp_path / "slack"), "zip", FIXTURE)


def import_slack(path: str, *args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("import_slack", path, *args, stdout=out)
    return out.getvalue()


def bodies(slug: str) -> list[str]:
    return list(
        Message.objects.filter(room__slug=slug).order_by("created").values_list("body", flat=True)
    )


def test_a_slack_export_becomes_people_rooms_messages_threads_reactions_and_files(
    slack_zip, uploads_dir
):
    report = import_slack(slack_zip)
    assert "messages created: 9" in report

    alice, bob, carol = (User.objects.get(username=n) for n in ("alice", "bob", "carol.jones"))
    assert (alice.email, alice.display_name) == ("alice@example.com", "Alice Liddell")
    assert not carol.is_active  # deleted in Slack
    assert not any(u.has_usable_password() for u in (alice, bob, carol))
    ci = User.objects.get(username="ci")
    assert ci.is_bot

    design, leads = Room.objects.get(slug="design"), Room.objects.get(slug="leads")
    assert (design.topic, design.is_private, leads.is_private) == ("Pixels & type", False, True)
    assert set(Membership.objects.filter(room=leads).values_list("user__username", flat=True)) == {
        "alice",
        "bob",
    }

    assert bodies("general") == [
        "Welcome @bob! Plans are in #design & on [the wiki](https://example.com/plan)",
        "When is the launch?",
        "Friday",
        "Friday works <3",
        "Build 42 passed",
    ]
    welcome = Message.objects.get(body__startswith="Welcome")
    assert (
        welcome.author == alice
        and welcome.created.isoformat() == "2023-11-14T22:13:30.000200+00:00"
    )
    assert '<a href="https://example.com/plan"' in welcome.html
    assert set(Reaction.objects.filter(message=welcome).values_list("emoji", "user__username")) == {
        ("👍", "bob"),
        ("👍", "carol.jones"),
    }

    root = Message.objects.get(body="When is the launch?")
    replies = Message.objects.filter(thread=root).order_by("id")
    assert [(r.body, r.in_channel) for r in replies] == [
        ("Friday", False),
        ("Friday works <3", True),
    ]
    assert (root.reply_count, root.repliers) == (2, ["carol.jones", "alice"])

    assert bodies("design")[0] == "New logo attached\n\n📎 logo.svg (not in the export)"
    brief = Upload.objects.get(name="brief.txt")
    assert brief.message.body == "And the brief" and brief.uploader == alice
    with uploads_storage().open(brief.file.name) as stored:
        assert stored.read() == b"The brief: make it pop.\n"
    action = Message.objects.get(body="/me likes it")
    assert action.edited is not None and action.html == "<p>likes it</p>\n"
    assert bodies("leads") == ["@here budget review at 3"]


def test_a_dry_run_counts_and_writes_nothing(slack_zip):
    before = (User.objects.count(), Room.objects.count(), Message.objects.count())
    report = import_slack(slack_zip, "--dry-run")
    assert "Dry run" in report and "messages created: 9" in report
    assert (User.objects.count(), Room.objects.count(), Message.objects.count()) == before


def test_importing_again_creates_nothing_twice(slack_zip):
    import_slack(slack_zip)
    counts = (
        User.objects.count(),
        Room.objects.count(),
        Message.objects.count(),
        Reaction.objects.count(),
    )
    report = import_slack(slack_zip)
    assert "messages already there: 9" in report and "messages created" not in report
    assert (
        User.objects.count(),
        Room.objects.count(),
        Message.objects.count(),
        Reaction.objects.count(),
    ) == counts


def test_people_already_here_are_matched_by_email(slack_zip, person):
    existing = person("alice.l", email="alice@example.com")
    import_slack(slack_zip)
    assert not User.objects.filter(username="alice").exists()
    assert Message.objects.filter(author=existing.user, body="Friday").exists()


def test_an_imported_person_claims_the_account_by_resetting_the_password(slack_zip):
    import_slack(slack_zip)
    client = Client()
    response = client.post("/accounts/password/reset/", {"email": "bob@example.com"})
    assert response.status_code == 302
    [email] = mail.outbox
    link = re.search(r"https?://[^\s]+/accounts/password/reset/key/[^\s]+", email.body).group(0)
    page = client.get(link, follow=True)
    assert page.status_code == 200
    new = "a-long-and-new-pass-phrase"
    done = client.post(page.redirect_chain[-1][0] if page.redirect_chain else link,
                       {"password1": new, "password2": new})  # fmt: skip
    assert done.status_code == 302
    assert Client().login(username="bob", password=new)


def test_an_archive_that_is_not_slacks_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    shutil.make_archive(str(tmp_path / "bad"), "zip", tmp_path, ".")
    with pytest.raises(Exception, match="Not a Slack export"):
        call_command("import_slack", str(bad))
