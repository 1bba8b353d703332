"""Signup, login, logout, password reset and email verification through allauth."""

import os
import subprocess
import sys

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail

from chat.models import Membership
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()


def signup(client, username="carol", email="carol@example.com"):
    return client.post(
        "/accounts/signup/",
        {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def test_signup_creates_the_account_and_joins_general(client, general_room):
    response = signup(client)
    assert response.status_code == 302
    user = User.objects.get(username="carol")
    assert user.email == "carol@example.com"
    assert Membership.objects.filter(user=user, room=general_room).exists()
    # Signed in straight away (verification is optional by default).
    assert client.get("/r/general/").status_code == 200


def test_signup_page_uses_the_product_layout(client):
    page = client.get("/accounts/signup/").content.decode()
    assert "TeamChat" in page
    for field in ("username", "email", "password1", "password2"):
        assert f'name="{field}"' in page


def test_signup_refuses_a_taken_username_and_a_weak_password(client):
    UserFactory(username="carol")
    assert signup(client).status_code == 200
    response = client.post(
        "/accounts/signup/",
        {"username": "dave", "email": "d@example.com", "password1": "123", "password2": "123"},
    )
    assert response.status_code == 200
    assert not User.objects.filter(username="dave").exists()


@pytest.mark.parametrize("login", ["erin", "erin@example.com"])
def test_login_by_username_or_email(client, login):
    UserFactory(username="erin", email="erin@example.com")
    response = client.post("/accounts/login/", {"login": login, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/r/general/").status_code == 200


def test_wrong_password_does_not_log_in(client):
    UserFactory(username="erin")
    response = client.post("/accounts/login/", {"login": "erin", "password": "nope"})
    assert response.status_code == 200
    assert client.get("/r/general/").status_code == 302


def test_logout_ends_the_session(client):
    client.force_login(UserFactory())
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/api/rooms/general/messages/").status_code == 401


def test_password_reset_sends_an_email_with_a_working_link(client):
    user = UserFactory(email="frank@example.com")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    response = client.post("/accounts/password/reset/", {"email": "frank@example.com"})
    assert response.status_code == 302
    [message] = mail.outbox
    link = next(w for w in message.body.split() if "/accounts/password/reset/key/" in w)
    path = link.split("://", 1)[-1].split("/", 1)[1]
    form_page = client.get("/" + path, follow=True)
    assert form_page.status_code == 200
    response = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else "/" + path,
        {"password1": "a-brand-new-pass-phrase", "password2": "a-brand-new-pass-phrase"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-brand-new-pass-phrase")


def test_mandatory_verification_blocks_login_until_confirmed(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    signup(client, "gina", "gina@example.com")
    assert client.get("/r/general/").status_code == 302  # not signed in
    [message] = mail.outbox
    link = next(w for w in message.body.split() if "/accounts/confirm-email/" in w)
    path = "/" + link.split("://", 1)[-1].split("/", 1)[1]
    assert client.post(path).status_code == 302
    assert EmailAddress.objects.get(email="gina@example.com").verified
    response = client.post("/accounts/login/", {"login": "gina", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/r/general/").status_code == 200


def test_home_sends_anonymous_visitors_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def _run_settings(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**clean, "DJANGO_SETTINGS_MODULE": "teamchat.settings", **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_with_debug_off_is_a_clear_startup_error():
    result = _run_settings(DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_settings_start_with_a_secret_key_and_debug_off():
    key = "k3y-" + "a1B2c3D4e5" * 5
    assert _run_settings(DJANGO_DEBUG="false", DJANGO_SECRET_KEY=key).returncode == 0


@pytest.mark.parametrize(
    "key", ["change-me-to-a-long-random-string", "short-but-random-Zx81", "x" * 60]
)
def test_a_placeholder_or_weak_secret_key_is_refused_with_debug_off(key):
    result = _run_settings(DJANGO_DEBUG="false", DJANGO_SECRET_KEY=key)
    assert result.returncode != 0
    assert "placeholder or too weak" in result.stderr
