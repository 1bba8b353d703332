"""Two-factor sign-in with an authenticator app: optional for all, required for staff if set."""

import re
import time
from types import SimpleNamespace

import pytest
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal import auth as totp
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value

from accounts.models import SignupPolicy
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

SETUP = "/accounts/2fa/totp/activate/"
NOW = time.time()


@pytest.fixture(autouse=True)
def frozen_totp_clock(monkeypatch):
    # A code and its check must fall in the same 30-second step; freezing the
    # clock allauth's TOTP reads keeps that true however slowly the test runs.
    monkeypatch.setattr(totp, "time", SimpleNamespace(time=lambda: NOW))


def code_for(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(NOW) // 30))


def signed_out(client) -> bool:
    return client.get("/admin/")["Location"].startswith("/admin/login/")


@pytest.fixture
def policy_requires_2fa():
    policy = SignupPolicy(require_2fa_for_staff=True)
    policy.save()
    return policy


@pytest.fixture
def staff():
    return UserFactory(username="stella", is_staff=True, is_superuser=True)


def test_staff_without_an_authenticator_are_sent_to_set_one_up(client, staff, policy_requires_2fa):
    client.force_login(staff)
    for path in ("/admin/", "/admin/accounts/user/", "/", "/accounts/password/change/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == SETUP, path


def test_staff_set_up_an_authenticator_and_then_reach_the_admin(client, staff, policy_requires_2fa):
    client.force_login(staff)
    # Setting up two-factor asks for the password first, like any change to it.
    response = client.get(SETUP)
    assert response["Location"].startswith("/accounts/reauthenticate/")
    response = client.post(response["Location"], {"password": PASSWORD})
    assert response.status_code == 302
    page = client.get(SETUP).content.decode()
    secret = re.search(r'id="authenticator_secret"[^>]*value="([A-Z2-7=]+)"', page).group(1)

    wrong = "000000" if code_for(secret) != "000000" else "111111"
    assert client.post(SETUP, {"code": wrong}).status_code == 200
    assert not Authenticator.objects.filter(user=staff).exists()
    response = client.post(SETUP, {"code": code_for(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
    assert client.get("/admin/").status_code == 200


def test_staff_with_an_unverified_email_can_verify_it_first(client, staff, policy_requires_2fa):
    address = EmailAddress.objects.create(user=staff, email="stella@example.com", primary=True)
    client.force_login(staff)
    # allauth turns two-factor on only for verified addresses...
    response = client.get(SETUP, follow=True)
    assert "verified your email address" in response.content.decode()
    # ...so the pages that verify one stay reachable.
    assert client.get("/accounts/email/").status_code == 200
    confirmation = EmailConfirmationHMAC(address)
    response = client.post(f"/accounts/confirm-email/{confirmation.key}/")
    assert response.status_code == 302
    address.refresh_from_db()
    assert address.verified
    assert client.get(SETUP)["Location"].startswith("/accounts/reauthenticate/")


def test_staff_without_an_authenticator_can_still_log_out(client, staff, policy_requires_2fa):
    client.force_login(staff)
    assert client.post("/accounts/logout/").status_code == 302
    assert signed_out(client)


def test_without_the_policy_staff_need_no_authenticator(client, staff):
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_the_policy_leaves_members_alone(client, policy_requires_2fa):
    client.force_login(UserFactory())
    assert client.get("/accounts/email/").status_code == 200


def test_members_may_turn_on_two_factor(client):
    member = UserFactory()
    EmailAddress.objects.create(user=member, email=member.email, primary=True, verified=True)
    client.force_login(member)
    assert 'href="/accounts/2fa/"' in client.get("/accounts/email/").content.decode()
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert client.get("/accounts/2fa/").status_code == 200
    assert 'id="authenticator_secret"' in client.get(SETUP).content.decode()


def test_login_with_an_authenticator_needs_the_code(client, staff, policy_requires_2fa):
    secret = totp.generate_totp_secret()
    TOTP.activate(staff, secret)
    response = client.post("/accounts/login/", {"login": "stella", "password": PASSWORD})
    assert response["Location"] == "/accounts/2fa/authenticate/"
    # The password alone signs nobody in.
    assert signed_out(client)

    wrong = client.post("/accounts/2fa/authenticate/", {"code": "12345"})
    assert wrong.status_code == 200
    assert signed_out(client)

    response = client.post("/accounts/2fa/authenticate/", {"code": code_for(secret)})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_admin_login_form_cannot_skip_allauth(client, staff):
    TOTP.activate(staff, totp.generate_totp_secret())
    page = client.get("/admin/login/?next=/admin/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")
    client.post("/admin/login/", {"username": "stella", "password": PASSWORD, "next": "/admin/"})
    assert signed_out(client)
