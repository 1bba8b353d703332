"""Cancelling an upload by the key its client chose (X-Upload-Key), whether it has arrived or not.

The page cancels an upload whose answer it has not seen: the server may have
stored it, be storing it, or be about to. `DELETE /api/uploads/pending/<key>/`
must leave nothing of it in every case, and touch nothing else.
"""

import io
import threading
import time
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from PIL import Image

from chat import services
from chat.models import Upload, uploads_storage
from chat.uploads import services as upload_services
from integrations.tokens import token_create

pytestmark = pytest.mark.django_db(transaction=True)

PDF = b"%PDF-1.4\n%%EOF\n"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def upload(who, key: str | None, data: bytes = PDF, name: str = "plan.pdf"):
    headers = {} if key is None else {"X-Upload-Key": key}
    file = SimpleUploadedFile(name, data)
    return who.client.post("/api/uploads/", {"file": file}, headers=headers)


def uploaded(who, key: str | None, data: bytes = PDF, name: str = "plan.pdf") -> dict:
    response = upload(who, key, data, name)
    assert response.status_code == 201, response.content
    return response.json()["upload"]


def cancel(client: Client, key: str) -> int:
    return client.delete(f"/api/uploads/pending/{quote(key, safe='')}/").status_code


def stored(upload_id: int) -> list[str]:
    """The names in the storage of an upload's file and thumbnail, if the row still exists."""
    row = Upload.objects.filter(pk=upload_id).first()
    return [] if row is None else [f.name for f in (row.file, row.thumbnail) if f]


def no_files(uploads_dir) -> bool:
    return not uploads_dir.exists() or not any(p.is_file() for p in uploads_dir.rglob("*"))


def fetch(who, url: str) -> int:
    return who.client.get(url).status_code


def test_a_cancel_after_the_upload_was_stored_deletes_it_and_its_files(person):
    alice = person("alice")
    picture = uploaded(alice, "k-1", png(), "screen.png")
    names = stored(picture["id"])
    assert len(names) == 2 and all(uploads_storage().exists(n) for n in names)

    assert cancel(alice.client, "k-1") == 204
    assert not Upload.objects.filter(pk=picture["id"]).exists()
    assert not any(uploads_storage().exists(n) for n in names)
    assert fetch(alice, picture["url"]) == 404
    assert fetch(alice, picture["thumbnail"]["url"]) == 404


def test_a_cancel_before_the_upload_arrives_refuses_it_and_keeps_nothing(person, uploads_dir):
    alice = person("alice")
    assert cancel(alice.client, "k-2") == 204

    late = upload(alice, "k-2", png(), "screen.png")
    assert late.status_code == 409
    assert late.json() == {"error": "conflict", "detail": "This upload was cancelled."}
    assert not Upload.objects.exists()
    assert no_files(uploads_dir)
    # Only that key: the next upload goes through.
    uploaded(alice, "k-3")


def test_a_cancel_while_the_file_is_being_stored_refuses_it(person, uploads_dir, monkeypatch):
    """The whole body arrived and the server is storing it when the cancel comes."""
    alice = person("alice")
    other_tab = Client()
    other_tab.force_login(alice.user)
    answers: list[int] = []
    real_sniff = upload_services.sniff

    def sniff_then_cancel(file):
        found = real_sniff(file)

        def cancelling() -> None:
            try:
                answers.append(cancel(other_tab, "k-4"))
            finally:
                connection.close()

        thread = threading.Thread(target=cancelling)
        thread.start()
        thread.join(timeout=30)
        return found

    monkeypatch.setattr(upload_services, "sniff", sniff_then_cancel)
    late = upload(alice, "k-4", png(), "screen.png")
    assert answers == [204]
    assert late.status_code == 409 and late.json()["error"] == "conflict"
    assert not Upload.objects.exists()
    assert no_files(uploads_dir)


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        # Activity statistics hold still within a transaction: look afresh each time.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def test_a_cancel_while_the_upload_is_being_saved_waits_and_deletes_it(
    person, uploads_dir, monkeypatch
):
    """The cancel comes after the upload found no cancel and before it commits.

    It must wait for the commit (the uploader's lock) and then delete it, not
    look before the commit, find nothing, and leave it stored.
    """
    alice = person("alice")
    other_tab = Client()
    other_tab.force_login(alice.user)
    answers: list[int] = []
    thread = threading.Thread()
    real_save = Upload.save

    def cancel_then_save(self, *args, **kwargs):
        nonlocal thread

        def cancelling() -> None:
            try:
                answers.append(cancel(other_tab, "k-5"))
            finally:
                connection.close()

        thread = threading.Thread(target=cancelling)
        thread.start()
        deadline = time.monotonic() + 20
        while thread.is_alive() and not _lock_waiters():
            assert time.monotonic() < deadline, "the cancel neither waited nor finished"
            time.sleep(0.02)  # polling the database's state, not waiting for an event
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Upload, "save", cancel_then_save)
    got = uploaded(alice, "k-5")
    thread.join(timeout=30)
    assert answers == [204]
    assert not Upload.objects.exists()
    assert fetch(alice, got["url"]) == 404
    assert no_files(uploads_dir)


