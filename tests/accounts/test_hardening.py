"""Rate limits, enumeration, the honeypot, password rules and reauthentication."""

import time

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()

ATTACKER = "203.0.113.5"
SOMEONE_ELSE = "198.51.100.9"


def per_ip_limit(action: str) -> int:
    """The first per-address limit configured for an allauth action."""
    for rate in settings.ACCOUNT_RATE_LIMITS[action].split(","):
        amount, _, per = rate.split("/")
        if per == "ip":
            return int(amount)
    raise AssertionError(f"no per-address limit for {action}")


def fail_login(client: Client, n: int, **headers) -> int:
    return client.post(
        "/accounts/login/", {"login": f"nobody{n}", "password": "wrong"}, headers=headers
    ).status_code


# --- Rate limits -----------------------------------------------------------


def test_failed_logins_from_one_address_end_in_429_but_not_for_another_address():
    UserFactory(username="erin")
    attacker = Client(REMOTE_ADDR=ATTACKER)
    limit = per_ip_limit("login")
    assert all(fail_login(attacker, n) == 200 for n in range(limit))
    refused = attacker.post("/accounts/login/", {"login": "erin", "password": PASSWORD})
    assert refused.status_code == 429
    assert attacker.get("/accounts/email/").status_code == 302  # not signed in

    someone = Client(REMOTE_ADDR=SOMEONE_ELSE)
    response = someone.post("/accounts/login/", {"login": "erin", "password": PASSWORD})
    assert response.status_code == 302
    assert someone.get("/accounts/email/").status_code == 200


def test_guesses_from_other_addresses_do_not_lock_the_owner_out():
    UserFactory(username="erin")
    for n in range(5):
        guesser = Client(REMOTE_ADDR=f"203.0.113.{10 + n}")
        guesser.post("/accounts/login/", {"login": "erin", "password": f"guess{n}"})
    owner = Client(REMOTE_ADDR=SOMEONE_ELSE)
    response = owner.post("/accounts/login/", {"login": "erin", "password": PASSWORD})
    assert response.status_code == 302
    assert owner.get("/accounts/email/").status_code == 200


def test_guessing_one_account_from_one_address_locks_that_address_out_of_it():
    UserFactory(username="erin")
    guesser = Client(REMOTE_ADDR=ATTACKER)
    for n in range(5):
        guesser.post("/accounts/login/", {"login": "erin", "password": f"guess{n}"})
    # Even the right password, from that address, for that account: not now.
    response = guesser.post("/accounts/login/", {"login": "erin", "password": PASSWORD})
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert guesser.get("/accounts/email/").status_code == 302


def test_a_forged_x_forwarded_for_does_not_reset_the_limit():
    # Default: no trusted proxy, so the header is the client's own words.
    assert settings.ALLAUTH_TRUSTED_PROXY_COUNT == 0
    attacker = Client(REMOTE_ADDR=ATTACKER)
    limit = per_ip_limit("login")
    for n in range(limit):
        assert fail_login(attacker, n, x_forwarded_for=f"192.0.2.{n}") == 200
    assert fail_login(attacker, limit, x_forwarded_for="192.0.2.250") == 429
    assert fail_login(attacker, limit + 1) == 429


