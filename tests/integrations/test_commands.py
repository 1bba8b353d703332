"""Slash commands: the socket's `command` frame and POST /api/rooms/<slug>/commands/,
each built-in's effect as others see it, refusals, and bots' own commands."""

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from chat.models import Membership, Message, Room
from integrations.models import AuditEntry, BotCommand

pytestmark = pytest.mark.django_db(transaction=True)


def run(who, text: str, room: str = "general", **extra):
    return who.post(f"/api/rooms/{room}/commands/", {"text": text, **extra})


async def next_of(sock, kind: str) -> dict:
    while True:
        event = await sock.receive()
        if event["type"] == kind:
            return event


async def each_of(sock, *kinds: str) -> dict[str, dict]:
    """The next event of each kind, whichever order they come in."""
    found: dict[str, dict] = {}
    while len(found) < len(kinds):
        event = await sock.receive()
        if event["type"] in kinds and event["type"] not in found:
            found[event["type"]] = event
    return found


async def test_a_command_frame_is_answered_and_its_message_reaches_the_room(people, sockets):
    alice, bob = await people("alice", "bob")
    a, b = await sockets(alice), await sockets(bob)
    await a.send({"type": "command", "room": "general", "text": "/shrug it happens", "nonce": "c1"})
    result = await next_of(a, "command_result")
    assert (result["nonce"], result["ok"]) == ("c1", True)
    message = await next_of(b, "message")
    assert message["user"] == "alice"
    assert message["body"] == "it happens ¯\\\\\\_(ツ)\\_/¯"
    assert "¯\\_(ツ)_/¯" in message["html"]
    assert result["message_id"] == message["id"]


async def test_me_is_stored_as_typed_and_rendered_as_the_action(people, sockets):
    (alice,) = await people("alice")
    a = await sockets(alice)
    await a.send({"type": "command", "room": "general", "text": "/me waves *hello*", "nonce": "c2"})
    message = await next_of(a, "message")
    assert message["body"] == "/me waves *hello*"
    assert message["html"] == "<p>waves <em>hello</em></p>\n"


async def test_an_unknown_command_is_an_error_and_the_socket_stays_usable(people, sockets):
    (alice,) = await people("alice")
    a = await sockets(alice)
    await a.send({"type": "command", "room": "general", "text": "/frobnicate now", "nonce": "c3"})
    error = await next_of(a, "error")
    assert (error["code"], error["nonce"]) == ("invalid", "c3")
    assert "/frobnicate" in error["detail"]
    for bad in (
        {"type": "command", "room": "general"},
        {"type": "command", "room": "general", "text": 5},
    ):
        await a.send({**bad, "nonce": "c4"})
        assert (await next_of(a, "error"))["code"] == "invalid"
    await a.send({"type": "send", "room": "general", "body": "still fine", "nonce": "s1"})
    assert (await next_of(a, "message"))["body"] == "still fine"
    assert not await Message.objects.exclude(body="still fine").aexists()


async def test_topic_sets_the_topic_for_everyone_and_shows_it(people, sockets, channel):
    alice, bob = await people("alice", "bob")
    await sync_to_async(channel)("launch", alice, bob)
    b = await sockets(bob)
    response = await sync_to_async(run)(alice, "/topic Ship on Friday", room="launch")
    assert response.json() == {"ok": True, "text": "Topic set.", "message_id": None}
    room_event = await next_of(b, "room")
    assert room_event["room"]["topic"] == "Ship on Friday"
    shown = await sync_to_async(run)(bob, "/topic", room="launch")
    assert shown.json()["text"] == "Topic: Ship on Friday"
    refused = await sync_to_async(run)(bob, "/topic Mine now", room="launch")
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert (await Room.objects.aget(slug="launch")).topic == "Ship on Friday"


def test_invite_adds_a_member_with_the_rules_of_the_page(person, channel):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    channel("design", alice, private=True)
    response = run(alice, "/invite @bob", room="design")
    assert response.json()["text"] == "@bob added to #design."
    assert Membership.objects.filter(room__slug="design", user=bob.user).exists()
    assert run(alice, "/invite bob", room="design").json()["text"] == "@bob is already in #design."
    assert run(alice, "/invite @nobody", room="design").status_code == 404
    assert run(carol, "/invite @carol", room="design").status_code == 404  # not hers to see
    assert run(alice, "/invite", room="design").status_code == 400


def test_leave_mute_and_unmute(person, channel):
    alice = person("alice")
    channel("random", alice)
    assert run(alice, "/mute", room="random").json()["text"].startswith("Muted")
    assert next(r for r in alice.rooms() if r["slug"] == "random")["notify"] == "none"
    assert run(alice, "/unmute", room="random").status_code == 200
    assert next(r for r in alice.rooms() if r["slug"] == "random")["notify"] == "default"
    assert run(alice, "/leave", room="random").json()["text"] == "You left #random."
    assert not Membership.objects.filter(room__slug="random", user=alice.user).exists()
    assert run(alice, "/leave").status_code == 403  # everyone stays in #general


