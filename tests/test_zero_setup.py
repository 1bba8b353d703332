"""The zero-setup default: a server on SQLite with the in-memory channel layer.

What `scripts/run` runs on a machine with no PostgreSQL or Redis: the rest
of the suite runs on those, so this checks that sending and hearing a
message, a draft cleared by its send and a read marker work on SQLite too.
"""

import asyncio
import json
import os
import subprocess
import sys

import pytest
import websockets
from django.conf import settings

from tests.servers import start_server

pytestmark = pytest.mark.processes

# Run in the server's environment: a person, signed in, with a draft in #general.
_PREPARE = """
from django.contrib.auth import get_user_model
from django.test import Client
from chat.models import Draft, Room
user = get_user_model().objects.create_user("solo", "solo@example.com", "a long passphrase 1")
Draft.objects.create(user=user, room=Room.objects.get(slug="general"), body="said soon")
client = Client()
client.force_login(user)
print(client.cookies[settings.SESSION_COOKIE_NAME].value)
"""


@pytest.fixture
def sqlite_server(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "REDIS_SENTINELS": "",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
    }

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    manage("migrate", "-v0")
    cookie = manage("shell", "-v0", "-c", "from django.conf import settings\n" + _PREPARE).strip()
    server = start_server(DATABASE_URL=env["DATABASE_URL"], REDIS_URL="", REDIS_SENTINELS="")
    yield server, f"{settings.SESSION_COOKIE_NAME}={cookie}"
    server.stop()


async def _until(ws, kind: str) -> dict:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=15))
        if event["type"] == kind:
            return event


async def test_a_message_is_sent_heard_and_read_on_sqlite(sqlite_server):
    server, cookie = sqlite_server
    async with websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": cookie, "Origin": server.http_url},
        open_timeout=10,
    ) as ws:
        await ws.send(
            json.dumps({"type": "send", "room": "general", "body": "hello", "nonce": "n-1"})
        )
        message = await _until(ws, "message")
        assert (message["user"], message["body"], message["nonce"]) == ("solo", "hello", "n-1")
        draft = await _until(ws, "draft")  # the draft it was typed in is cleared
        assert (draft["room"], draft["body"]) == ("general", "")

        await ws.send(json.dumps({"type": "read", "room": "general", "id": message["id"]}))
        read = await _until(ws, "read")
        assert (read["room"], read["last_read_id"], read["unread"]) == ("general", message["id"], 0)