def test_behind_one_proxy_the_right_most_forwarded_address_is_the_client(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    proxy = Client(REMOTE_ADDR="10.0.0.2")
    limit = per_ip_limit("login")
    # What the client wrote comes first; the proxy appends what it saw.
    for n in range(limit):
        assert fail_login(proxy, n, x_forwarded_for=f"192.0.2.{n}, {ATTACKER}") == 200
    assert fail_login(proxy, limit, x_forwarded_for=f"192.0.2.250, {ATTACKER}") == 429
    assert fail_login(proxy, limit, x_forwarded_for=ATTACKER) == 429
    # Another client behind the same proxy has its own count.
    assert fail_login(proxy, limit, x_forwarded_for=f"{ATTACKER}, {SOMEONE_ELSE}") == 200


def test_signups_from_one_address_end_in_429():
    client = Client(REMOTE_ADDR=ATTACKER)
    limit = per_ip_limit("signup")
    for n in range(limit):
        response = client.post(
            "/accounts/signup/",
            {"username": "", "email": f"s{n}@example.com", "password1": "x", "password2": "x"},
        )
        assert response.status_code == 200
    response = client.post(
        "/accounts/signup/",
        {
            "username": "late",
            "email": "late@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 429
    assert not User.objects.filter(username="late").exists()


def per_key_limit(action: str) -> int:
    """The first per-key (per login name or email address) limit for an allauth action."""
    for rate in settings.ACCOUNT_RATE_LIMITS[action].split(","):
        amount, _, per = rate.split("/")
        if per == "key":
            return int(amount)
    raise AssertionError(f"no per-key limit for {action}")


@pytest.mark.parametrize("email", ["frank@example.com", "nobody@example.com"])
def test_one_mailbox_gets_a_bounded_number_of_reset_emails(email):
    user = UserFactory(email="frank@example.com")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    limit = per_key_limit("reset_password")
    for n in range(limit):
        client = Client(REMOTE_ADDR=f"203.0.113.{20 + n}")
        assert client.post("/accounts/password/reset/", {"email": email}).status_code == 302
    assert len(mail.outbox) == limit
    late = Client(REMOTE_ADDR=SOMEONE_ELSE)
    assert late.post("/accounts/password/reset/", {"email": email}).status_code == 429
    assert len(mail.outbox) == limit


# --- Enumeration -----------------------------------------------------------


def test_password_reset_looks_the_same_for_known_and_unknown_addresses(client):
    user = UserFactory(email="frank@example.com")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    known = client.post("/accounts/password/reset/", {"email": "frank@example.com"})
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert client.get(known["Location"]).content == client.get(unknown["Location"]).content


def test_login_error_is_the_same_for_a_wrong_password_and_an_unknown_user(client):
    UserFactory(username="erin")
    wrong = client.post("/accounts/login/", {"login": "erin", "password": "nope"})
    unknown = client.post("/accounts/login/", {"login": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 200
    assert wrong.context["form"].errors == unknown.context["form"].errors


# --- Honeypot and passwords ------------------------------------------------


def test_signup_honeypot_is_hidden_from_people(client):
    page = client.get("/accounts/signup/").content.decode()
    field = settings.ACCOUNT_SIGNUP_FORM_HONEYPOT_FIELD
    tag = page[page.index(f'name="{field}"') :].split(">", 1)[0]
    assert " hidden" in tag and 'tabindex="-1"' in tag
    assert "style=" not in page  # the CSP would ignore it and show the field


def test_a_bot_filling_the_honeypot_gets_no_account(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "spambot",
            "email": "bot@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            settings.ACCOUNT_SIGNUP_FORM_HONEYPOT_FIELD: "https://spam.example",
        },
    )
    # It looks like success to the bot...
    assert response.status_code == 302
    # ...but nothing was created and nobody is signed in.
    assert not User.objects.filter(username="spambot").exists()
    assert client.get("/accounts/email/").status_code == 302


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password123", "too common"),
        ("short1!", "too short"),
        ("83920174658", "entirely numeric"),
        ("carolsmith1", "too similar"),
    ],
)
def test_weak_passwords_are_refused_at_signup(client, password, message):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "carolsmith",
            "email": "carol@example.com",
            "password1": password,
            "password2": password,
        },
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.filter(username="carolsmith").exists()


# --- Reauthentication ------------------------------------------------------


@pytest.fixture
def hana(client):
    user = UserFactory(username="hana", email="hana@example.com")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    client.force_login(user)
    return user


def add_email(client, email):
    return client.post("/accounts/email/", {"action_add": "", "email": email})


def test_adding_an_email_asks_for_the_password_first(client, hana):
    response = add_email(client, "hana2@example.com")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/")
    assert not EmailAddress.objects.filter(email="hana2@example.com").exists()

    wrong = client.post(response["Location"], {"password": "not-it"})
    assert wrong.status_code == 200
    assert not EmailAddress.objects.filter(email="hana2@example.com").exists()

    # The right password carries out the change that was asked for.
    client.post(response["Location"], {"password": PASSWORD})
    assert EmailAddress.objects.filter(user=hana, email="hana2@example.com").exists()


def test_after_the_timeout_an_email_change_asks_again(client, hana, monkeypatch):
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert add_email(client, "hana2@example.com")["Location"] == "/accounts/email/"
    assert EmailAddress.objects.filter(email="hana2@example.com").exists()

    real_time = time.time
    later = settings.ACCOUNT_REAUTHENTICATION_TIMEOUT + 1
    monkeypatch.setattr(time, "time", lambda: real_time() + later)
    response = add_email(client, "hana3@example.com")
    assert response["Location"].startswith("/accounts/reauthenticate/")
    assert not EmailAddress.objects.filter(email="hana3@example.com").exists()
