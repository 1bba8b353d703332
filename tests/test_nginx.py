"""deploy/nginx/teamchat.conf, run by Debian's nginx in front of two real server processes.

The guide's file as written, with only its ports, certificate and paths
swapped for the test's: a client that is not a browser signs in through it
over TLS, chats across both upstream processes and fetches a static file by
its hashed name.
"""

import asyncio
import json
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest
import websockets
from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage

from tests.factories import UserFactory
from tests.servers import free_port, start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
    pytest.mark.nginx,
]

HOST = "chat.example.com"
CONFIG = Path(settings.BASE_DIR) / "deploy" / "nginx" / "teamchat.conf"


def site_config(text: str, upstreams: list[int], http: int, https: int, tmp: Path) -> str:
    """The guide's file with the test's ports, certificate and directories."""
    text = text.replace("server 127.0.0.1:8001;", f"server 127.0.0.1:{upstreams[0]};")
    text = text.replace("server 127.0.0.1:8002;", f"server 127.0.0.1:{upstreams[1]};")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http};")
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
    text = re.sub(r"\n\s*listen \[::\]:\d+( ssl)?;", "", text)
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {tmp}/cert.pem;", text)
    text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {tmp}/key.pem;", text)
    text = text.replace("/var/lib/teamchat/uploads/", f"{tmp}/uploads/")
    for port in (8001, 8002, 80, 443):
        assert f":{port};" not in text and f"listen {port}" not in text, "a port left unswapped"
    return text


def nginx_conf(site: str, tmp: Path) -> str:
    temp = "".join(
        f"    {name}_temp_path {tmp}/{name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {tmp}/access.log;\n{temp}{site}\n}}\n"
    )


@pytest.fixture
def nginx_in_front():
    servers = []
    process = None
    tmp = Path(tempfile.mkdtemp(prefix="tc-nginx-"))
    try:
        env = {
            "DJANGO_ALLOWED_HOSTS": f"{HOST},127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
            "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
            "TRUSTED_PROXY_COUNT": "1",
        }
        servers = [start_server(**env), start_server(**env)]
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={HOST}", "-keyout", str(tmp / "key.pem"),
             "-out", str(tmp / "cert.pem")],
            check=True, capture_output=True,
        )  # fmt: skip
        (tmp / "uploads").mkdir()
        http, https = free_port(), free_port()
        site = site_config(CONFIG.read_text(), [s.port for s in servers], http, https, tmp)
        (tmp / "nginx.conf").write_text(nginx_conf(site, tmp))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        check = subprocess.run([nginx, "-t", "-c", str(tmp / "nginx.conf")], capture_output=True)
        assert check.returncode == 0, check.stderr.decode()
        process = subprocess.Popen([nginx, "-c", str(tmp / "nginx.conf")], stderr=subprocess.PIPE)
        deadline = 100
        while deadline:
            try:
                socket.create_connection(("127.0.0.1", https), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                deadline -= 1
                process_wait(process)
        yield servers, http, https
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def process_wait(process: subprocess.Popen) -> None:
    """Between two connection attempts, wait on nginx exiting (the one thing that ends it)."""
    try:
        process.wait(timeout=0.05)
    except subprocess.TimeoutExpired:
        pass


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    return context


def fetch(port: int, path: str, scheme: str = "https") -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", headers={"Host": HOST})
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=insecure()), NoRedirect
    )
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def accepted_handshakes(server) -> float:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(r'^teamchat_handshakes_total\{outcome="accepted"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_guides_nginx_config_serves_chat_static_files_and_health(nginx_in_front, login_cookie):
    servers, http, https = nginx_in_front
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    cookies = [login_cookie(alice), login_cookie(bob)]

    # Plain HTTP is sent to HTTPS; health answers through the proxy.
    status, headers, _ = fetch(http, "/healthz", scheme="http")
    assert status == 301 and headers["Location"] == f"https://{HOST}/healthz"
    health = fetch(https, "/healthz")
    assert health[0] == 200, "".join(servers[0].output[-20:] + servers[1].output[-20:])

    # A static file by its hashed name, with the long cache header.
    path = staticfiles_storage.url("js/socket.js")
    assert re.search(r"\.[0-9a-f]{12}\.js$", path), path
    status, headers, body = fetch(https, path)
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
        # Four sockets: round robin puts two on each process.
        async with (
            connect(cookies[0]) as a1,
            connect(cookies[1]) as b1,
            connect(cookies[0]) as a2,
            connect(cookies[1]) as b2,
        ):
            await a1.send(json.dumps({"type": "send", "room": "general", "body": "via nginx"}))
            got = [await next_message(ws) for ws in (a1, b1, a2, b2)]
            assert {(m["user"], m["body"]) for m in got} == {("alice", "via nginx")}
            await b2.send(json.dumps({"type": "send", "room": "general", "body": "and back"}))
            got = [await next_message(ws) for ws in (a1, b1, a2, b2)]
            assert {(m["user"], m["body"]) for m in got} == {("bob", "and back")}

    asyncio.run(chat())
    # Both upstream processes took sockets: the chat crossed between them.
    assert all(accepted_handshakes(server) >= 1 for server in servers)
