"""The audit log: each admin and security action leaves one entry (who, what, on what,
from where), admins read it with filters, and nobody changes or deletes it."""

from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection
from django.test import Client
from django.utils import timezone

from accounts.models import Invite, Session, SignupPolicy, User
from accounts.services import invite_create
from chat.models import Room
from integrations.audit import audit_record
from integrations.models import AuditEntry
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = "203.0.113.7"


@pytest.fixture
def admin(person):
    """A signed-in superuser whose requests come from ADDRESS."""
    root = person("root", role="admin", is_staff=True, is_superuser=True)
    root.client.defaults["REMOTE_ADDR"] = ADDRESS
    return root


def entries(action: str) -> list[tuple]:
    return list(
        AuditEntry.objects.filter(action=action)
        .order_by("id")
        .values_list("actor_name", "target", "ip", "data")
    )


def admin_change(admin, user: User, **changes) -> None:
    """Save a user's change form in the Django admin as an admin would, with `changes`."""
    url = f"/admin/accounts/user/{user.pk}/change/"
    form = admin.client.get(url).context["adminform"].form
    data = {
        key: value
        for key, value in form.initial.items()
        if value is not None
        and key not in ("password", "groups", "user_permissions", "last_login", "date_joined")
    }
    data.update(
        {
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        }
    )
    for key in ("is_active", "is_staff", "is_superuser"):
        if data.get(key) is True:
            data[key] = "on"
        elif data.get(key) is False:
            data.pop(key)
    for key, value in changes.items():
        if value is False:
            data.pop(key, None)
        else:
            data[key] = "on" if value is True else value
    response = admin.client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors


def test_a_role_change_in_the_admin_is_recorded_with_who_and_where(admin, person):
    alice = person("alice")
    admin_change(admin, alice.user, role="moderator")
    assert entries("user.role") == [
        ("root", "user:alice", ADDRESS, {"from": "member", "to": "moderator"})
    ]


def test_deactivation_and_reactivation_are_recorded(admin, person):
    alice = person("alice")
    response = admin.client.post(
        "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [alice.user.pk]}
    )
    assert response.status_code == 302
    admin.client.post(
        "/admin/accounts/user/", {"action": "activate_users", "_selected_action": [alice.user.pk]}
    )
    assert [e[:3] for e in entries("user.deactivate")] == [("root", "user:alice", ADDRESS)]
    assert [e[:3] for e in entries("user.activate")] == [("root", "user:alice", ADDRESS)]


def test_a_signup_policy_change_records_what_changed(admin):
    assert admin.client.get("/admin/accounts/signuppolicy/", follow=True).status_code == 200
    response = admin.client.post(
        "/admin/accounts/signuppolicy/1/change/",
        {"mode": "invite", "allowed_domains": "", "members_may_create_bots": "on"},
    )
    assert response.status_code == 302
    [(actor, target, ip, data)] = entries("policy.signup")
    assert (actor, target, ip) == ("root", "policy:signup", ADDRESS)
    assert data == {"mode": "invite", "members_may_create_bots": True}
    assert SignupPolicy.objects.get().mode == "invite"


