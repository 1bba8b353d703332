"""The Django admin: what staff may change goes through the services, and nothing renders raw."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.test import Client

from chat import selectors, services
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


async def test_a_room_deleted_in_the_admin_is_gone_from_its_members_open_pages(people, sockets):
    alice, bob, carol = await people("alice", "bob", "carol")
    room = await sync_to_async(services.room_create)(actor=alice.user, name="secret", private=True)
    await sync_to_async(services.room_invite)(actor=alice.user, room="secret", username="bob")
    await sync_to_async(services.message_send)(
        author=alice.user, room="secret", body="for the record", nonce=None
    )
    members = {who.name: await sockets(who) for who in (alice, bob)}
    outsider = await sockets(carol)
    # The superuser is no member of the private room, and deletes it from the admin.
    _, client = await sync_to_async(superuser_client)()
    response = await sync_to_async(client.post)(
        f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    for name, sock in members.items():
        told = await sock.receive()
        assert (told["type"], told["action"], told["user"], told["by"]) == (
            "member",
            "deleted",
            name,
            "root",
        )
        assert (told["room"]["slug"], told["room"]["name"], told["room"]["private"]) == (
            "secret",
            "secret",
            True,
        )
    # Nothing more comes from the room: a typing hint there is refused and
    # reaches nobody, a send is refused, its history is gone.
    await members["alice"].send({"type": "typing", "room": "secret"})
    refused = await members["alice"].receive()
    assert (refused["type"], refused["code"]) == ("error", "no_such_room")
    await members["alice"].send({"type": "send", "room": "secret", "body": "hello?", "nonce": "n"})
    refused = await members["alice"].receive()
    assert (refused["type"], refused["code"], refused["nonce"]) == ("error", "no_such_room", "n")
    history = await sync_to_async(alice.get)("/api/rooms/secret/messages/")
    assert (history.status_code, history.json()["error"]) == (404, "no_such_room")
    await sync_to_async(services.message_send)(
        author=carol.user, room="general", body="to everyone", nonce=None
    )
    # The next thing anyone hears is the general room's message; carol, who
    # was never in the room, heard nothing of it at all.
    for sock in (*members.values(), outsider):
        event = await sock.receive()
        assert (event["type"], event["room"], event["body"]) == (
            "message",
            "general",
            "to everyone",
        )
    assert await sync_to_async(audit_actions)() == [("room.delete", "root", "room:secret")]


async def test_a_page_back_from_before_the_deletion_is_told_in_its_replay(people, sockets):
    alice, bob = await people("alice", "bob")
    room = await sync_to_async(services.room_create)(actor=alice.user, name="design")
    await sync_to_async(services.room_join)(actor=bob.user, room="design")
    away_since = await sync_to_async(selectors.latest_seq)()
    await sync_to_async(services.message_send)(
        author=alice.user, room="design", body="while bob was away", nonce=None
    )
    _, client = await sync_to_async(superuser_client)()
    response = await sync_to_async(client.post)(
        f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    back = await sockets(bob, seq=away_since)
    told = await back.receive()
    assert (told["type"], told["action"], told["user"], told["by"], told["room"]["slug"]) == (
        "member",
        "deleted",
        "bob",
        "root",
        "design",
    )
    # The room's own events went with it: the message is not replayed.
    resumed = await back.receive()
    assert resumed["type"] == "resumed"
    assert [r["room"] for r in resumed["rooms"]] == ["general"]


async def test_deleting_rooms_from_the_list_tells_the_members_of_each(people, sockets):
    alice, bob, carol = await people("alice", "bob", "carol")
    one = await sync_to_async(services.room_create)(actor=alice.user, name="one", private=True)
    await sync_to_async(services.room_invite)(actor=alice.user, room="one", username="bob")
    two = await sync_to_async(services.room_create)(actor=alice.user, name="two")
    await sync_to_async(services.room_join)(actor=carol.user, room="two")
    dm = await sync_to_async(services.dm_open)(actor=bob.user, usernames=["carol"])
    general = await sync_to_async(Room.objects.get)(slug="general")
    opened = {who.name: await sockets(who) for who in (alice, bob, carol)}
    _, client = await sync_to_async(superuser_client)()
    selected = [one.pk, two.pk, dm.pk, general.pk]
    response = await sync_to_async(client.post)(
        "/admin/chat/room/",
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
    )
    assert response.status_code == 302
    expected = {"alice": ["one", "two"], "bob": ["one", dm.slug], "carol": ["two", dm.slug]}
    for name, slugs in expected.items():
        told = [await opened[name].receive() for _ in slugs]
        assert sorted((e["type"], e["action"], e["by"], e["room"]["slug"]) for e in told) == [
            ("member", "deleted", "root", slug) for slug in sorted(slugs)
        ]
    remaining = await sync_to_async(list)(Room.objects.values_list("slug", flat=True))
    assert remaining == ["general"]
    deleted = sorted(a for a in await sync_to_async(audit_actions)() if a[0] == "room.delete")
    assert deleted == sorted(("room.delete", "root", f"room:{s}") for s in ("one", "two", dm.slug))


def test_only_a_chat_admin_deletes_a_room_and_never_general():
    alice = UserFactory(username="alice")
    services.room_create(actor=alice, name="design")
    design = Room.objects.get(slug="design")
    moderator, client = staff(role="moderator")
    moderator.user_permissions.add(*Permission.objects.filter(codename="delete_room"))
    assert client.post(f"/admin/chat/room/{design.pk}/delete/", {"post": "yes"}).status_code == 403
    with pytest.raises(services.ChatError) as refused:
        services.room_delete(actor=moderator, room="design")
    assert refused.value.code == "forbidden"
    root, _ = superuser_client()
    with pytest.raises(services.ChatError) as refused:
        services.room_delete(actor=root, room="general")
    assert refused.value.code == "forbidden"
    assert sorted(Room.objects.values_list("slug", flat=True)) == ["design", "general"]
