"""deploy/caddy/Caddyfile, run by Debian's caddy in front of two real server processes."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import websockets
from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage

from tests.factories import UserFactory
from tests.servers import free_port, start_server
from tests.test_nginx import HOST, accepted_handshakes, fetch, insecure, process_wait

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
    pytest.mark.caddy,
]

CONFIG = Path(settings.BASE_DIR) / "deploy" / "caddy" / "Caddyfile"


@pytest.fixture
def caddy_in_front():
    servers = []
    process = None
    tmp = Path(tempfile.mkdtemp(prefix="tc-caddy-"))
    try:
        env = {
            "DJANGO_ALLOWED_HOSTS": f"{HOST},127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
            "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
            "TRUSTED_PROXY_COUNT": "1",
        }
        servers = [start_server(**env), start_server(**env)]
        http, https = free_port(), free_port()
        text = CONFIG.read_text()
        text = text.replace(
            "127.0.0.1:8001 127.0.0.1:8002", " ".join(f"127.0.0.1:{s.port}" for s in servers)
        )
        # The guide's site, on the test's ports with Caddy's own local CA.
        text = text.replace(f"{HOST} {{", f"https://{HOST}:{https} {{\n\ttls internal", 1)
        assert "8001" not in text and "8002" not in text
        options = (
            "{\n\tadmin off\n\tskip_install_trust\n\tdefault_sni " + HOST + "\n"
            f"\thttp_port {http}\n\thttps_port {https}\n\tdefault_bind 127.0.0.1\n}}\n"
        )
        (tmp / "Caddyfile").write_text(options + text)
        caddy = shutil.which("caddy") or "/usr/bin/caddy"
        run_env = {
            **os.environ,
            "XDG_DATA_HOME": str(tmp / "data"),
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "HOME": str(tmp),
        }
        process = subprocess.Popen(
            [caddy, "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"],
            env=run_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(200):
            assert process.poll() is None, process.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", https), timeout=0.2).close()
                break
            except OSError:
                process_wait(process)
        yield servers, https
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_guides_caddyfile_serves_chat_and_static_files(caddy_in_front, login_cookie):
    servers, https = caddy_in_front
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    cookies = [login_cookie(alice), login_cookie(bob)]

    # TLS with the certificate Caddy made for the name; health through the proxy.
    assert fetch(https, "/healthz")[0] == 200
    status, headers, body = fetch(https, staticfiles_storage.url("js/socket.js"))
    assert status == 200 and body
    assert "immutable" in headers["Cache-Control"] or "max-age=31536000" in headers["Cache-Control"]

    def connect(cookie: str):
        return websockets.connect(
            f"wss://{HOST}:{https}/ws/chat/",
            host="127.0.0.1",
            port=https,
            ssl=insecure(),
            additional_headers={"Cookie": cookie, "Origin": f"https://{HOST}"},
            open_timeout=10,
        )

    async def next_message(ws) -> dict:
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            if event["type"] == "message":
                return event

    async def chat():
        async with (
            connect(cookies[0]) as a1,
            connect(cookies[1]) as b1,
            connect(cookies[0]) as a2,
            connect(cookies[1]) as b2,
        ):
            await a1.send(json.dumps({"type": "send", "room": "general", "body": "via caddy"}))
            got = [await next_message(ws) for ws in (a1, b1, a2, b2)]
            assert {(m["user"], m["body"]) for m in got} == {("alice", "via caddy")}

    asyncio.run(chat())
    assert all(accepted_handshakes(server) >= 1 for server in servers)