def test_invites_made_and_deleted_in_the_admin_are_recorded(admin):
    expires = timezone.now() + timedelta(days=3)
    response = admin.client.post(
        "/admin/accounts/invite/add/",
        {"note": "for the design team", "max_uses": "5",
         "expires_0": expires.strftime("%Y-%m-%d"), "expires_1": expires.strftime("%H:%M:%S")},
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    invite = Invite.objects.get()
    [(actor, target, ip, data)] = entries("invite.create")
    assert (actor, target, ip) == ("root", f"invite:{invite.pk}", ADDRESS)
    assert data["max_uses"] == 5
    response = admin.client.post(f"/admin/accounts/invite/{invite.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert [e[:3] for e in entries("invite.delete")] == [("root", f"invite:{invite.pk}", ADDRESS)]


def test_archiving_a_room_and_removing_a_member_are_recorded(admin, person, channel):
    alice = person("alice")
    channel("design", admin, alice)
    assert admin.delete("/api/rooms/design/members/alice/").status_code == 204
    assert admin.patch("/api/rooms/design/", {"archived": True}).status_code == 200
    assert admin.patch("/api/rooms/design/", {"archived": False}).status_code == 200
    assert entries("room.member_remove") == [("root", "room:design", ADDRESS, {"user": "alice"})]
    assert [e[:3] for e in entries("room.archive")] == [("root", "room:design", ADDRESS)]
    assert [e[:3] for e in entries("room.unarchive")] == [("root", "room:design", ADDRESS)]


def test_a_moderator_deleting_someone_elses_message_is_recorded_but_not_ones_own(admin, person):
    alice = person("alice")
    theirs = alice.post("/api/rooms/general/messages/", {"body": "spam"}).json()["message"]["id"]
    mine = admin.post("/api/rooms/general/messages/", {"body": "oops"}).json()["message"]["id"]
    assert admin.delete(f"/api/messages/{theirs}/").status_code == 204
    assert admin.delete(f"/api/messages/{mine}/").status_code == 204
    assert entries("message.delete") == [
        ("root", "room:general", ADDRESS, {"message": theirs, "author": "alice"})
    ]


def test_a_password_set_by_an_admin_is_recorded_without_the_password(admin, person):
    alice = person("alice")
    new = "another-long-pass-phrase"
    response = admin.client.post(
        f"/admin/accounts/user/{alice.user.pk}/password/",
        {"password1": new, "password2": new, "usable_password": "true"},
    )
    assert response.status_code == 302
    assert entries("user.password_set") == [("root", "user:alice", ADDRESS, {"usable": True})]
    alice.user.refresh_from_db()
    assert alice.user.check_password(new)
    assert new not in str(AuditEntry.objects.values_list("data", flat=True))


def test_an_account_made_in_the_admin_is_recorded(admin):
    response = admin.client.post(
        "/admin/accounts/user/add/",
        {"username": "dora", "password1": PASSWORD, "password2": PASSWORD,
         "usable_password": "true", "role": "moderator"},
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert entries("user.create") == [
        (
            "root",
            "user:dora",
            ADDRESS,
            {"role": "moderator", "is_staff": False, "is_superuser": False},
        )
    ]


def test_staff_status_and_groups_given_in_the_admin_are_recorded(admin, person):
    alice = person("alice")
    auditors = Group.objects.create(name="auditors")
    admin_change(admin, alice.user, is_staff=True, groups=[auditors.pk])
    assert entries("user.privileges") == [
        ("root", "user:alice", ADDRESS, {"is_staff": {"from": False, "to": True}}),
        ("root", "user:alice", ADDRESS, {"groups": {"added": ["auditors"], "removed": []}}),
    ]


def test_resetting_someones_two_factor_in_the_admin_is_recorded(admin, person):
    alice = person("alice")
    totp = Authenticator.objects.create(
        user=alice.user, type=Authenticator.Type.TOTP, data={"secret": "x"}
    )
    response = admin.client.post(f"/admin/mfa/authenticator/{totp.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=alice.user).exists()
    assert entries("user.2fa_reset") == [("root", "user:alice", ADDRESS, {"type": "totp"})]
    # The list's bulk delete records each one too.
    codes = Authenticator.objects.create(
        user=alice.user, type=Authenticator.Type.RECOVERY_CODES, data={"seed": "x"}
    )
    response = admin.client.post(
        "/admin/mfa/authenticator/",
        {"action": "delete_selected", "_selected_action": [codes.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert entries("user.2fa_reset")[1] == (
        "root",
        "user:alice",
        ADDRESS,
        {"type": "recovery_codes"},
    )


def test_signing_someone_out_in_the_admin_is_recorded(admin, person):
    alice = person("alice")
    session = Session.objects.get(user=alice.user)
    response = admin.client.post(
        f"/admin/accounts/session/{session.session_key}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert entries("session.delete") == [("root", "user:alice", ADDRESS, {})]
    assert alice.client.get("/api/rooms/").status_code in (302, 401, 403)


def test_deleting_a_room_in_the_admin_is_recorded_with_what_it_was(admin, channel):
    room = channel("design", admin)
    response = admin.client.post(f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Room.objects.filter(slug="design").exists()
    what = {"name": "design", "kind": room.kind, "messages": 0, "files": 0}
    assert entries("room.delete") == [("root", "room:design", ADDRESS, what)]


def test_signing_up_with_an_invite_is_recorded_as_the_new_account(admin):
    SignupPolicy(mode=SignupPolicy.Mode.INVITE).save()
    link = invite_create(created_by=admin.user, max_uses=1)
    visitor = Client(REMOTE_ADDR="198.51.100.9")
    visitor.get(link.path)
    response = visitor.post(
        "/accounts/signup/",
        {"username": "carol", "email": "carol@example.com",
         "password1": PASSWORD, "password2": PASSWORD},
    )  # fmt: skip
    assert response.status_code == 302
    [(actor, target, ip, _)] = entries("invite.accept")
    assert (actor, target, ip) == ("carol", f"invite:{link.pk}", "198.51.100.9")
    assert AuditEntry.objects.get(action="invite.accept").actor == User.objects.get(
        username="carol"
    )


def test_an_admin_removing_someones_file_is_recorded_but_not_the_uploader(admin, person):
    from django.core.files.uploadedfile import SimpleUploadedFile

    alice = person("alice")

    def upload(name: str) -> int:
        file = SimpleUploadedFile(name, b"minutes", content_type="text/plain")
        response = alice.client.post("/api/uploads/", {"file": file})
        assert response.status_code == 201, response.content
        return response.json()["upload"]["id"]

    sent, kept = upload("minutes.txt"), upload("draft.txt")
    response = alice.post("/api/rooms/general/messages/", {"body": "", "attachments": [sent]})
    assert response.status_code in (200, 201), response.content
    message = response.json()["message"]["id"]
    assert alice.delete(f"/api/uploads/{kept}/").status_code == 204
    assert admin.delete(f"/api/uploads/{sent}/").status_code == 204
    assert entries("upload.delete") == [
        (
            "root",
            "room:general",
            ADDRESS,
            {"upload": sent, "name": "minutes.txt", "uploader": "alice", "message": message},
        )
    ]


def test_a_failed_action_leaves_no_entry(person):
    alice = person("alice")
    person("bob")
    response = alice.delete("/api/rooms/general/members/bob/")
    assert response.status_code == 403
    assert not AuditEntry.objects.exists()


# --- reading it ---------------------------------------------------------------------


def test_admins_read_the_log_with_filters_and_cannot_change_it(admin, person):
    person("alice")
    audit_record(action="user.role", target="user:alice", data={"to": "moderator"})
    audit_record(action="room.archive", target="room:design")
    page = admin.client.get("/admin/integrations/auditentry/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "user:alice" in html and "room:design" in html
    filtered = admin.client.get(
        "/admin/integrations/auditentry/?action=room.archive"
    ).content.decode()
    assert "room:design" in filtered and "user:alice" not in filtered
    searched = admin.client.get("/admin/integrations/auditentry/?q=alice").content.decode()
    assert "user:alice" in searched and "room:design" not in searched
    entry = AuditEntry.objects.get(action="room.archive")
    assert admin.client.get(f"/admin/integrations/auditentry/{entry.pk}/change/").status_code == 200
    assert (
        admin.client.post(
            f"/admin/integrations/auditentry/{entry.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert admin.client.get("/admin/integrations/auditentry/add/").status_code == 403
    assert AuditEntry.objects.count() == 2


def test_a_staff_admin_finds_the_log_filters_it_by_date_and_reads_an_entry(person):
    ada = person("ada", role="admin", is_staff=True)
    assert "/admin/integrations/auditentry/" in ada.client.get("/admin/").content.decode()
    audit_record(action="user.role", target="user:alice", data={"from": "member", "to": "admin"})
    old = timezone.now() - timedelta(days=40)
    AuditEntry.objects.create(at=old, action="room.archive", target="room:old-project")
    page = ada.client.get("/admin/integrations/auditentry/").content.decode()
    assert "user:alice" in page and "room:old-project" in page
    assert "delete_selected" not in page and 'name="action"' not in page
    since = (timezone.now() - timedelta(days=7)).isoformat()
    recent = ada.client.get("/admin/integrations/auditentry/", {"at__gte": since}).content.decode()
    assert "user:alice" in recent and "room:old-project" not in recent
    month = ada.client.get(
        f"/admin/integrations/auditentry/?at__year={old.year}&at__month={old.month}"
    ).content.decode()
    assert "room:old-project" in month
    entry = AuditEntry.objects.get(action="user.role")
    detail = ada.client.get(f"/admin/integrations/auditentry/{entry.pk}/change/").content.decode()
    shown = '{\n  "from": "member",\n  "to": "admin"\n}'.replace('"', "&quot;")
    assert f"<pre>{shown}</pre>" in detail
    assert 'type="submit"' not in detail.split('id="auditentry_form"')[-1].split("</form>")[0]


def test_a_moderator_does_not_read_the_log(person):
    moderator = person("mod", role="moderator", is_staff=True)
    assert moderator.client.get("/admin/integrations/auditentry/").status_code == 403


def test_entries_are_append_only_in_the_application():
    entry = audit_record(action="token.create", target="user:x")
    entry.action = "something.else"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()
    assert AuditEntry.objects.get().action == "token.create"


def test_an_entry_made_outside_a_request_keeps_the_name_and_has_no_address(person):
    alice = person("alice")
    audit_record(action="token.create", actor=alice.user, target="user:alice")
    User.objects.filter(pk=alice.user.pk).update(username="alice2")
    entry = AuditEntry.objects.get()
    assert (entry.actor_name, entry.ip) == ("alice", None)


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the database trigger is PostgreSQL's"
)


@postgresql_only
def test_the_database_refuses_changing_or_deleting_an_entry_even_by_sql():
    entry = audit_record(action="user.role", target="user:alice")
    for sql in (
        "UPDATE integrations_auditentry SET action = 'nothing' WHERE id = %s",
        "UPDATE integrations_auditentry SET actor_name = 'mallory', actor_id = NULL WHERE id = %s",
        "DELETE FROM integrations_auditentry WHERE id = %s",
    ):
        with pytest.raises(IntegrityError, match="append-only"), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])
    with pytest.raises(IntegrityError, match="append-only"):
        AuditEntry.objects.all().delete()  # the queryset skips the model's guard
    with pytest.raises(IntegrityError, match="append-only"):
        AuditEntry.objects.update(target="user:bob")
    assert AuditEntry.objects.values_list("action", "target").get() == ("user.role", "user:alice")


@postgresql_only
def test_deleting_an_account_keeps_its_entries_under_its_name(person):
    carol = person("carol")
    audit_record(action="token.create", actor=carol.user, target="user:carol")
    carol.user.delete()
    entry = AuditEntry.objects.get()
    assert (entry.actor_id, entry.actor_name, entry.action) == (None, "carol", "token.create")
