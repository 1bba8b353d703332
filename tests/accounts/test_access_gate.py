"""Until they meet the admin's policy, people get no page, API or socket access.

Under the email-domains sign-up policy an address must be verified (anyone
can type an address at the company's domain); when the policy asks for
two-factor, staff, moderators and admins must have set it up.
"""

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import SignupPolicy, User
from tests.chat.sockets import open_socket
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def cookie_of(client: Client) -> str:
    return f"sessionid={client.cookies['sessionid'].value}"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def socket_opens(client: Client) -> bool:
    connected, sock = await open_socket(cookie_of(client))
    if connected:
        await sock.close()
    return connected


async def test_signing_up_at_an_allowed_domain_gives_nothing_until_the_address_is_verified():
    await sync_to_async(SignupPolicy(mode="domains", allowed_domains="corp.test").save)()
    client = Client()
    response = await sync_to_async(client.post)(
        "/accounts/signup/",
        {
            "username": "mallory",
            "email": "ceo@corp.test",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302
    page = await sync_to_async(client.get)("/r/general/")
    assert (page.status_code, page["Location"]) == (302, "/accounts/email/")
    api = await sync_to_async(client.get)("/api/rooms/general/messages/")
    assert (api.status_code, api.json()["error"]) == (403, "email_unverified")
    assert not await socket_opens(client)
    # The email page, where the link can be sent again, stays reachable.
    assert (await sync_to_async(client.get)("/accounts/email/")).status_code == 200

    await sync_to_async(EmailAddress.objects.filter(email="ceo@corp.test").update)(verified=True)
    assert (await sync_to_async(client.get)("/r/general/")).status_code == 200
    assert (await sync_to_async(client.get)("/api/rooms/general/messages/")).status_code == 200
    assert await socket_opens(client)


async def test_other_policies_and_superusers_are_not_held_for_their_address():
    member = await sync_to_async(UserFactory)()
    root = await sync_to_async(UserFactory)(is_superuser=True, is_staff=True)
    assert await socket_opens(await sync_to_async(signed_in)(member))  # open policy
    await sync_to_async(SignupPolicy(mode="domains", allowed_domains="corp.test").save)()
    assert await socket_opens(await sync_to_async(signed_in)(root))
    assert not await socket_opens(await sync_to_async(signed_in)(member))


@pytest.mark.parametrize(
    "fields",
    [{"is_staff": True}, {"role": User.Role.MODERATOR}, {"role": User.Role.ADMIN}],
    ids=["staff", "moderator", "admin"],
)
async def test_two_factor_when_required_holds_staff_moderators_and_admins_everywhere(fields):
    await sync_to_async(SignupPolicy(require_2fa_for_staff=True).save)()
    user = await sync_to_async(UserFactory)(**fields)
    client = await sync_to_async(signed_in)(user)
    page = await sync_to_async(client.get)("/r/general/")
    assert (page.status_code, page["Location"]) == (302, "/accounts/2fa/totp/activate/")
    api = await sync_to_async(client.get)("/api/rooms/general/messages/")
    assert (api.status_code, api.json()["error"]) == (403, "two_factor_required")
    assert not await socket_opens(client)

    await sync_to_async(Authenticator.objects.create)(
        user=user, type=Authenticator.Type.TOTP, data={"secret": "x"}
    )
    assert (await sync_to_async(client.get)("/r/general/")).status_code == 200
    assert await socket_opens(client)


async def test_members_are_not_asked_for_two_factor():
    await sync_to_async(SignupPolicy(require_2fa_for_staff=True).save)()
    member = await sync_to_async(UserFactory)()
    assert await socket_opens(await sync_to_async(signed_in)(member))
