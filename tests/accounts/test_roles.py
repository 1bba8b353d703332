"""Roles: who may deactivate whom, and the role in the admin."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.test import Client

from accounts.models import User
from accounts.services import user_deactivate
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

Role = User.Role


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_moderator_deactivates_a_member_who_is_then_signed_out():
    member = UserFactory()
    member_browser = signed_in(member)
    assert member_browser.get("/accounts/email/").status_code == 200
    assert user_deactivate(actor=UserFactory(role=Role.MODERATOR), user=member)
    member.refresh_from_db()
    assert not member.is_active
    assert member_browser.get("/accounts/email/").status_code == 302


def test_a_moderator_may_deactivate_another_moderator():
    other = UserFactory(role=Role.MODERATOR)
    assert user_deactivate(actor=UserFactory(role=Role.MODERATOR), user=other)


@pytest.mark.parametrize(
    "target",
    [{"role": Role.ADMIN}, {"is_superuser": True}],
    ids=["admin role", "superuser"],
)
def test_a_moderator_may_not_deactivate_an_admin(target):
    admin = UserFactory(**target)
    with pytest.raises(PermissionDenied):
        user_deactivate(actor=UserFactory(role=Role.MODERATOR), user=admin)
    admin.refresh_from_db()
    assert admin.is_active


def test_an_admin_may_deactivate_an_admin():
    other = UserFactory(role=Role.ADMIN)
    assert user_deactivate(actor=UserFactory(role=Role.ADMIN), user=other)


@pytest.mark.parametrize("actor", [{"role": Role.MEMBER}, {"role": Role.MEMBER, "is_staff": True}])
def test_members_may_not_deactivate_anyone(actor):
    member = UserFactory()
    with pytest.raises(PermissionDenied):
        user_deactivate(actor=UserFactory(**actor), user=member)
    member.refresh_from_db()
    assert member.is_active


def test_nobody_deactivates_themselves():
    admin = UserFactory(role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        user_deactivate(actor=admin, user=admin)


# --- The admin -------------------------------------------------------------


@pytest.fixture
def root():
    return signed_in(UserFactory(username="root", is_staff=True, is_superuser=True))


def listed(page: str) -> dict[str, str]:
    """username -> the role column, from the admin's user list."""
    rows = re.findall(
        r'<a href="/admin/accounts/user/\d+/change/[^"]*">([^<]+)</a>.*?'
        r'<td class="field-role_shown">([^<]*)</td>',
        page,
        re.S,
    )
    return dict(rows)


def test_role_is_listed_and_filterable(root):
    UserFactory(username="mona", role=Role.MODERATOR)
    UserFactory(username="mike")
    UserFactory(username="ada", role=Role.ADMIN)
    assert listed(root.get("/admin/accounts/user/").content.decode()) == {
        "ada": "Admin",
        "mike": "Member",
        "mona": "Moderator",
        "root": "Admin (superuser)",
    }
    for role, names in {
        "moderator": {"mona"},
        "member": {"mike"},
        "admin": {"ada", "root"},
    }.items():
        page = root.get("/admin/accounts/user/", {"role": role}).content.decode()
        assert set(listed(page)) == names, role


def test_a_superuser_is_an_admin_whatever_role_is_stored():
    root = UserFactory(is_superuser=True, role=Role.MEMBER)
    assert root.effective_role == Role.ADMIN
    assert root.is_chat_admin and root.is_moderator
    assert User.objects.filter(User.with_effective_role(Role.ADMIN)).get() == root
    assert not User.objects.filter(User.with_effective_role(Role.MEMBER)).exists()


def test_a_superusers_page_shows_admin_instead_of_a_role_choice(root):
    other = UserFactory(username="boss", is_superuser=True, is_staff=True)
    page = root.get(f"/admin/accounts/user/{other.pk}/change/").content.decode()
    assert 'name="role"' not in page
    assert "Admin (superuser)" in page
    # Saving the page leaves the stored role alone.
    response = root.post(
        f"/admin/accounts/user/{other.pk}/change/",
        {**_form(other), "is_staff": "on", "is_superuser": "on"},
    )
    assert response.status_code == 302, response.content
    other.refresh_from_db()
    assert other.role == Role.MEMBER and other.is_superuser


def test_the_admin_index_has_one_section_per_name(root):
    page = root.get("/admin/").content.decode()
    sections = re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', page)
    assert "Users and sign-up" in sections
    assert len(sections) == len({name.lower() for name in sections}), sections


def test_role_is_editable_on_the_user_page(root):
    user = UserFactory(username="mike")
    page = root.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert 'name="role"' in page
    response = root.post(
        f"/admin/accounts/user/{user.pk}/change/",
        {
            "username": "mike",
            "email": user.email,
            "role": "moderator",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.role == Role.MODERATOR


def test_role_can_be_chosen_when_adding_a_user(root):
    assert 'name="role"' in root.get("/admin/accounts/user/add/").content.decode()


def staff_moderator():
    user = UserFactory(username="mod", is_staff=True, role=Role.MODERATOR)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    return user


def test_the_deactivate_action_follows_the_roles():
    member = UserFactory(username="mike")
    admin = UserFactory(username="ada", role=Role.ADMIN)
    browser = signed_in(staff_moderator())
    response = browser.post(
        "/admin/accounts/user/",
        {"action": "deactivate_users", "_selected_action": [member.pk, admin.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Deactivated 1 user(s)." in page
    assert "Only an admin may deactivate an admin. Not deactivated: ada." in page
    member.refresh_from_db()
    admin.refresh_from_db()
    assert not member.is_active and admin.is_active


def _form(user, **changes) -> dict:
    data = {
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
    }
    if user.is_active:
        data["is_active"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_user_form_follows_the_roles_a_moderator_cannot_deactivate_an_admin():
    admin = UserFactory(username="ada", role=Role.ADMIN)
    browser = signed_in(staff_moderator())
    response = browser.post(
        f"/admin/accounts/user/{admin.pk}/change/", _form(admin, is_active=None), follow=True
    )
    assert "Only an admin may deactivate an admin. Not changed." in response.content.decode()
    admin.refresh_from_db()
    assert admin.is_active


def test_the_user_form_gives_roles_only_through_an_admin():
    moderator = staff_moderator()
    browser = signed_in(moderator)
    for target in (moderator, UserFactory(username="mike")):
        response = browser.post(
            f"/admin/accounts/user/{target.pk}/change/", _form(target, role="admin"), follow=True
        )
        assert "Only an admin may change roles. Not changed." in response.content.decode()
        target.refresh_from_db()
        assert target.role != Role.ADMIN
    # Nor may a moderator make anyone staff or superuser through the form.
    page = browser.get(f"/admin/accounts/user/{moderator.pk}/change/").content.decode()
    assert 'name="is_superuser"' not in page and 'name="is_staff"' not in page
