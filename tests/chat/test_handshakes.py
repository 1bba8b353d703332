"""Socket handshakes read their sessions, users and rooms together, with the usual checks."""

import asyncio
import importlib

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.test import Client

from accounts import session_store
from accounts.models import Session, User
from accounts.session_store import LOGIN_ID_KEY, SessionStore
from chat import selectors
from tests.chat.sockets import connect, open_socket
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reads(monkeypatch):
    """The batches of sessions and of rooms read for handshakes: one entry per query."""
    batches: dict[str, list[int]] = {"sessions": [], "rooms": []}
    real_sessions, real_rooms = session_store.sessions_read_ahead, selectors.rooms_of_members

    def sessions(keys):
        batches["sessions"].append(len(keys))
        return real_sessions(keys)

    def rooms(user_ids):
        batches["rooms"].append(len(user_ids))
        return real_rooms(user_ids)

    monkeypatch.setattr(session_store, "sessions_read_ahead", sessions)
    monkeypatch.setattr(selectors, "rooms_of_members", rooms)
    return batches


async def test_handshakes_arriving_together_share_their_reads(login_cookie, reads):
    users = [await sync_to_async(UserFactory)() for _ in range(20)]
    cookies = [await sync_to_async(login_cookie)(user) for user in users]
    sockets = await asyncio.gather(*(connect(cookie) for cookie in cookies))
    assert sum(reads["sessions"]) == sum(reads["rooms"]) == 20
    assert len(reads["sessions"]) < 20 and len(reads["rooms"]) < 20
    # Each socket is its own user's: a message from one reaches all, marked as theirs.
    await sockets[3].send({"type": "send", "room": "general", "body": "hi all"})
    for sock in sockets:
        event = await sock.receive()
        assert (event["user"], event["body"]) == (users[3].username, "hi all")
    await asyncio.gather(*(sock.close() for sock in sockets))


async def test_read_ahead_keeps_every_check_of_a_handshake(login_cookie, reads):
    active, gone, changed = [await sync_to_async(UserFactory)() for _ in range(3)]
    cookies = [await sync_to_async(login_cookie)(user) for user in (active, gone, changed)]
    await sync_to_async(User.objects.filter(pk=gone.pk).update)(is_active=False)
    # A password changed elsewhere: the session's auth hash no longer matches.
    await sync_to_async(User.objects.filter(pk=changed.pk).update)(password="other")
    forged = "sessionid=" + "x" * 32
    results = await asyncio.gather(*(open_socket(c) for c in [*cookies, forged]))
    assert [connected for connected, _ in results] == [True, False, False, False]
    await results[0][1].close()


def test_sessions_from_the_former_two_backends_stay_signed_in():
    user = UserFactory(username="oldtimer")
    keys = []
    for backend in (
        "django.contrib.auth.backends.ModelBackend",
        "allauth.account.auth_backends.AuthenticationBackend",
    ):
        store = SessionStore()
        store.update(
            {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: backend,
                HASH_SESSION_KEY: user.get_session_auth_hash(),
                LOGIN_ID_KEY: f"login-{len(keys)}",
            }
        )
        store.create()
        keys.append(store.session_key)
    migration = importlib.import_module("accounts.migrations.0005_sessions_one_backend")
    migration.forwards(apps, None)
    for key in keys:
        data = Session.objects.get(session_key=key).get_decoded()
        assert data[BACKEND_SESSION_KEY] == "accounts.backends.AuthenticationBackend"
        browser = Client()
        browser.cookies["sessionid"] = key
        response = browser.get("/api/rooms/")
        assert response.status_code == 200, response.content
