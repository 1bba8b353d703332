import os
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.conftest import CHROMIUM
from tests.factories import UserFactory
from tests.servers import ASYNC_UNSAFE, start_server

BROWSER_TESTS = Path(__file__).parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Allow blocking ORM calls in the test's thread while a browser test runs, and only then.

    Playwright's sync API runs an event loop in this thread; the ORM calls
    made around it here (fixtures, the database flush at teardown) are
    ordinary blocking calls in a test. Every other test, and every server a
    test starts, keeps Django's check that async code does not block.
    """
    if BROWSER_TESTS not in item.path.parents:  # the hook is called for every test
        return (yield)
    before = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        return (yield)
    finally:
        if before is None:
            del os.environ[ASYNC_UNSAFE]
        else:
            os.environ[ASYNC_UNSAFE] = before


CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Going offline is announced after a grace period (5 s by default) so that a
# reconnect does not flicker; pages here close for good, so half a second will do.
SERVER_ENV = {"CHAT_PRESENCE_OFFLINE_GRACE_SECONDS": "0.5"}


@pytest.fixture
def alice(transactional_db):
    return off_the_loop(UserFactory, username="alice")


@pytest.fixture
def bob(transactional_db):
    return off_the_loop(UserFactory, username="bob")


@pytest.fixture
def carol(transactional_db):
    return off_the_loop(UserFactory, username="carol")


@pytest.fixture
def live_server_process(request, transactional_db):
    """The server the pages talk to; `@pytest.mark.server_env(NAME="value")` adds settings."""
    marker = request.node.get_closest_marker("server_env")
    server = start_server(**{**SERVER_ENV, **(marker.kwargs if marker else {})})
    yield server
    server.stop()


def off_the_loop(call, *args, **kwargs):
    """Run database work (a service, a login) from a worker thread, and close its connection.

    Playwright's sync API runs an event loop in the test's thread: services
    that publish with async_to_sync refuse to run there, and ORM calls made
    under it open connections of their own that nothing closes.
    """
    outcome = {}

    def run():
        try:
            outcome["value"] = call(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)  # mints the login id the socket checks, like a real login
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Pages:
    """Pages signed in as given users, each user in a browser context of their own.

    Every page is watched: a script error or a native dialog (alert, confirm)
    on any of them fails the test at teardown.
    """

    def __init__(self, browser, server) -> None:
        self.browser = browser
        self.base = server.http_url
        self.contexts = {}
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    def context_for(self, user, **options):
        if user.username not in self.contexts:
            context = self.browser.new_context(**options)
            cookie = off_the_loop(session_cookie, user)
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": self.base}]
            )
            self.contexts[user.username] = context
        return self.contexts[user.username]

    def new_page(self, user, **options):
        page = self.context_for(user, **options).new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{user.username}: {exc}"))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        return page

    def open(self, user, path: str = "/r/general/", *, wait_online: bool = True, **options):
        from playwright.sync_api import expect

        page = self.new_page(user, **options)
        page.goto(self.base + path)
        if wait_online:
            expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")
        return page

    def close(self) -> None:
        for context in self.contexts.values():
            context.close()


@pytest.fixture
def pages(browser, live_server_process):
    opened = Pages(browser, live_server_process)
    yield opened
    opened.close()
    assert opened.errors == [], "script errors on the page"
    assert opened.dialogs == [], "a native dialog opened"
