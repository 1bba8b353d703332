import pytest

from chat.models import Message
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_user_search_finds_by_username_and_email(admin_client):
    UserFactory(username="harriet", email="h@corp.example")
    UserFactory(username="ivan")
    page = admin_client.get("/admin/accounts/user/", {"q": "corp.example"}).content.decode()
    assert "harriet" in page and "ivan" not in page


def test_deactivate_and_activate_actions(admin_client):
    user = UserFactory()
    admin_client.post(
        "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [user.pk]}
    )
    user.refresh_from_db()
    assert not user.is_active
    admin_client.post(
        "/admin/accounts/user/", {"action": "activate_users", "_selected_action": [user.pk]}
    )
    user.refresh_from_db()
    assert user.is_active


def test_staff_flag_is_editable_on_the_user_page(admin_client):
    user = UserFactory()
    page = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert 'name="is_staff"' in page and 'name="is_active"' in page


def test_rooms_and_messages_are_managed_in_the_admin(admin_client):
    room = RoomFactory(slug="ops")
    Message.objects.create(room=room, author=UserFactory(), body="deploy at 5")
    assert "ops" in admin_client.get("/admin/chat/room/").content.decode()
    assert "deploy at 5" in admin_client.get("/admin/chat/message/").content.decode()
