"""Fixtures for the team-chat tests: people with a session, their HTTP API and their sockets."""

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import User
from chat import eventlog, ratelimit
from chat.models import Room
from tests.chat.sockets import Socket, connect
from tests.factories import MembershipFactory, RoomFactory, UserFactory


@dataclass
class Person:
    """A signed-in user: the account, a session cookie for sockets, a client for the API."""

    user: User
    cookie: str
    client: Client

    @property
    def name(self) -> str:
        return self.user.username

    def get(self, path: str, **params: Any):
        return self.client.get(path, params)

    def post(self, path: str, data: dict | None = None):
        return self.client.post(path, json.dumps(data or {}), content_type="application/json")

    def patch(self, path: str, data: dict):
        return self.client.patch(path, json.dumps(data), content_type="application/json")

    def delete(self, path: str):
        return self.client.delete(path)

    def history(self, slug: str, **params: Any) -> list[dict]:
        response = self.get(f"/api/rooms/{slug}/messages/", **params)
        assert response.status_code == 200, response.content
        return response.json()["messages"]

    def rooms(self) -> list[dict]:
        response = self.get("/api/rooms/")
        assert response.status_code == 200, response.content
        return response.json()["rooms"]


@pytest.fixture(autouse=True)
def uploads_dir(settings, tmp_path):
    """Every test stores uploaded files in a directory of its own, with a fresh upload budget."""
    settings.STORAGES = {
        **settings.STORAGES,
        "uploads": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "uploads"), "base_url": None},
        },
    }
    ratelimit.uploads.reset()
    return tmp_path / "uploads"


@pytest.fixture
def person(db) -> Callable[..., Person]:
    """person("alice", role="moderator") -> a new signed-in Person (a member of #general)."""

    def make(username: str, **fields: Any) -> Person:
        user = UserFactory(username=username, **fields)
        client = Client()
        client.force_login(user)
        return Person(user, f"sessionid={client.cookies['sessionid'].value}", client)

    return make


@pytest.fixture
def channel(db) -> Callable[..., Room]:
    """channel("design", alice, bob, private=True): a room made with factories, so it
    logs no events (the first person is its creator)."""

    def make(slug: str, *members: Person, private: bool = False, **fields: Any) -> Room:
        creator = members[0].user if members else None
        room = RoomFactory(slug=slug, name=slug, is_private=private, created_by=creator, **fields)
        for member in members:
            MembershipFactory(room=room, user=member.user)
        return room

    return make


@pytest.fixture
def people(person) -> Callable[..., Any]:
    """For async tests: `alice, bob = await people("alice", "bob")`."""

    async def make(*names: str, **fields: Any) -> list[Person]:
        return [await sync_to_async(person)(name, **fields) for name in names]

    return make


# Events published before a socket opened may still be on their way through the
# fan-out when it registers, and would reach it. A new socket waits for a
# barrier event published after it registered, and drops what came before.
BARRIER = "test-barrier"


class TeamSocket(Socket):
    async def receive(self, timeout: float = 5, skip: tuple[str, ...] = ("presence",)) -> dict:
        return await super().receive(timeout, skip=(*skip, BARRIER))


async def _settle(sock: Socket, user_id: int) -> None:
    token = uuid.uuid4().hex
    barrier = json.dumps({"type": BARRIER, "token": token})
    await eventlog.apublish([eventlog.Item(barrier, user=user_id)])
    while True:
        event = json.loads(await sock.comm.receive_from(timeout=5))
        if event == {"type": BARRIER, "token": token}:
            return


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[..., Any]]:
    """open(person, seq=None, watch=None) -> a connected socket, closed when the test ends.

    Without `seq`, the socket starts with nothing pending: what was published
    before it opened is not delivered to it. (With `seq` the replay covers it.)
    """
    opened: list[Socket] = []

    async def open_for(who: Person, seq: int | None = None, watch: str | None = None) -> Socket:
        query = "&".join(
            f"{key}={value}" for key, value in (("seq", seq), ("watch", watch)) if value is not None
        )
        path = "/ws/chat/" + (f"?{query}" if query else "")
        sock = TeamSocket((await connect(who.cookie, path)).comm)
        opened.append(sock)
        if seq is None:
            await _settle(sock, who.user.pk)
        return sock

    yield open_for
    for sock in opened:
        if not sock.comm.future.done():  # not closed by the test or the server
            await sock.close()


@pytest.fixture(autouse=True)
def _fresh_send_buckets():
    # Token buckets live in process memory across tests; every test starts full.
    from chat.realtime import consumers

    for limiter in (
        consumers.send_limiter,
        consumers.read_limiter,
        consumers.typing_limiter,
        consumers.presence_limiter,
    ):
        limiter.reset()
