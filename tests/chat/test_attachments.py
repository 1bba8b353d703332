"""Files on messages: sending them, seeing them everywhere a message shows, deleting them."""

import io
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image

from accounts.models import User
from chat import services
from chat.models import Upload, uploads_storage
from chat.services import ChatError
from integrations.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def upload(who, data: bytes = b"%PDF-1.4\n%%EOF\n", name: str = "plan.pdf") -> dict:
    response = who.client.post("/api/uploads/", {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 201, response.content
    return response.json()["upload"]


aupload = sync_to_async(upload)


def fetch(who, url: str) -> int:
    return who.client.get(url).status_code


def stored(upload_id: int) -> list[str]:
    """The names in the storage of an upload's file and thumbnail, if the row still exists."""
    row = Upload.objects.filter(pk=upload_id).first()
    return [] if row is None else [f.name for f in (row.file, row.thumbnail) if f]


async def test_a_message_with_files_reaches_every_member_with_them(people, sockets):
    alice, bob = await people("alice", "bob")
    a, b = await sockets(alice), await sockets(bob)
    picture = await aupload(alice, png(), "screen.png")
    pdf = await aupload(alice, name="plan.pdf")

    # No text: the files are the message.
    await a.send({"type": "send", "room": "general", "body": "", "nonce": "f-1",
                  "attachments": [picture["id"], pdf["id"], picture["id"]]})  # fmt: skip
    seen = await b.receive()
    assert seen["type"] == "message" and seen["body"] == ""
    assert [f["name"] for f in seen["attachments"]] == ["screen.png", "plan.pdf"]
    image = seen["attachments"][0]
    assert {k: image[k] for k in ("id", "content_type", "width", "height")} == {
        "id": picture["id"], "content_type": "image/png", "width": 640, "height": 480,
    }  # fmt: skip
    assert image["thumbnail"]["width"] == 480 and image["thumbnail"]["height"] == 360
    assert seen["attachments"][1]["thumbnail"] is None
    assert (await a.receive())["attachments"] == seen["attachments"]

    # Bob, a member of the room, may now download what alice shared.
    assert await sync_to_async(fetch)(bob, pdf["url"]) == 200
    assert await sync_to_async(fetch)(bob, image["thumbnail"]["url"]) == 200


async def test_files_a_sender_may_not_attach_are_refused_and_the_socket_goes_on(people, sockets):
    alice, bob = await people("alice", "bob")
    a = await sockets(alice)
    mine = await aupload(alice)
    bobs = await aupload(bob)

    async def refused(frame: dict) -> str:
        await a.send({"type": "send", "room": "general", "nonce": "x", **frame})
        answer = await a.receive()
        assert (answer["type"], answer["code"], answer["nonce"]) == ("error", "invalid", "x")
        return answer["detail"]

    assert "not one of your uploads" in await refused({"body": "hi", "attachments": [bobs["id"]]})
    # An id that does not exist gets the same answer as someone else's.
    assert "not one of your uploads" in await refused({"body": "hi", "attachments": [10**12]})
    assert "at most 10" in await refused({"body": "hi", "attachments": list(range(1, 12))})
    await refused({"body": "hi", "attachments": "1"})
    await refused({"body": "hi", "attachments": [True]})
    await refused({"body": "  ", "attachments": []})  # no files: the text may not be blank

    await a.send({"type": "send", "room": "general", "body": "one", "attachments": [mine["id"]]})
    assert [f["id"] for f in (await a.receive())["attachments"]] == [mine["id"]]
    # A file goes with one message only.
    assert "already part of another message" in await refused(
        {"body": "two", "attachments": [mine["id"]]}
    )
    assert await sync_to_async(lambda: Upload.objects.get(pk=bobs["id"]).message_id)() is None


def test_of_two_sends_racing_for_one_file_exactly_one_gets_it(person):
    alice = person("alice")
    file_id = upload(alice)["id"]
    results = services.message_send_many(
        [
            services.SendRequest(alice.user, "general", "first", "r-1", (file_id,)),
            services.SendRequest(alice.user, "general", "second", "r-2", (file_id,)),
        ]
    )
    assert isinstance(results[0], services.SendResult)
    assert isinstance(results[1], ChatError) and results[1].code == "invalid"
    assert [m["body"] for m in alice.history("general")] == ["first"]
    assert Upload.objects.get(pk=file_id).message_id == results[0].message.pk


def test_a_retried_send_answers_with_the_files_it_stored(person):
    alice = person("alice")
    file_id = upload(alice)["id"]
    first = services.message_send(
        author=alice.user, room="general", body="", nonce="n", attachments=(file_id,)
    )
    again = services.message_send(
        author=alice.user, room="general", body="", nonce="n", attachments=(file_id,)
    )
    assert not again.created and again.message.pk == first.message.pk
    assert [m["attachments"][0]["id"] for m in alice.history("general")] == [file_id]


def test_history_catch_up_and_search_carry_files(person, settings):
    alice, bob = person("alice"), person("bob")
    file_id = upload(alice, name="quarterly-report.pdf")["id"]
    sent = services.message_send(
        author=alice.user, room="general", body="", nonce=None, attachments=(file_id,)
    )
    [shown] = bob.history("general")
    assert [f["name"] for f in shown["attachments"]] == ["quarterly-report.pdf"]
    [caught_up] = bob.history("general", after=sent.message.pk - 1)
    assert caught_up["attachments"] == shown["attachments"]
    for words in ("quarterly", "report", "Quarterly report"):
        hits = bob.get("/api/search/", q=words).json()["results"]
        assert [h["id"] for h in hits] == [sent.message.pk], words
        assert hits[0]["attachments"] == shown["attachments"]
    assert bob.get("/api/search/", q="invoice").json()["results"] == []


async def test_a_reconnecting_socket_catches_up_with_the_files(people, sockets):
    alice, bob = await people("alice", "bob")
    a = await sockets(alice)
    await a.send({"type": "send", "room": "general", "body": "before"})
    before = await a.receive()
    pdf = await aupload(alice)
    await a.send({"type": "send", "room": "general", "body": "", "attachments": [pdf["id"]]})
    await a.receive()

    b = await sockets(bob, seq=before["seq"])
    replayed = await b.receive()
    assert replayed["type"] == "message" and [f["id"] for f in replayed["attachments"]] == [
        pdf["id"]
    ]


def test_deleting_a_message_deletes_its_files_for_everyone(person):
    alice, bob = person("alice"), person("bob")
    pdf = upload(alice)
    picture = upload(alice, png(), "screen.png")
    sent = services.message_send(
        author=alice.user, room="general", body="files", nonce=None,
        attachments=(pdf["id"], picture["id"]),
    )  # fmt: skip
    names = stored(pdf["id"]) + stored(picture["id"])
    assert len(names) == 3 and all(uploads_storage().exists(n) for n in names)

    assert bob.delete(f"/api/messages/{sent.message.pk}/").status_code == 403
    assert alice.delete(f"/api/messages/{sent.message.pk}/").status_code == 204
    assert not any(uploads_storage().exists(n) for n in names)
    for who in (alice, bob):
        assert fetch(who, pdf["url"]) == 404
        assert fetch(who, picture["thumbnail"]["url"]) == 404


def admin_client(person) -> Client:
    """A signed-in superuser's browser on the Django admin."""
    root = person("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root.user)
    return client


def test_deleting_a_room_deletes_the_files_its_messages_carried(person):
    alice, bob = person("alice"), person("bob")
    room = services.room_create(actor=alice.user, name="design")
    services.room_join(actor=bob.user, room="design")
    pdf, picture = upload(alice), upload(bob, png(), "screen.png")
    root = services.message_send(
        author=alice.user, room="design", body="plans", nonce=None, attachments=(pdf["id"],)
    )
    services.message_send(
        author=bob.user, room="design", body="", nonce=None,
        attachments=(picture["id"],), thread=root.message.pk,
    )  # fmt: skip
    elsewhere = upload(alice, name="budget.pdf")
    services.message_send(
        author=alice.user, room="general", body="", nonce=None, attachments=(elsewhere["id"],)
    )
    unsent = upload(alice, name="draft.pdf")
    names = stored(pdf["id"]) + stored(picture["id"])
    assert len(names) == 3 and all(uploads_storage().exists(n) for n in names)

    admin = admin_client(person)
    confirm = admin.get(f"/admin/chat/room/{room.pk}/delete/").content.decode()
    assert "2 message(s), gone for good" in confirm and "2 file(s) on them, deleted" in confirm
    deleted = admin.post(f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not any(uploads_storage().exists(n) for n in names)
    for who, url in (
        (alice, pdf["url"]),
        (bob, picture["url"]),
        (bob, picture["thumbnail"]["url"]),
    ):
        assert fetch(who, url) == 404  # not even for their uploaders
    # Nor can they be sent again as if never sent.
    [again] = services.message_send_many(
        [services.SendRequest(alice.user, "general", "again", None, (pdf["id"],))]
    )
    assert isinstance(again, ChatError) and again.code == "invalid"
    for url in (elsewhere["url"], unsent["url"]):
        assert fetch(alice, url) == 200
    assert AuditEntry.objects.get(action="room.delete").data["files"] == 2


def test_deleting_a_person_deletes_the_files_they_uploaded(person):
    # Not from the admin, which refuses while they have uploads (its Upload
    # rows are never deleted there) or messages (PROTECT): from code, as
    # an operator's shell would.
    alice, bob = person("alice"), person("bob")
    pdf, picture = upload(alice), upload(alice, png(), "screen.png")
    bobs = upload(bob)
    names = stored(pdf["id"]) + stored(picture["id"])
    assert len(names) == 3 and all(uploads_storage().exists(n) for n in names)

    User.objects.get(username="alice").delete()
    assert not any(uploads_storage().exists(n) for n in names)
    assert fetch(bob, bobs["url"]) == 200


def test_an_uploader_takes_back_a_file_they_did_not_send(person):
    alice, bob = person("alice"), person("bob")
    pdf = upload(alice)
    names = stored(pdf["id"])
    assert bob.delete(f"/api/uploads/{pdf['id']}/").status_code == 404  # learns nothing
    assert alice.delete(f"/api/uploads/{pdf['id']}/").status_code == 204
    assert fetch(alice, pdf["url"]) == 404
    assert not uploads_storage().exists(names[0])
    assert alice.delete(f"/api/uploads/{pdf['id']}/").status_code == 404

    sent = upload(alice)
    services.message_send(
        author=alice.user, room="general", body="", nonce=None, attachments=(sent["id"],)
    )
    refused = alice.delete(f"/api/uploads/{sent['id']}/")
    assert refused.status_code == 403 and "delete the message" in refused.json()["detail"]
    assert fetch(bob, sent["url"]) == 200


async def test_an_admin_removes_a_file_and_open_pages_drop_it(people, sockets):
    alice, bob = await people("alice", "bob")
    [admin] = await people("root", role="admin")
    b = await sockets(bob)
    pdf, other = await aupload(alice), await aupload(alice, name="notes.pdf")
    sent = await sync_to_async(services.message_send)(
        author=alice.user, room="general", body="two files", nonce=None,
        attachments=(pdf["id"], other["id"]),
    )  # fmt: skip
    assert (await b.receive())["id"] == sent.message.pk

    response = await sync_to_async(admin.delete)(f"/api/uploads/{pdf['id']}/")
    assert response.status_code == 204
    assert await b.receive() == {
        "type": "attachment_removed", "room": "general", "message": sent.message.pk,
        "id": pdf["id"], "seq": (await sync_to_async(_last_seq)()),
    }  # fmt: skip
    assert await sync_to_async(fetch)(bob, pdf["url"]) == 404
    [shown] = await sync_to_async(bob.history)("general")
    assert [f["id"] for f in shown["attachments"]] == [other["id"]]
    assert shown["body"] == "two files"


def _last_seq() -> int:
    from chat.models import Event

    return Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_sending_a_batch_with_files_costs_the_same_queries_as_one(person):
    alice = person("alice")

    def cost(count: int) -> int:
        # Rows without bytes: only what sending reads and writes is counted.
        ids = [
            Upload.objects.create(
                uploader=alice.user, name=f"f{i}.pdf", size=1, content_type="application/pdf"
            ).pk
            for i in range(count * 2)
        ]
        requests = [
            services.SendRequest(alice.user, "general", "", None, (ids[2 * i], ids[2 * i + 1]))
            for i in range(count)
        ]
        with CaptureQueriesContext(connection) as queries:
            results = services.message_send_many(requests)
        assert all(isinstance(r, services.SendResult) for r in results)
        return len(queries)

    assert cost(1) == cost(20)
    shown = alice.history("general", limit=20)
    assert all(len(m["attachments"]) == 2 for m in shown)


def test_two_connections_racing_for_one_file_store_one_message(person):
    """Two sends in two transactions at once: one gets the file, the other stores nothing."""
    alice = person("alice")
    file_id = upload(alice)["id"]
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def send(body: str) -> None:
        try:
            start.wait(timeout=10)
            results[body] = services.message_send(
                author=alice.user, room="general", body=body, nonce=None, attachments=(file_id,)
            )
        except ChatError as exc:
            results[body] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(b,)) for b in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    won = [b for b, r in results.items() if isinstance(r, services.SendResult)]
    lost = [r for r in results.values() if isinstance(r, ChatError)]
    assert len(won) == 1 and len(lost) == 1, results
    assert lost[0].code == "invalid" and "already part of another message" in lost[0].detail
    [shown] = alice.history("general")
    assert shown["body"] == won[0] and [f["id"] for f in shown["attachments"]] == [file_id]


def test_the_service_itself_counts_and_merges_the_files(person, settings):
    alice = person("alice")
    ids = [upload(alice)["id"] for _ in range(3)]
    settings.UPLOADS_MAX_PER_MESSAGE = 2
    with pytest.raises(ChatError, match="at most 2 files"):
        services.message_send(
            author=alice.user, room="general", body="x", nonce=None, attachments=tuple(ids)
        )
    assert Upload.objects.filter(pk__in=ids, message__isnull=False).count() == 0
    # A repeated id is one file, live and in history alike.
    sent = services.message_send(
        author=alice.user, room="general", body="", nonce=None,
        attachments=(ids[1], ids[0], ids[1]),
    )  # fmt: skip
    [shown] = alice.history("general")
    assert shown["id"] == sent.message.pk
    assert sorted(f["id"] for f in shown["attachments"]) == sorted(ids[:2])


def test_a_failed_send_attaches_nothing_and_keeps_the_files(person):
    alice = person("alice")
    mine = upload(alice)["id"]
    # The room is refused after the files were named: they stay the sender's, unsent.
    with pytest.raises(ChatError):
        services.message_send(
            author=alice.user, room="no-such-room", body="", nonce=None, attachments=(mine,)
        )
    assert Upload.objects.get(pk=mine).message_id is None
    # With one good and one foreign file, the whole send is refused, the good one kept.
    bobs = upload(person("bob"))["id"]
    with pytest.raises(ChatError, match="not one of your uploads"):
        services.message_send(
            author=alice.user, room="general", body="", nonce=None, attachments=(mine, bobs)
        )
    assert Upload.objects.filter(pk__in=(mine, bobs), message__isnull=False).count() == 0
    assert alice.history("general") == []
    sent = services.message_send(
        author=alice.user, room="general", body="", nonce=None, attachments=(mine,)
    )
    assert Upload.objects.get(pk=mine).message_id == sent.message.pk


def test_a_message_of_files_only_can_be_edited_to_no_text_and_keeps_its_files(person):
    alice = person("alice")
    pdf = upload(alice)
    sent = services.message_send(
        author=alice.user, room="general", body="see attached", nonce=None,
        attachments=(pdf["id"],),
    )  # fmt: skip
    response = alice.patch(f"/api/messages/{sent.message.pk}/", {"body": ""})
    assert response.status_code == 200, response.content
    edited = response.json()["message"]
    assert edited["body"] == "" and [f["id"] for f in edited["attachments"]] == [pdf["id"]]
    [shown] = alice.history("general")
    assert shown["edited"] and shown["attachments"] == edited["attachments"]

    plain = services.message_send(author=alice.user, room="general", body="text", nonce=None)
    refused = alice.patch(f"/api/messages/{plain.message.pk}/", {"body": " "})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid"


def test_search_by_file_name_is_answered_by_the_name_index_and_takes_words_literally(person):
    from chat import search

    alice = person("alice")
    for name in ("q1_plan.pdf", "q1xplan.pdf"):
        file_id = upload(alice, name=name)["id"]
        services.message_send(
            author=alice.user, room="general", body="", nonce=None, attachments=(file_id,)
        )
    hits = alice.get("/api/search/", q="1_plan").json()["results"]
    assert [[f["name"] for f in h["attachments"]] for h in hits] == [["q1_plan.pdf"]]

    # On PostgreSQL the words are matched with ILIKE, the form the trigram
    # index on the names answers (Django's icontains, UPPER(name) LIKE, it cannot).
    sql, params = search._named_files("quarterly report").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chat_upload_name_trgm'")
        [(index,)] = cursor.fetchall()
    assert "name)::text ~~* '%quarterly%'" in plan and "upper(" not in plan.lower(), plan
    assert "gin_trgm_ops" in index


async def test_a_reconnecting_socket_learns_of_a_file_an_admin_removed(people, sockets):
    alice, bob = await people("alice", "bob")
    [admin] = await people("root", role="admin")
    pdf = await aupload(alice)
    sent = await sync_to_async(services.message_send)(
        author=alice.user, room="general", body="see", nonce=None, attachments=(pdf["id"],)
    )
    seen = await sync_to_async(_last_seq)()
    assert (await sync_to_async(admin.delete)(f"/api/uploads/{pdf['id']}/")).status_code == 204
    removed = await sync_to_async(_last_seq)()

    b = await sockets(bob, seq=seen)
    assert await b.receive() == {
        "type": "attachment_removed", "room": "general", "message": sent.message.pk,
        "id": pdf["id"], "seq": removed,
    }  # fmt: skip
