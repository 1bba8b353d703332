"""Exports: what the archive holds (never a password hash), who may ask and download,
progress in the background, the audit trail, and a round trip into a fresh database."""

import io
import json
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from accounts.models import User
from chat import services
from chat.models import Membership, Message, Reaction, Room, Upload, uploads_storage
from integrations.exports import archive
from integrations.models import AuditEntry, ExportJob

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _worker_only(settings):
    settings.EXPORTS_IN_PROCESS = False


@pytest.fixture
def team(person, channel):
    """An organization with a private room, a thread, a reaction and a file."""
    admin, alice, bob = person("root", role="admin"), person("alice"), person("bob")
    channel("design", alice, bob, private=True, topic="Pixels")
    root = services.message_send(
        author=alice.user, room="design", body="Logo **v2**?", nonce=None
    ).message
    services.message_send(
        author=bob.user, room="design", body="Ship it", nonce=None, thread=root.id
    )
    services.reaction_toggle(actor=bob.user, message_id=root.id, emoji="👍")
    services.message_send(author=bob.user, room="general", body="hello all", nonce=None)
    upload = bob.client.post(
        "/api/uploads/", {"file": SimpleUploadedFile("brief.txt", b"the brief", "text/plain")}
    )
    assert upload.status_code == 201, upload.content
    file_id = upload.json()["upload"]["id"]
    services.message_send(
        author=bob.user, room="design", body="", nonce=None, attachments=(file_id,)
    )
    return admin, alice, bob


def requested(who, scope: str) -> int:
    response = who.post("/api/exports/", {"scope": scope})
    assert response.status_code == 202, response.content
    return response.json()["export"]["id"]


