"""Uploads on a real server process: who may download, and bodies refused while they stream."""

import http.client
import json
import select
import socket
import uuid

import pytest

from chat import services
from chat.models import Membership, Upload
from tests.factories import MembershipFactory, MessageFactory, RoomFactory, UserFactory
from tests.servers import start_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.processes,
]

LIMIT = 1024 * 1024
CSRF = "a" * 32


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    started = start_server(
        UPLOADS_DIR=str(tmp_path_factory.mktemp("uploads")), UPLOADS_MAX_BYTES=str(LIMIT)
    )
    yield started
    started.stop()


def request(server, method, path, cookie="", body=b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    sent = {"Cookie": f"csrftoken={CSRF}; {cookie}", "X-CSRFToken": CSRF, **(headers or {})}
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def multipart(name: str, data: bytes, field: str = "file") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def upload(server, cookie, name, data):
    body, content_type = multipart(name, data)
    return request(server, "POST", "/api/uploads/", cookie, body, {"Content-Type": content_type})


def status(server, url, cookie=""):
    response, data = request(server, "GET", url, cookie)
    return response.status, data


def test_who_may_download_a_file(server, login_cookie):
    alice, bob, carol, dave = (UserFactory(username=n) for n in ("alice", "bob", "carol", "dave"))
    cookies = {u.username: login_cookie(u) for u in (alice, bob, carol, dave)}
    response, data = upload(server, cookies["alice"], "plan.pdf", b"%PDF-1.4\n%%EOF\n")
    assert response.status == 201, data
    url = json.loads(data)["upload"]["url"]
    upload_id = json.loads(data)["upload"]["id"]
    _, unknown = status(server, url.replace(f"/files/{upload_id}/", f"/files/{upload_id + 999}/"))

    def allowed() -> dict[str, bool]:
        seen = {}
        for who, cookie in {**cookies, "anonymous": ""}.items():
            code, body = status(server, url, cookie)
            assert code in (200, 404), (who, code)
            if code == 404:
                assert body == unknown, who  # the same answer as a file that does not exist
            seen[who] = code == 200
        return seen

    nobody = {"alice": False, "bob": False, "carol": False, "dave": False, "anonymous": False}
    # Before it is shared: its uploader only.
    assert allowed() == {**nobody, "alice": True}

    room = RoomFactory(slug="design", is_private=True, created_by=alice)
    for member in (alice, bob, dave):
        MembershipFactory(room=room, user=member)
    message = MessageFactory(room=room, author=alice, body="")
    Upload.objects.filter(pk=upload_id).update(message=message)
    # Shared in a private room: its members, not carol.
    assert allowed() == {**nobody, "alice": True, "bob": True, "dave": True}

    Membership.objects.filter(room=room, user=dave).delete()
    assert allowed() == {**nobody, "alice": True, "bob": True}

    services.message_delete(actor=alice, message_id=message.pk)
    assert allowed() == nobody

    # Shared in a public channel: its members, not carol, who may read the
    # channel without having joined it.
    response, data = upload(server, cookies["alice"], "notes.txt", b"agenda\n")
    url = json.loads(data)["upload"]["url"]
    lobby = RoomFactory(slug="lobby", is_private=False, created_by=alice)
    for member in (alice, bob):
        MembershipFactory(room=lobby, user=member)
    posted = MessageFactory(room=lobby, author=alice, body="")
    Upload.objects.filter(pk=json.loads(data)["upload"]["id"]).update(message=posted)
    assert allowed() == {**nobody, "alice": True, "bob": True}


def read_response(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def refused_as_too_large(response: bytes) -> None:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), response[:200]
    assert json.loads(body)["error"] == "too_large"


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server):
    declared = 100 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/uploads/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {declared}\r\n\r\n".encode()
            + b"\0" * 65536
        )
        # Nothing more is sent: the answer can only come from the headers.
        response = read_response(sock)
    refused_as_too_large(response)


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(server):
    chunk = b"\0" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/uploads/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 100 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(frame)
            except OSError:
                break  # the server has closed: its answer is waiting
            sent += len(chunk)
        response = read_response(sock)
    refused_as_too_large(response)
    # Answered long before the 100 MiB: what was sent is the limit plus what
    # was in flight when the answer came.
    assert LIMIT < sent < 20 * LIMIT


def test_a_file_just_over_the_limit_in_a_body_under_the_cap_is_413_in_json(server, login_cookie):
    cookie = login_cookie(UserFactory(username="erin"))
    response, data = upload(server, cookie, "big.bin", b"\0" * (LIMIT + 1000))
    assert response.status == 413
    assert json.loads(data)["error"] == "too_large"
    # The same process still takes a file within the limit.
    response, data = upload(server, cookie, "ok.bin", b"\0" * (LIMIT - 1000))
    assert response.status == 201, data
    assert Upload.objects.filter(uploader__username="erin").count() == 1
