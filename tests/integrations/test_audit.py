"""The audit log: each admin and security action leaves one entry (who, what, on what,
from where), admins read it with filters, and nobody changes or deletes it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Invite, SignupPolicy, User
from integrations.audit import audit_record
from integrations.models import AuditEntry

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