def test_a_command_in_a_room_one_cannot_write_is_refused(person, channel):
    alice, bob = person("alice"), person("bob")
    channel("secret", bob, private=True)
    assert run(alice, "/shrug", room="secret").status_code == 404
    assert not Message.objects.exists()


def test_a_message_starting_with_a_slash_sent_as_a_message_stays_text(person):
    alice = person("alice")
    posted = alice.post("/api/rooms/general/messages/", {"body": "/shrug is a command"})
    assert posted.json()["message"]["body"] == "/shrug is a command"


def test_the_list_has_the_built_ins_and_bots_commands(person):
    admin = person("root", role="admin")
    admin.post("/api/bots/", {"username": "deployer"})
    created = admin.post(
        "/api/commands/",
        {
            "bot": "deployer",
            "name": "deploy",
            "description": "Deploy a branch",
            "usage": "/deploy <branch>",
        },
    )
    assert created.status_code == 201, created.content
    listed = {c["name"]: c for c in person("bob").get("/api/commands/").json()["commands"]}
    assert {"me", "shrug", "topic", "invite", "leave", "mute", "unmute"} <= set(listed)
    assert listed["deploy"] == {
        "name": "deploy",
        "usage": "/deploy <branch>",
        "description": "Deploy a branch",
        "bot": "deployer",
    }
    assert AuditEntry.objects.filter(action="command.register", data__command="deploy").exists()


@pytest.mark.parametrize("name", ["topic", "Deploy", "a b", "", "x" * 33])
def test_a_bot_command_needs_a_free_valid_name(person, name):
    admin = person("root", role="admin")
    admin.post("/api/bots/", {"username": "deployer"})
    response = admin.post("/api/commands/", {"bot": "deployer", "name": name})
    assert (response.status_code, response.json()["error"]) == (400, "invalid")


def test_only_the_bots_manager_registers_and_removes_its_commands(person):
    admin, bob = person("root", role="admin"), person("bob")
    admin.post("/api/bots/", {"username": "deployer"})
    assert bob.post("/api/commands/", {"bot": "deployer", "name": "deploy"}).status_code == 404
    assert admin.post("/api/commands/", {"bot": "deployer", "name": "deploy"}).status_code == 201
    assert bob.delete("/api/commands/deploy/").status_code == 404
    assert admin.delete("/api/commands/deploy/").status_code == 204
    assert not BotCommand.objects.exists()


def test_a_bot_command_without_an_outgoing_webhook_says_the_bot_cannot_be_reached(person):
    admin, bob = person("root", role="admin"), person("bob")
    admin.post("/api/bots/", {"username": "deployer"})
    admin.post("/api/commands/", {"bot": "deployer", "name": "deploy"})
    response = run(bob, "/deploy main")
    assert (response.status_code, response.json()["error"]) == (503, "unavailable")
    assert "/deploy" in response.json()["detail"]
    assert not Message.objects.exists()


def test_a_bot_command_queues_a_signed_event_for_the_bots_outgoing_webhook(person, settings):
    from integrations.models import Delivery, OutgoingWebhook

    admin, bob = person("root", role="admin"), person("bob")
    admin.post("/api/bots/", {"username": "deployer"})
    admin.post("/api/commands/", {"bot": "deployer", "name": "deploy"})
    bot = User.objects.get(username="deployer")
    OutgoingWebhook.objects.create(
        bot=bot, owner=admin.user, url="https://hooks.example.com/deploy"
    )
    response = run(bob, "/deploy main --force")
    assert response.status_code == 200, response.content
    assert response.json()["text"] == "/deploy sent to @deployer."
    [delivery] = Delivery.objects.all()
    payload = delivery.payload
    assert (payload["type"], payload["command"], payload["text"], payload["user"]) == (
        "command",
        "/deploy",
        "main --force",
        "bob",
    )
    assert payload["room"]["slug"] == "general" and payload["bot"] == "deployer"


async def test_a_command_run_in_a_thread_replies_in_it(people, sockets):
    alice, bob = await people("alice", "bob")
    root = await sync_to_async(alice.post)("/api/rooms/general/messages/", {"body": "plans?"})
    root_id = root.json()["message"]["id"]
    b = await sockets(bob)
    await b.send(
        {
            "type": "command",
            "room": "general",
            "text": "/shrug maybe",
            "thread": root_id,
            "nonce": "t1",
        }
    )
    # The answer comes straight back; the reply goes round through the fan-out.
    got = await each_of(b, "message", "command_result")
    reply = got["message"]
    assert (reply["thread"], reply["nonce"], reply["user"]) == (root_id, "t1", "bob")
    assert got["command_result"]["message_id"] == reply["id"]
