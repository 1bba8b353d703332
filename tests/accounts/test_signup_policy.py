"""Who may sign up: open, by invite link, or by email domain, as the admin sets it."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import Invite, SignupPolicy
from accounts.services import invite_create, invite_redeem
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()


def set_policy(**fields) -> SignupPolicy:
    policy = SignupPolicy(**fields)
    policy.save()
    return policy


def signup(client, username="carol", email=None, **extra):
    return client.post(
        "/accounts/signup/",
        {
            "username": username,
            "email": email or f"{username}@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            **extra,
        },
    )


def invite(**fields) -> Invite:
    return invite_create(created_by=None, **fields)


# --- Open --------------------------------------------------------------------


def test_open_mode_lets_anyone_sign_up(client):
    set_policy(mode=SignupPolicy.Mode.OPEN)
    assert signup(client).status_code == 302
    assert User.objects.filter(username="carol").exists()


def test_operator_switch_closes_signup_whatever_the_policy(client, settings):
    settings.ACCOUNT_ALLOW_SIGNUP = False
    for mode in SignupPolicy.Mode:
        set_policy(mode=mode, allowed_domains="example.com")
        link = invite()
        client.get(link.path)
        response = signup(client, f"u-{mode}")
        assert response.status_code == 200
        assert "closed" in response.content.decode().lower()
    assert not User.objects.exists()
    assert not Invite.objects.filter(uses__gt=0).exists()


# --- Invite only -----------------------------------------------------------


def test_invite_mode_without_an_invite_explains_and_creates_nothing(client):
    set_policy(mode=SignupPolicy.Mode.INVITE)
    page = client.get("/accounts/signup/")
    assert page.status_code == 403
    assert "by invitation" in page.content.decode()
    assert signup(client).status_code == 403
    assert not User.objects.exists()


def test_invite_link_leads_to_signup_and_uses_the_invite_once(client):
    set_policy(mode=SignupPolicy.Mode.INVITE)
    link = invite(max_uses=2)
    response = client.get(link.path)
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/"
    assert 'name="username"' in client.get("/accounts/signup/").content.decode()
    assert signup(client).status_code == 302
    assert User.objects.filter(username="carol").exists()
    link.refresh_from_db()
    assert link.uses == 1


def test_one_invite_visit_signs_up_one_account(client):
    set_policy(mode=SignupPolicy.Mode.INVITE)
    link = invite(max_uses=5)
    client.get(link.path)
    assert signup(client, "carol").status_code == 302
    client.post("/accounts/logout/")
    # The same browser, without opening the link again.
    assert signup(client, "dave").status_code == 403
    assert not User.objects.filter(username="dave").exists()


def test_used_up_invite_is_refused(client):
    set_policy(mode=SignupPolicy.Mode.INVITE)
    link = invite(max_uses=1)
    client.get(link.path)
    assert signup(client, "carol").status_code == 302
    other = client_for_new_visitor()
    page = other.get(link.path)
    assert page.status_code == 410
    assert "already been used" in page.content.decode()
    assert signup(other, "dave").status_code == 403
    assert not User.objects.filter(username="dave").exists()


def test_expired_invite_is_refused(client):
    set_policy(mode=SignupPolicy.Mode.INVITE)
    link = invite(expires=timezone.now() - timedelta(minutes=1))
    page = client.get(link.path)
    assert page.status_code == 410
    assert "expired" in page.content.decode()
    assert signup(client).status_code == 403
    assert not User.objects.exists()


def test_invite_that_expires_after_the_visit_is_refused_at_signup(client):
    set_policy(mode=SignupPolicy.Mode.INVITE)
    link = invite()
    client.get(link.path)
    Invite.objects.filter(pk=link.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert signup(client).status_code == 403
    assert not User.objects.exists()


def test_bogus_invite_is_refused(client):
    set_policy(mode=SignupPolicy.Mode.INVITE)
    page = client.get("/accounts/invite/not-a-real-token/")
    assert page.status_code == 404
    assert "not valid" in page.content.decode()
    assert signup(client).status_code == 403
    assert not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_invite_taken_between_check_and_save_creates_no_account(client, monkeypatch):
    set_policy(mode=SignupPolicy.Mode.INVITE)
    link = invite(max_uses=1)
    client.get(link.path)

    def another_signup_wins_first(*, token):
        # Another browser's sign-up, on its own connection, takes the last use
        # after this request checked the invite but before it saves the account.
        winner = threading.Thread(target=redeem_on_own_connection, args=(token,))
        winner.start()
        winner.join(timeout=30)
        return invite_redeem(token=token)

    monkeypatch.setattr("accounts.adapters.invite_redeem", another_signup_wins_first)
    response = signup(client)
    assert response.status_code == 410
    assert "No account was created" in response.content.decode()
    assert not User.objects.filter(username="carol").exists()
    link.refresh_from_db()
    assert link.uses == 1


def redeem_on_own_connection(token: str) -> bool:
    try:
        return invite_redeem(token=token)
    finally:
        connection.close()


def client_for_new_visitor() -> Client:
    return Client()


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeems_never_exceed_max_uses():
    link = invite(max_uses=3)
    racers = 12
    barrier = threading.Barrier(racers)

    def race() -> bool:
        # All connections open first, then all redeem at once.
        barrier.wait(timeout=30)
        return redeem_on_own_connection(link.token)

    with ThreadPoolExecutor(max_workers=racers) as pool:
        results = list(pool.map(lambda _: race(), range(racers)))
    assert results.count(True) == 3
    link.refresh_from_db()
    assert link.uses == 3


# --- Email domains -----------------------------------------------------------


def test_domains_mode_accepts_listed_domains(client):
    set_policy(mode=SignupPolicy.Mode.DOMAINS, allowed_domains="corp.example\n@Example.org")
    assert signup(client, "carol", "carol@CORP.example").status_code == 302
    client.post("/accounts/logout/")
    assert signup(client, "dave", "dave@example.org").status_code == 302
    assert User.objects.filter(username__in=["carol", "dave"]).count() == 2


def test_domains_mode_refuses_other_addresses_with_a_form_error(client):
    set_policy(mode=SignupPolicy.Mode.DOMAINS, allowed_domains="corp.example")
    for email in ("eve@elsewhere.example", "eve@sub.corp.example", "eve@corp.example.evil"):
        response = signup(client, "eve", email)
        assert response.status_code == 200
        assert "limited to approved email domains" in response.content.decode()
    assert not User.objects.filter(username="eve").exists()


def test_domains_mode_still_lets_existing_accounts_reset_their_password(client):
    set_policy(mode=SignupPolicy.Mode.DOMAINS, allowed_domains="corp.example")
    UserFactory(username="old", email="old@elsewhere.example")
    response = client.post("/accounts/password/reset/", {"email": "old@elsewhere.example"})
    assert response.status_code == 302


def test_domains_mode_needs_a_domain():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        SignupPolicy(mode=SignupPolicy.Mode.DOMAINS, allowed_domains=" ,\n").full_clean()


# --- In the admin ----------------------------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_admin_edits_the_signup_policy(admin_client, client):
    listing = admin_client.get("/admin/accounts/signuppolicy/")
    assert listing.status_code == 302
    page = admin_client.get(listing["Location"]).content.decode()
    assert 'name="mode"' in page and 'name="allowed_domains"' in page
    assert 'name="require_2fa_for_staff"' in page
    response = admin_client.post(
        listing["Location"], {"mode": "domains", "allowed_domains": "corp.example"}
    )
    assert response.status_code == 302
    assert SignupPolicy.objects.get().mode == "domains"
    client.post("/accounts/logout/")
    response = signup(client, "eve", "eve@elsewhere.example")
    assert "limited to approved email domains" in response.content.decode()


def test_admin_creates_an_invite_and_sees_its_link(admin_client):
    response = admin_client.post(
        "/admin/accounts/invite/add/",
        {
            "note": "for the new designer",
            "max_uses": "1",
            "expires_0": (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%d"),
            "expires_1": "12:00:00",
        },
    )
    assert response.status_code == 302
    link = Invite.objects.get()
    assert link.created_by.username == "root"
    assert len(link.token) >= 40
    # Full URLs, ready to copy and send: on the admin's own address...
    url = f"http://testserver/accounts/invite/{link.token}/"
    assert f"<code>{url}</code>" in admin_client.get("/admin/accounts/invite/").content.decode()
    page = admin_client.get(f"/admin/accounts/invite/{link.pk}/change/").content.decode()
    assert f"<code>{url}</code>" in page


def test_invite_links_use_the_configured_site_address(admin_client, settings):
    # ...or on SITE_URL, when the admin is reached under another name.
    settings.SITE_URL = "https://chat.example.com/"
    link = invite()
    url = f"https://chat.example.com/accounts/invite/{link.token}/"
    assert f"<code>{url}</code>" in admin_client.get("/admin/accounts/invite/").content.decode()
    assert link.url() == url
