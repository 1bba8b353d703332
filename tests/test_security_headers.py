"""Security headers on every kind of response, cookie flags, and pages that run under the CSP."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.templatetags.static import static
from django.test import Client

from teamchat.security import content_security_policy, websocket_sources
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_security_headers(response) -> None:
    assert response["Content-Security-Policy"] == content_security_policy(settings.ALLOWED_HOSTS)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/accounts/login/", 200),
        ("/accounts/signup/", 200),
        ("/accounts/password/reset/", 200),
        ("/", 302),
        ("/no/such/page/", 404),
        ("/api/rooms/general/messages/", 401),
    ],
)
def test_pages_redirects_and_errors_carry_the_headers(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    assert_security_headers(response)


def test_static_files_carry_the_headers(client):
    # Whitenoise answers these before Django's inner middleware runs.
    response = client.get(static("css/base.css"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert_security_headers(response)


def test_admin_pages_carry_the_same_strict_policy(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for path in ("/admin/", "/admin/accounts/user/", "/admin/accounts/invite/add/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)


@pytest.mark.parametrize("path", ["/accounts/login/", "/no/such/page/", None])
def test_https_responses_tell_browsers_to_stay_on_https(client, path):
    response = client.get(path or static("css/base.css"), secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_https_is_enforced_when_the_redirect_is_on(settings):
    settings.SECURE_SSL_REDIRECT = True  # the production default; tests run on plain HTTP
    response = Client().get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"


def test_the_policy_allows_only_this_site():
    policy = directives(content_security_policy(settings.ALLOWED_HOSTS))
    for name in ("default-src", "script-src", "style-src", "font-src"):
        assert policy[name] == ["'self'"], name
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["connect-src"][0] == "'self'"
    assert not [v for values in policy.values() for v in values if "unsafe" in v]


def test_websockets_are_allowed_to_the_allowed_hosts_only():
    policy = directives(content_security_policy(["chat.example.com", ".example.org", "[::1]"]))
    assert policy["connect-src"] == [
        "'self'",
        "ws://chat.example.com:*",
        "wss://chat.example.com:*",
        "ws://example.org:*",
        "wss://example.org:*",
        "ws://*.example.org:*",
        "wss://*.example.org:*",
    ]
    assert websocket_sources(["*"]) == ["ws:", "wss:"]


def test_session_and_csrf_cookies_are_secure_httponly_and_lax(client):
    UserFactory(username="erin")
    client.get("/accounts/login/")
    csrf = client.cookies[settings.CSRF_COOKIE_NAME]
    response = client.post("/accounts/login/", {"login": "erin", "password": PASSWORD})
    assert response.status_code == 302
    session = client.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert csrf["secure"] and csrf["samesite"] == "Lax"


INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>"  # inline script
    r"|<style\b"  # inline stylesheet
    r"|\sstyle="  # style attribute
    r"|\son[a-z]+=",  # event handler attribute
    re.I,
)


def test_templates_have_no_inline_script_or_style():
    # The policy blocks them: they would silently stop working.
    offenders = [
        f"{path.relative_to(settings.BASE_DIR)}: {match.group(0)}"
        for path in (settings.BASE_DIR / "templates").rglob("*.html")
        for match in INLINE.finditer(path.read_text())
    ]
    assert offenders == []


def test_the_signup_page_renders_nothing_inline(client):
    page = client.get("/accounts/signup/").content.decode()
    assert not INLINE.search(page)


# --- In a real browser -----------------------------------------------------

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


@pytest.mark.browser
@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_no_page_breaks_the_policy_in_a_browser(general_room, settings):
    """Every kind of page works under the CSP: nothing it needs is blocked."""
    from playwright.sync_api import expect, sync_playwright

    from tests.conftest import CHROMIUM
    from tests.servers import start_server

    # The server checks the password with the real hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    # allauth turns two-factor on only for a verified address.
    EmailAddress.objects.create(user=admin, email=admin.email, primary=True, verified=True)

    server = start_server()
    violations: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on(
                "console",
                lambda m: (
                    violations.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            base = server.http_url

            def visit(path: str) -> None:
                response = page.goto(base + path)
                assert response is not None and response.ok, path
                # A policy violation is reported as the page runs its scripts.
                page.wait_for_load_state("networkidle")

            visit("/accounts/signup/")
            visit("/accounts/login/")
            page.fill("input[name=login]", "root")
            page.fill("input[name=password]", PASSWORD)
            page.locator("form:has(input[name=login]) button[type=submit]").click()
            expect(page).to_have_url(f"{base}/r/general/")
            # The chat script ran and its WebSocket got through connect-src.
            expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")

            # Two-factor setup shows its QR code as a data: image.
            visit("/accounts/2fa/totp/activate/")
            page.fill("input[name=password]", PASSWORD)
            page.locator("form:has(input[name=password]) button[type=submit]").click()
            qr = page.locator("img[src^='data:']")
            expect(qr).to_be_visible()
            assert qr.evaluate("img => img.naturalWidth") > 0

            for path in (
                "/admin/",
                "/admin/accounts/user/",
                f"/admin/accounts/user/{admin.pk}/change/",
                "/admin/accounts/invite/add/",
                "/admin/accounts/signuppolicy/",
                # Rooms are created in the app; their change page has the member inline.
                f"/admin/chat/room/{general_room.pk}/change/",
            ):
                visit(path)
            # The admin's date picker is script-built: it must have run.
            visit("/admin/accounts/invite/add/")
            page.locator(".datetimeshortcuts a").first.click()
            browser.close()
    finally:
        server.stop()
    assert violations == []
