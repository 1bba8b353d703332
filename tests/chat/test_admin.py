"""The Django admin: what staff may change goes through the services, and nothing renders raw."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.test import Client

from chat import services
from chat.models import Room
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def staff(**fields):
    user = UserFactory(is_staff=True, **fields)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_message", "change_message", "view_room", "change_room"]
        )
    )
    client = Client()
    client.force_login(user)
    return user, client


def test_a_messages_text_and_markup_cannot_be_edited_in_the_admin():
    author = UserFactory()
    message = services.message_send(author=author, room="general", body="hi", nonce=None).message
    _, client = staff(role="admin")
    page = client.get(f"/admin/chat/message/{message.pk}/change/").content.decode()
    assert 'name="body"' not in page and 'name="html"' not in page
    assert "Read-only: only its author edits a message" in page
    client.post(
        f"/admin/chat/message/{message.pk}/change/",
        {"body": "changed", "html": '<meta http-equiv="refresh" content="0;url=//evil">'},
    )
    message.refresh_from_db()
    assert (message.body, message.html) == ("hi", "<p>hi</p>\n")


def test_deleting_in_the_admin_is_the_services_deletion():
    author = UserFactory()
    message = services.message_send(author=author, room="general", body="oops", nonce=None).message
    moderator, client = staff(role="moderator")
    response = client.post(
        "/admin/chat/message/",
        {"action": "delete_for_everyone", "_selected_action": [message.pk]},
        follow=True,
    )
    assert "Deleted 1 message(s)." in response.content.decode()
    message.refresh_from_db()
    assert message.is_deleted and message.body == ""


def test_a_dm_is_private_by_its_kind_whatever_its_flag():
    alice, bob, eve = (UserFactory(username=n) for n in ("alice", "bob", "eve"))
    room = services.dm_open(actor=alice, usernames=["bob"])
    services.message_send(author=alice, room=room.slug, body="between us", nonce=None)
    Room.objects.filter(pk=room.pk).update(is_private=False)  # a careless edit
    client = Client()
    client.force_login(eve)
    assert client.get(f"/api/rooms/{room.slug}/messages/").status_code == 404
    assert client.get("/api/search/", {"q": "between"}).json()["results"] == []


def test_the_admin_lists_rooms_by_who_may_read_them():
    # The column and the filter follow the access rule, not the flag alone.
    alice = UserFactory(username="alice")
    dm = services.dm_open(actor=alice, usernames=[UserFactory(username="bob").username])
    Room.objects.filter(pk=dm.pk).update(is_private=False)  # a careless edit
    services.room_create(actor=alice, name="hidden", private=True)
    _, client = staff(role="admin")
    everyone = client.get("/admin/chat/room/", {"readable": "everyone"})
    members = client.get("/admin/chat/room/", {"readable": "members"})
    listed = [{room.slug for room in r.context["cl"].result_list} for r in (everyone, members)]
    assert listed == [{"general"}, {dm.slug, "hidden"}]


async def test_renaming_a_room_in_the_admin_reaches_open_sockets(people, sockets):
    alice, bob = await people("alice", "bob")
    room = await sync_to_async(services.room_create)(actor=alice.user, name="design")
    await sync_to_async(services.room_invite)(actor=alice.user, room="design", username="bob")
    sock = await sockets(bob)
    _, client = await sync_to_async(staff)(role="admin")
    response = await sync_to_async(client.post)(
        f"/admin/chat/room/{room.pk}/change/",
        {
            "name": "Design team",
            "topic": "pixels",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    event = await sock.receive()
    assert (event["type"], event["room"]["name"], event["room"]["topic"]) == (
        "room",
        "Design team",
        "pixels",
    )


def test_a_chat_admin_removes_files_in_the_admin_through_the_service():
    from chat.models import Event, Upload

    author = UserFactory()
    file = Upload.objects.create(
        uploader=author, name="leak.pdf", size=1, content_type="application/pdf"
    )
    sent = services.message_send(
        author=author, room="general", body="", nonce=None, attachments=(file.pk,)
    ).message
    moderator, client = staff(role="moderator")
    moderator.user_permissions.add(*Permission.objects.filter(codename="view_upload"))
    listed = client.get("/admin/chat/upload/", {"q": "leak"}).content.decode()
    assert "leak.pdf" in listed
    action = {"action": "remove_files", "_selected_action": [file.pk]}
    refused = client.post("/admin/chat/upload/", action, follow=True).content.decode()
    assert "Only a chat admin may remove others" in refused
    assert Upload.objects.filter(pk=file.pk).exists()

    admin, client = staff(role="admin")
    admin.user_permissions.add(*Permission.objects.filter(codename="view_upload"))
    done = client.post("/admin/chat/upload/", action, follow=True).content.decode()
    assert "Removed 1 file(s)." in done
    assert not Upload.objects.filter(pk=file.pk).exists()
    event = Event.objects.order_by("-seq").first()
    assert event is not None and event.kind == "attachment_removed"
    assert event.data == {"room": "general", "message": sent.pk, "id": file.pk}


def superuser_client():
    admin_user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin_user)
    return admin_user, client


def room_form(client: Client, room: Room, **changes) -> dict:
    """The room's change form as the admin page would post it back, with `changes`.

    `remove=[username, ...]` ticks Delete on those members' rows.
    """
    page = client.get(f"/admin/chat/room/{room.pk}/change/")
    assert page.status_code == 200
    remove = set(changes.pop("remove", ()))
    data = {
        name: value
        for name, value in page.context["adminform"].form.initial.items()
        if name in ("name", "topic")
    }
    if page.context["adminform"].form.initial.get("is_archived"):
        data["is_archived"] = "on"
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management.initial[name]
        for form in formset.forms:
            data[form.add_prefix("id")] = form.instance.pk
            data[form.add_prefix("room")] = room.pk
            if form.instance.user.username in remove:
                data[form.add_prefix("DELETE")] = "on"
    for name, value in changes.items():
        if name == "is_archived":
            if value:
                data["is_archived"] = "on"
            else:
                data.pop("is_archived", None)
        else:
            data[name] = value
    return data


def audit_actions() -> list[tuple[str, str, str]]:
    from integrations.models import AuditEntry

    return list(AuditEntry.objects.order_by("pk").values_list("action", "actor_name", "target"))


async def test_a_member_removed_in_the_admin_stops_receiving_the_room_at_once(people, sockets):
    alice, bob = await people("alice", "bob")
    room = await sync_to_async(services.room_create)(actor=alice.user, name="secret", private=True)
    await sync_to_async(services.room_invite)(actor=alice.user, room="secret", username="bob")
    sock = await sockets(bob)
    # The superuser is no member of the private room, and moderates it from the admin.
    _, client = await sync_to_async(superuser_client)()
    form = await sync_to_async(room_form)(client, room, remove=["bob"])
    response = await sync_to_async(client.post)(f"/admin/chat/room/{room.pk}/change/", form)
    assert response.status_code == 302
    removed = await sock.receive()
    assert (removed["type"], removed["user"], removed["action"], removed["by"]) == (
        "member",
        "bob",
        "removed",
        "root",
    )
    await sync_to_async(services.message_send)(
        author=alice.user, room="secret", body="after bob", nonce=None
    )
    await sync_to_async(services.message_send)(
        author=alice.user, room="general", body="to everyone", nonce=None
    )
    # The next thing bob hears is the general room's message: never the secret one.
    event = await sock.receive()
    assert (event["type"], event["room"], event["body"]) == ("message", "general", "to everyone")
    assert await sync_to_async(audit_actions)() == [("room.member_remove", "root", "room:secret")]


async def test_archiving_in_the_admin_reaches_sockets_and_refuses_sends(people, sockets):
    alice, bob = await people("alice", "bob")
    room = await sync_to_async(services.room_create)(actor=alice.user, name="old", private=True)
    await sync_to_async(services.room_invite)(actor=alice.user, room="old", username="bob")
    sock = await sockets(bob)
    _, client = await sync_to_async(superuser_client)()
    form = await sync_to_async(room_form)(client, room, is_archived=True)
    response = await sync_to_async(client.post)(f"/admin/chat/room/{room.pk}/change/", form)
    assert response.status_code == 302
    event = await sock.receive()
    assert (event["type"], event["room"]["slug"], event["room"]["archived"]) == (
        "room",
        "old",
        True,
    )
    await sock.send({"type": "send", "room": "old", "body": "still here?", "nonce": "n-1"})
    refused = await sock.receive()
    assert (refused["type"], refused["code"], refused["nonce"]) == ("error", "forbidden", "n-1")
    assert "archived" in refused["detail"]
    assert await sync_to_async(audit_actions)() == [("room.archive", "root", "room:old")]


async def test_a_message_deleted_in_the_admin_is_gone_from_open_pages_and_replays(people, sockets):
    alice, bob = await people("alice", "bob")
    await sync_to_async(services.room_create)(actor=alice.user, name="secret", private=True)
    await sync_to_async(services.room_invite)(actor=alice.user, room="secret", username="bob")
    sent = await sync_to_async(services.message_send)(
        author=alice.user, room="secret", body="oops", nonce=None
    )
    sock = await sockets(bob)
    _, client = await sync_to_async(superuser_client)()
    action = {"action": "delete_for_everyone", "_selected_action": [sent.message.pk]}
    response = await sync_to_async(client.post)("/admin/chat/message/", action, follow=True)
    assert "Deleted 1 message(s)." in response.content.decode()
    deleted = await sock.receive()
    assert (deleted["type"], deleted["id"]) == ("message_deleted", sent.message.pk)
    # The event log has it: a page that was away replays the deletion.
    replay = await sockets(bob, seq=deleted["seq"] - 1)
    again = await replay.receive()
    assert (again["type"], again["id"], again["seq"]) == (
        "message_deleted",
        sent.message.pk,
        deleted["seq"],
    )
    assert await sync_to_async(audit_actions)() == [("message.delete", "root", "room:secret")]


def test_rooms_are_not_added_in_the_admin_and_general_is_never_deleted():
    _, client = superuser_client()
    room = Room.objects.get(slug="general")
    assert client.get("/admin/chat/room/add/").status_code == 403
    assert client.post(f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(
        "/admin/chat/room/",
        {"action": "delete_selected", "_selected_action": [room.pk], "post": "yes"},
    )
    assert Room.objects.filter(slug="general").exists()


def test_a_room_with_messages_is_deleted_in_the_admin_after_a_count_of_what_goes():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    room = services.room_create(actor=alice, name="spam")
    services.room_join(actor=bob, room="spam")
    for body in ("buy", "now"):
        services.message_send(author=alice, room="spam", body=body, nonce=None)
    _, client = superuser_client()
    confirm = client.get(f"/admin/chat/room/{room.pk}/delete/")
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "2 message(s), gone for good" in page and "2 member(s)" in page
    assert client.post(f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Room.objects.filter(slug="spam").exists()
    assert client.get("/admin/chat/message/").context["cl"].result_count == 0