def test_a_cancel_after_the_message_was_sent_leaves_its_file(person):
    alice, bob = person("alice"), person("bob")
    pdf = uploaded(alice, "k-6")
    services.message_send(
        author=alice.user, room="general", body="", nonce=None, attachments=(pdf["id"],)
    )
    names = stored(pdf["id"])

    assert cancel(alice.client, "k-6") == 204
    assert all(uploads_storage().exists(n) for n in names)
    assert fetch(bob, pdf["url"]) == 200
    [shown] = bob.history("general")
    assert [f["id"] for f in shown["attachments"]] == [pdf["id"]]


def test_another_persons_cancel_with_the_same_key_deletes_nothing_of_mine(person):
    alice, bob = person("alice"), person("bob")
    mine = uploaded(alice, "same-key")
    assert cancel(bob.client, "same-key") == 204
    assert fetch(alice, mine["url"]) == 200
    # Nor refuses my upload that comes after it.
    later = uploaded(alice, "same-key")
    assert fetch(alice, later["url"]) == 200


BAD_KEYS = ["k" * 65, "two words", "dots.in.it", "slash\\back", "ключ", "emoji-🙂"]


@pytest.mark.parametrize("key", [*BAD_KEYS, ""], ids=[*BAD_KEYS, "empty"])
def test_a_malformed_key_on_an_upload_is_400_and_stores_nothing(person, uploads_dir, key):
    alice = person("alice")
    response = upload(alice, key)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "upload key" in response.json()["detail"]
    assert not Upload.objects.exists()
    assert no_files(uploads_dir)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_malformed_key_on_a_cancel_is_400_and_deletes_nothing(person, key):
    alice = person("alice")
    kept = uploaded(alice, "k" * 64)
    response = alice.client.delete(f"/api/uploads/pending/{quote(key, safe='')}/")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "upload key" in response.json()["detail"]
    assert fetch(alice, kept["url"]) == 200


def test_an_upload_without_a_key_works_and_no_cancel_reaches_it(person):
    alice = person("alice")
    got = uploaded(alice, None)
    assert cancel(alice.client, "k-7") == 204
    assert fetch(alice, got["url"]) == 200


def test_a_cancel_takes_a_token_or_the_session_with_its_csrf_token(person):
    alice = person("alice")
    pdf = uploaded(alice, "k-9")
    anonymous = Client()
    assert cancel(anonymous, "k-9") == 401
    without_csrf = Client(enforce_csrf_checks=True)
    without_csrf.force_login(alice.user)
    refused = without_csrf.delete("/api/uploads/pending/k-9/")
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    assert fetch(alice, pdf["url"]) == 200

    _, secret = token_create(user=alice.user, name="script")
    script = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {secret}"})
    assert cancel(script, "k-9") == 204
    assert fetch(alice, pdf["url"]) == 404


def test_cancelling_twice_is_204_both_times(person, uploads_dir):
    alice = person("alice")
    uploaded(alice, "k-8")
    assert cancel(alice.client, "k-8") == 204
    assert cancel(alice.client, "k-8") == 204
    assert not Upload.objects.exists()
    assert upload(alice, "k-8").status_code == 409
    assert no_files(uploads_dir)


def test_with_the_cache_down_uploads_still_work_and_a_cancel_still_deletes(
    person, uploads_dir, monkeypatch
):
    alice = person("alice")

    def down(*args, **kwargs):
        raise ConnectionError("the cache is unreachable")

    monkeypatch.setattr(upload_services.cache, "get", down)
    monkeypatch.setattr(upload_services.cache, "set", down)
    first = uploaded(alice, "k-9")
    assert cancel(alice.client, "k-9") == 204
    assert not Upload.objects.filter(pk=first["id"]).exists()
    assert no_files(uploads_dir)
    # Nothing could be recorded: a later upload with the key is kept (the prune takes it).
    assert upload(alice, "k-9").status_code == 201
