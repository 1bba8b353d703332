"""Personal access tokens (PROTOCOL v2, Tokens and bots): the token API, bearer
authentication on the HTTP API and the socket, scopes, revocation, and
`POST /api/rooms/<slug>/messages/`."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from chat.models import Message
from integrations.models import AuditEntry, Token
from teamchat.asgi import application
from tests.chat.sockets import Socket

pytestmark = pytest.mark.django_db(transaction=True)


def new_token(who, name: str = "ci", **fields) -> tuple[int, str]:
    response = who.post("/api/tokens/", {"name": name, **fields})
    assert response.status_code == 201, response.content
    data = response.json()
    return data["id"], data["token"]


def bearer(secret: str, *, csrf: bool = True) -> Client:
    """A client with no cookie, as a script is: only the token, and the CSRF check on."""
    return Client(enforce_csrf_checks=csrf, headers={"Authorization": f"Bearer {secret}"})


def post_json(client: Client, path: str, data: dict):
    return client.post(path, json.dumps(data), content_type="application/json")


async def token_socket(secret: str, path: str = "/ws/chat/", origin: str | None = None):
    headers = [(b"host", b"localhost"), (b"authorization", f"Bearer {secret}".encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=5)
    return connected, Socket(comm)


async def next_of(sock: Socket, kind: str) -> dict:
    while True:
        event = await sock.receive()
        if event["type"] == kind:
            return event


# --- the token API ---------------------------------------------------------------


def test_a_new_token_is_shown_once_and_listed_without_its_secret(person):
    alice = person("alice")
    response = alice.post("/api/tokens/", {"name": "deploy bot"})
    assert response.status_code == 201
    created = response.json()
    assert created["name"] == "deploy bot"
    assert created["token"].startswith("tc_") and len(created["token"]) > 40
    assert isinstance(created["id"], int)

    listed = alice.get("/api/tokens/").json()["tokens"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert created["token"].startswith(listed[0]["prefix"])
    assert listed[0]["scope"] == "write" and listed[0]["last_used"] is None
    # Only a digest is stored: the secret itself is nowhere in the table.
    stored = Token.objects.get()
    assert created["token"] not in (stored.digest, stored.prefix)
    # Another person does not see it.
    assert person("bob").get("/api/tokens/").json()["tokens"] == []


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x" * 101}, {"name": 5}, {"name": "a", "scope": "admin"},
     {"name": "a", "expires": "tomorrow"}, {"name": "a", "expires": "2001-01-01T00:00:00Z"}],
)  # fmt: skip
def test_a_bad_token_request_is_refused_in_json_and_creates_nothing(person, body):
    alice = person("alice")
    response = alice.post("/api/tokens/", body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert not Token.objects.exists()


def test_creating_a_token_needs_the_session_csrf_check(person):
    alice = person("alice")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice.user)
    response = post_json(strict, "/api/tokens/", {"name": "x"})
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"
    assert not Token.objects.exists()


def test_a_token_cannot_create_or_revoke_tokens(person):
    alice = person("alice")
    token_id, secret = new_token(alice)
    client = bearer(secret)
    refused = post_json(client, "/api/tokens/", {"name": "another"})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert client.delete(f"/api/tokens/{token_id}/").status_code == 403
    assert Token.objects.count() == 1
    # Listing is a read: the token may do it.
    assert [t["id"] for t in client.get("/api/tokens/").json()["tokens"]] == [token_id]


def test_token_actions_are_audited_with_the_address(person):
    alice = person("alice")
    token_id, _ = new_token(alice, "ci")
    assert alice.delete(f"/api/tokens/{token_id}/").status_code == 204
    entries = list(AuditEntry.objects.order_by("id").values_list("action", "actor_name", "ip"))
    assert entries == [
        ("token.create", "alice", "127.0.0.1"),
        ("token.revoke", "alice", "127.0.0.1"),
    ]


def test_revoking_someone_elses_token_is_not_found(person):
    alice, bob = person("alice"), person("bob")
    token_id, secret = new_token(alice)
    response = bob.delete(f"/api/tokens/{token_id}/")
    assert response.status_code == 404
    assert bearer(secret).get("/api/rooms/").status_code == 200


# --- bearer authentication on the HTTP API -----------------------------------------


def test_a_token_reads_every_api_endpoint_as_its_user_without_a_cookie(person):
    alice = person("alice")
    _, secret = new_token(alice)
    client = bearer(secret)
    assert client.cookies == {} or "sessionid" not in client.cookies
    rooms = client.get("/api/rooms/")
    assert rooms.status_code == 200
    assert "general" in [r["slug"] for r in rooms.json()["rooms"]]
    assert client.get("/api/rooms/general/messages/").status_code == 200
    assert client.get("/api/profile/").json()["profile"]["username"] == "alice"
    assert Token.objects.get().last_used is not None


def test_a_token_writes_without_csrf_through_the_same_service(person):
    alice, bob = person("alice"), person("bob")
    _, secret = new_token(alice)
    response = post_json(
        bearer(secret), "/api/rooms/general/messages/", {"body": "deployed **v2**"}
    )
    assert response.status_code == 201, response.content
    message = response.json()["message"]
    assert (message["user"], message["body"], message["room"]) == (
        "alice",
        "deployed **v2**",
        "general",
    )
    assert "<strong>v2</strong>" in message["html"]
    assert [m["id"] for m in bob.history("general")] == [message["id"]]


@pytest.mark.parametrize(
    "header",
    ["Bearer tc_wrong", "Bearer ", "Bearer", "bearer tc_" + "x" * 300, "Bearer not-a-token"],
)
def test_a_wrong_token_gets_401_in_json_even_with_a_valid_session(person, header):
    alice = person("alice")
    response = alice.client.get("/api/rooms/", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_expired_and_deactivated_tokens_stop_working_at_once(person):
    alice, bob = person("alice"), person("bob")
    revoked_id, revoked = new_token(alice, "revoked")
    _, expiring = new_token(alice, "expiring")
    _, bobs = new_token(bob, "bob's")
    assert alice.delete(f"/api/tokens/{revoked_id}/").status_code == 204
    assert bearer(revoked).get("/api/rooms/").status_code == 401

    Token.objects.filter(name="expiring").update(expires=timezone.now() - timedelta(seconds=1))
    assert bearer(expiring).get("/api/rooms/").status_code == 401

    bob.user.is_active = False
    bob.user.save()
    assert bearer(bobs).get("/api/rooms/").status_code == 401


def test_a_token_with_an_expiry_works_until_then(person):
    alice = person("alice")
    later = (timezone.now() + timedelta(days=1)).isoformat()
    _, secret = new_token(alice, expires=later)
    assert alice.get("/api/tokens/").json()["tokens"][0]["expires"] is not None
    assert bearer(secret).get("/api/rooms/").status_code == 200


def test_a_read_token_reads_but_every_write_is_refused(person):
    alice = person("alice")
    _, secret = new_token(alice, scope="read")
    client = bearer(secret)
    assert client.get("/api/rooms/general/messages/").status_code == 200
    for method, path in [("post", "/api/rooms/general/messages/"), ("patch", "/api/profile/"),
                         ("post", "/api/rooms/general/read/")]:  # fmt: skip
        response = getattr(client, method)(
            path, json.dumps({"body": "x"}), content_type="application/json"
        )
        assert response.status_code == 403, (method, path)
        assert response.json() == {"error": "forbidden", "detail": "This token may only read."}
    assert not Message.objects.exists()


def test_pages_stay_session_only(person):
    alice = person("alice")
    _, secret = new_token(alice)
    response = bearer(secret).get("/r/general/")
    assert response.status_code == 302  # to the login page: a token is for the API
    assert "/accounts/login/" in response["Location"]


# --- POST /api/rooms/<slug>/messages/ -----------------------------------------------


def test_posting_with_a_nonce_twice_stores_once_and_answers_200_with_the_first(person):
    alice = person("alice")
    first = alice.post("/api/rooms/general/messages/", {"body": "once", "nonce": "n-1"})
    again = alice.post("/api/rooms/general/messages/", {"body": "once", "nonce": "n-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["message"]["id"] == again.json()["message"]["id"]
    assert first.json()["message"]["nonce"] == "n-1"
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    ("slug", "body", "status", "code"),
    [
        ("general", {"body": ""}, 400, "invalid"),
        ("general", {"body": 5}, 400, "invalid"),
        ("general", {"body": "x" * 40_001}, 400, "too_long"),
        ("general", {"body": "hi", "nonce": ""}, 400, "invalid"),
        ("general", {"body": "hi", "thread": "x"}, 400, "invalid"),
        ("general", {"body": "hi", "thread": 999999}, 400, "invalid"),
        ("general", {"body": "hi", "attachments": ["a"]}, 400, "invalid"),
        ("general", {"body": "hi", "attachments": [424242]}, 400, "invalid"),
        ("nowhere", {"body": "hi"}, 404, "no_such_room"),
        ("secret", {"body": "hi"}, 404, "no_such_room"),
        ("open", {"body": "hi"}, 403, "not_member"),
    ],
)
def test_a_refused_post_has_the_sockets_error_code_and_stores_nothing(
    person, channel, slug, body, status, code
):
    alice, bob = person("alice"), person("bob")
    channel("secret", bob, private=True)
    channel("open", bob)
    response = alice.post(f"/api/rooms/{slug}/messages/", body)
    assert (response.status_code, response.json()["error"]) == (status, code), response.content
    assert not Message.objects.exists()


def test_a_thread_reply_posted_over_http_is_a_reply(person):
    alice, bob = person("alice"), person("bob")
    root = alice.post("/api/rooms/general/messages/", {"body": "plans?"}).json()["message"]
    reply = bob.post(
        "/api/rooms/general/messages/", {"body": "monday", "thread": root["id"], "in_channel": True}
    ).json()["message"]
    assert (reply["thread"], reply["in_channel"]) == (root["id"], True)
    thread = alice.get("/api/rooms/general/messages/", thread=root["id"]).json()
    assert thread["root"]["replies"] == 1
    assert [m["body"] for m in thread["messages"]] == ["monday"]


async def test_a_message_posted_over_http_reaches_the_rooms_open_sockets(people, sockets):
    alice, bob = await people("alice", "bob")
    bob_socket = await sockets(bob)
    response = await sync_to_async(alice.post)(
        "/api/rooms/general/messages/", {"body": "from a script", "nonce": "s-1"}
    )
    assert response.status_code == 201
    event = await next_of(bob_socket, "message")
    assert (event["user"], event["body"], event["nonce"]) == ("alice", "from a script", "s-1")
    assert event["id"] == response.json()["message"]["id"]


# --- the socket with a token ---------------------------------------------------------


async def test_a_token_opens_the_socket_without_origin_and_chats_as_its_user(people, sockets):
    alice, bob = await people("alice", "bob")
    _, secret = await sync_to_async(new_token)(alice)
    connected, bot = await token_socket(secret)
    assert connected
    try:
        bob_socket = await sockets(bob)
        await bot.send(
            {"type": "send", "room": "general", "body": "hello from a bot", "nonce": "b1"}
        )
        for sock in (bot, bob_socket):
            event = await next_of(sock, "message")
            assert (event["user"], event["body"]) == ("alice", "hello from a bot")
        await bob_socket.send({"type": "send", "room": "general", "body": "hi bot"})
        assert (await next_of(bot, "message"))["body"] == "hi bot"
    finally:
        await bot.close()


@pytest.mark.parametrize("header", ["Bearer tc_wrong", "Bearer "])
async def test_a_wrong_token_refuses_the_handshake(people, header):
    await people("alice")
    comm = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[(b"host", b"localhost"), (b"authorization", header.encode())],
    )
    connected, _ = await comm.connect(timeout=5)
    assert not connected


async def test_revoking_a_token_closes_its_sockets_with_4401_and_no_others(people, sockets):
    alice, bob = await people("alice", "bob")
    token_id, secret = await sync_to_async(new_token)(alice, "bot")
    _, other = await sync_to_async(new_token)(alice, "other")
    _, revoked_socket = await token_socket(secret)
    _, other_socket = await token_socket(other)
    session_socket = await sockets(alice)

    response = await sync_to_async(alice.delete)(f"/api/tokens/{token_id}/")
    assert response.status_code == 204
    assert await revoked_socket.receive_close() == 4401
    # The user's other token and their session keep their sockets.
    await session_socket.send({"type": "send", "room": "general", "body": "still here"})
    assert (await next_of(session_socket, "message"))["body"] == "still here"
    assert (await next_of(other_socket, "message"))["body"] == "still here"
    await other_socket.close()
    # And the revoked token cannot open a new one.
    connected, _ = await token_socket(secret)
    assert not connected


async def test_a_read_token_socket_listens_but_may_not_write(people, sockets):
    alice, bob = await people("alice", "bob")
    _, secret = await sync_to_async(new_token)(alice, scope="read")
    _, reader = await token_socket(secret)
    try:
        await reader.send({"type": "send", "room": "general", "body": "nope", "nonce": "w1"})
        error = await next_of(reader, "error")
        assert (error["code"], error["nonce"]) == ("forbidden", "w1")
        bob_socket = await sockets(bob)
        await bob_socket.send({"type": "send", "room": "general", "body": "news"})
        assert (await next_of(reader, "message"))["body"] == "news"
    finally:
        await reader.close()
    assert not await Message.objects.filter(body="nope").aexists()


async def test_a_bot_follows_the_event_log_like_a_tab_resuming_with_seq(people):
    alice, bob = await people("alice", "bob")
    _, secret = await sync_to_async(new_token)(alice)
    _, bot = await token_socket(secret)
    await sync_to_async(bob.post)("/api/rooms/general/messages/", {"body": "one"})
    seen = await next_of(bot, "message")
    await bot.close()

    for body in ("two", "three"):
        await sync_to_async(bob.post)("/api/rooms/general/messages/", {"body": body})
    _, back = await token_socket(secret, f"/ws/chat/?seq={seen['seq']}")
    try:
        replayed = [(await next_of(back, "message"))["body"] for _ in range(2)]
        assert replayed == ["two", "three"]
        assert (await next_of(back, "resumed"))["type"] == "resumed"
    finally:
        await back.close()


# --- the settings page -------------------------------------------------------------------


def test_the_tokens_page_creates_shows_once_lists_and_revokes(person):
    alice = person("alice")
    page = alice.client.post(
        "/settings/tokens/",
        {"action": "create", "name": "laptop <script>", "scope": "read", "expires": "30"},
    )
    assert page.status_code == 200
    secret = Token.objects.get()
    html = page.content.decode()
    shown = html.split('id="new-token"')[1].split('value="')[1].split('"')[0]
    assert shown.startswith("tc_") and bearer(shown).get("/api/rooms/").status_code == 200
    assert "laptop &lt;script&gt;" in html and "<script>" not in html.split("</head>")[1]
    assert secret.scope == "read" and secret.expires is not None

    again = alice.client.get("/settings/tokens/").content.decode()
    assert shown not in again and secret.prefix in again

    alice.client.post("/settings/tokens/", {"action": "revoke", "token": str(secret.pk)})
    assert not Token.objects.exists()
    assert bearer(shown).get("/api/rooms/").status_code == 401


def test_the_tokens_page_needs_a_signed_in_user(client):
    response = client.get("/settings/tokens/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