def made(who, job_id: int) -> zipfile.ZipFile:
    call_command("export_worker", "--once")
    detail = who.get(f"/api/exports/{job_id}/").json()["export"]
    assert (detail["status"], detail["progress"]) == ("done", 100), detail
    response = who.get(detail["download"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def rows(zf: zipfile.ZipFile, name: str) -> list[dict]:
    return [json.loads(line) for line in zf.read(f"{name}.jsonl").splitlines() if line.strip()]


def test_an_admin_exports_the_organization_without_any_password_hash(team):
    admin, alice, bob = team
    zf = made(admin, requested(admin, "org"))
    manifest = json.loads(zf.read("manifest.json"))
    assert (manifest["format"], manifest["version"], manifest["scope"]) == (
        "teamchat-export",
        1,
        "org",
    )
    users = {u["username"]: u for u in rows(zf, "users")}
    assert {"root", "alice", "bob"} <= set(users)
    assert "password" not in users["alice"]
    everything = b"".join(zf.read(name) for name in zf.namelist())
    for user in User.objects.all():
        assert user.password.encode() not in everything
    assert b"pbkdf2" not in everything and b"argon2" not in everything
    rooms = {r["slug"]: r for r in rows(zf, "rooms")}
    assert rooms["design"]["private"] and rooms["design"]["topic"] == "Pixels"
    messages = {m["body"]: m for m in rows(zf, "messages")}
    root, reply = messages["Logo **v2**?"], messages["Ship it"]
    assert reply["thread"] == root["id"] and root["reactions"] == {"👍": ["bob"]}
    assert ("design", "bob") in {(m["room"], m["user"]) for m in rows(zf, "memberships")}
    assert manifest["counts"]["messages"] == 4
    [upload] = rows(zf, "uploads")
    assert (upload["name"], upload["user"]) == ("brief.txt", "bob")
    assert zf.read(upload["path"]) == b"the brief"


def test_a_person_exports_their_own_data_only(team):
    admin, alice, bob = team
    zf = made(bob, requested(bob, "user"))
    assert [u["username"] for u in rows(zf, "users")] == ["bob"]
    assert {m["body"] for m in rows(zf, "messages")} == {"Ship it", "hello all", ""}
    assert [u["name"] for u in rows(zf, "uploads")] == ["brief.txt"]
    assert {r["slug"] for r in rows(zf, "rooms")} == {"general", "design"}


def test_only_admins_export_the_organization(team):
    _, alice, _ = team
    response = alice.post("/api/exports/", {"scope": "org"})
    assert (response.status_code, response.json()["error"]) == (403, "forbidden")
    assert alice.post("/api/exports/", {"scope": "everything"}).status_code == 400
    assert not ExportJob.objects.exists()


def test_only_who_asked_may_see_or_download_it(team):
    admin, alice, bob = team
    job_id = requested(bob, "user")
    assert bob.get(f"/api/exports/{job_id}/download/").status_code == 404  # not ready yet
    call_command("export_worker", "--once")
    for other in (alice, admin):
        assert other.get(f"/api/exports/{job_id}/").status_code == 404
        assert other.get(f"/api/exports/{job_id}/download/").status_code == 404
    assert bob.get(f"/api/exports/{job_id}/download/").status_code == 200


def test_exports_are_audited(team):
    admin, _, _ = team
    job_id = requested(admin, "org")
    made(admin, job_id)
    assert list(
        AuditEntry.objects.filter(action__startswith="export.")
        .order_by("id")
        .values_list("action", "actor_name", "target")
    ) == [
        ("export.request", "root", f"export:{job_id}"),
        ("export.download", "root", f"export:{job_id}"),
    ]


def test_without_a_worker_the_web_process_makes_it(team, settings):
    settings.EXPORTS_IN_PROCESS = True
    _, _, bob = team
    job_id = requested(bob, "user")
    deadline = time.monotonic() + 30
    while (detail := bob.get(f"/api/exports/{job_id}/").json()["export"])["status"] != "done":
        assert detail["status"] in ("queued", "running"), detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.1)  # the export is made in the background: polled, bounded
    assert detail["progress"] == 100


def test_the_export_page_asks_and_lists(team):
    _, _, bob = team
    assert bob.client.post("/settings/export/", {"scope": "user"}).status_code == 302
    page = bob.client.get("/settings/export/").content.decode()
    assert "Export my data" in page and "Export the organization" not in page
    assert 'data-status="queued"' in page


def test_an_export_imported_into_a_fresh_database_gives_the_same_rooms_and_messages(team, tmp_path):
    admin, _, _ = team

    def snapshot():
        return (
            sorted(
                Room.objects.filter(kind="channel").values_list(
                    "slug", "name", "topic", "is_private"
                )
            ),
            sorted(Membership.objects.values_list("room__slug", "user__username")),
            sorted(
                (
                    m.room.slug,
                    m.author.username,
                    m.body,
                    m.created.isoformat(),
                    m.thread.body if m.thread else None,
                )
                for m in Message.objects.select_related("room", "author", "thread")
            ),  # fmt: skip
            sorted(Reaction.objects.values_list("message__body", "user__username", "emoji")),
        )

    before = snapshot()
    path = tmp_path / "org.zip"
    with open(path, "wb") as out:
        archive.write(out, scope="org", requested_by=admin.user)
    # Emptied, not renumbered: a `seq` given again would look like one the
    # suite's fan-out has handed out already.
    call_command("flush", "--noinput", reset_sequences=False)
    assert not User.objects.exists() and not Message.objects.exists()

    call_command("import_export", str(path))
    assert snapshot() == before
    # Again: nothing twice.
    call_command("import_export", str(path))
    assert snapshot() == before
    root = Message.objects.get(body="Logo **v2**?")
    assert root.reply_count == 1 and root.repliers == ["bob"]
    [upload] = Upload.objects.all()
    assert (upload.name, upload.uploader.username, upload.message.room.slug) == (
        "brief.txt",
        "bob",
        "design",
    )
    with uploads_storage().open(upload.file.name) as stored:
        assert stored.read() == b"the brief"
