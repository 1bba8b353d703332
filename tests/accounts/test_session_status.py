"""After its socket closes with 4401, the page asks /api/session/ why: deactivated or signed out."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import User
from accounts.services import user_deactivate
from tests.chat.sockets import connect
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def cookie(client: Client) -> str:
    return f"sessionid={client.cookies['sessionid'].value}"


def status(client: Client) -> tuple[int, str | None]:
    response = client.get("/api/session/")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response.get("Cache-Control", "")
    body = response.json()
    return response.status_code, body.get("error") or body.get("user")


async def test_a_deactivated_account_is_told_so_after_its_socket_closes():
    alice = await sync_to_async(UserFactory)(username="alice")
    moderator = await sync_to_async(UserFactory)(role=User.Role.MODERATOR)
    browser = await sync_to_async(signed_in)(alice)
    assert await sync_to_async(status)(browser) == (200, "alice")
    socket = await connect(cookie(browser))

    await sync_to_async(user_deactivate)(actor=moderator, user=alice)
    assert await socket.receive_close() == 4401
    assert await sync_to_async(status)(browser) == (401, "account_deactivated")
    detail = (await sync_to_async(browser.get)("/api/session/")).json()["detail"]
    assert "deactivated" in detail


async def test_a_signed_out_session_is_not_called_deactivated():
    alice = await sync_to_async(UserFactory)(username="alice")
    browser = await sync_to_async(signed_in)(alice)
    socket = await connect(cookie(browser))

    await sync_to_async(browser.post)("/accounts/logout/")
    assert await socket.receive_close() == 4401
    assert await sync_to_async(status)(browser) == (401, "not_authenticated")


async def test_a_password_changed_elsewhere_is_not_called_deactivated():
    alice = await sync_to_async(UserFactory)(username="alice")
    laptop, phone = await sync_to_async(signed_in)(alice), await sync_to_async(signed_in)(alice)
    socket = await connect(cookie(phone))

    response = await sync_to_async(laptop.post)(
        "/accounts/password/change/",
        {
            "oldpassword": PASSWORD,
            "password1": "an0ther-long-phrase",
            "password2": "an0ther-long-phrase",
        },
    )
    assert response.status_code == 302
    assert await socket.receive_close() == 4401
    assert await sync_to_async(status)(phone) == (401, "not_authenticated")
    # Deactivated later still does not speak for a session that had ended.
    await sync_to_async(User.objects.filter(pk=alice.pk).update)(is_active=False)
    assert await sync_to_async(status)(phone) == (401, "not_authenticated")


def test_anonymous_and_wrong_methods():
    assert status(Client()) == (401, "not_authenticated")
    response = Client().post("/api/session/")
    assert (response.status_code, response.json()["error"]) == (405, "method_not_allowed")
