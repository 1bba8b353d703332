"""Bot accounts: who may create them, that they never sign in on the web, that
they act through tokens and are marked as bots, and ownership."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import SignupPolicy, User
from chat.models import Membership, Message
from integrations.models import AuditEntry
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def make_bot(owner, username="ci-bot", **extra):
    response = owner.post("/api/bots/", {"username": username, **extra})
    assert response.status_code == 201, response.content
    return response.json()["bot"]


def bot_token(owner, username="ci-bot", **extra) -> str:
    response = owner.post(f"/api/bots/{username}/tokens/", {"name": "prod", **extra})
    assert response.status_code == 201, response.content
    return response.json()["token"]


def as_token(secret: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {secret}"})


def allow_members(allowed: bool = True) -> None:
    SignupPolicy.objects.update_or_create(pk=1, defaults={"members_may_create_bots": allowed})


def test_an_admin_creates_a_bot_that_is_marked_as_one_everywhere(person):
    admin, bob = person("root", role="admin"), person("bob")
    bot = make_bot(admin, display_name="CI")
    assert bot == {
        **bot,
        "username": "ci-bot",
        "display_name": "CI",
        "owner": "root",
        "active": True,
    }
    people = {p["username"]: p for p in bob.get("/api/people/").json()["people"]}
    assert people["ci-bot"]["bot"] is True and people["bob"]["bot"] is False
    stored = User.objects.get(username="ci-bot")
    assert stored.is_bot and not stored.has_usable_password()
    assert AuditEntry.objects.filter(action="bot.create", target="bot:ci-bot").exists()


def test_members_create_bots_only_when_the_admin_allows_it(person):
    alice = person("alice")
    refused = alice.post("/api/bots/", {"username": "mine"})
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    allow_members()
    assert make_bot(alice, "mine")["owner"] == "alice"


@pytest.mark.parametrize("username", ["", "a b", "x" * 151, "bob"])
def test_a_bot_needs_a_free_valid_username(person, username):
    admin = person("root", role="admin")
    person("bob")
    response = admin.post("/api/bots/", {"username": username})
    assert (response.status_code, response.json()["error"]) == (400, "invalid")


def test_a_bot_cannot_sign_in_on_the_web_even_with_a_password(person):
    admin = person("root", role="admin")
    make_bot(admin)
    bot = User.objects.get(username="ci-bot")
    bot.set_password(PASSWORD)
    bot.save()
    client = Client()
    response = client.post("/accounts/login/", {"login": "ci-bot", "password": PASSWORD})
    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session
    # A session forced on it is worth nothing either.
    client.force_login(bot)
    assert client.get("/api/rooms/").status_code == 401


def test_a_bot_posts_with_its_token_and_its_messages_are_the_bots(person):
    admin, bob = person("root", role="admin"), person("bob")
    make_bot(admin)
    secret = bot_token(admin)
    response = as_token(secret).post(
        "/api/rooms/general/messages/",
        json.dumps({"body": "build green"}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert [(m["user"], m["body"]) for m in bob.history("general")] == [("ci-bot", "build green")]


def test_only_the_owner_and_admins_manage_a_bot(person):
    allow_members()
    alice, bob, admin = person("alice"), person("bob"), person("root", role="admin")
    make_bot(alice, "alices-bot")
    for path in ("/api/bots/alices-bot/", "/api/bots/alices-bot/tokens/"):
        assert bob.get(path).status_code == 404
        assert alice.get(path).status_code == 200
        assert admin.get(path).status_code == 200
    assert bob.post("/api/bots/alices-bot/tokens/", {"name": "x"}).status_code == 404
    assert [b["username"] for b in bob.get("/api/bots/").json()["bots"]] == []
    assert [b["username"] for b in admin.get("/api/bots/").json()["bots"]] == ["alices-bot"]


def test_a_bot_keeps_working_when_its_owner_leaves_and_an_admin_reassigns_it(person):
    allow_members()
    alice, carol, admin = person("alice"), person("carol"), person("root", role="admin")
    make_bot(alice, "helper")
    secret = bot_token(alice, "helper")
    alice.user.is_active = False
    alice.user.save()
    posted = as_token(secret).post(
        "/api/rooms/general/messages/",
        json.dumps({"body": "still here"}),
        content_type="application/json",
    )
    assert posted.status_code == 201

    refused = carol.patch("/api/bots/helper/", {"owner": "carol"})
    assert refused.status_code == 404
    moved = admin.patch("/api/bots/helper/", {"owner": "carol"})
    assert moved.status_code == 200 and moved.json()["bot"]["owner"] == "carol"
    assert carol.get("/api/bots/helper/").status_code == 200
    entry = AuditEntry.objects.get(action="bot.reassign")
    assert entry.data == {"from": "alice", "to": "carol"} and entry.actor_name == "root"


def test_deactivating_a_bot_stops_its_tokens(person):
    admin = person("root", role="admin")
    make_bot(admin)
    secret = bot_token(admin)
    assert admin.delete("/api/bots/ci-bot/").status_code == 204
    assert as_token(secret).get("/api/rooms/").status_code == 401
    assert AuditEntry.objects.filter(action="bot.deactivate").exists()


def test_a_bot_token_is_made_from_a_session_only_and_revoked_by_the_owner(person):
    admin = person("root", role="admin")
    make_bot(admin)
    secret = bot_token(admin)
    refused = as_token(secret).post(
        "/api/bots/ci-bot/tokens/", json.dumps({"name": "more"}), content_type="application/json"
    )
    assert refused.status_code in (403, 404)  # a bot manages no bots, and tokens need a session
    token_id = admin.get("/api/bots/ci-bot/tokens/").json()["tokens"][0]["id"]
    assert admin.delete(f"/api/bots/ci-bot/tokens/{token_id}/").status_code == 204
    assert as_token(secret).get("/api/rooms/").status_code == 401


def test_an_owner_adds_the_bot_to_a_room_they_are_in(person, channel):
    admin, bob = person("root", role="admin"), person("bob")
    channel("ops", admin, private=True)
    channel("secret", bob, private=True)
    make_bot(admin)
    assert admin.post("/api/bots/ci-bot/rooms/", {"room": "ops"}).status_code == 200
    assert Membership.objects.filter(room__slug="ops", user__username="ci-bot").exists()
    assert admin.post("/api/bots/ci-bot/rooms/", {"room": "secret"}).status_code == 404


async def test_a_bots_message_reaches_sockets_and_the_page_knows_it_is_a_bot(people, sockets):
    admin, bob = await people("root", "bob")
    await sync_to_async(User.objects.filter(pk=admin.user.pk).update)(role="admin")
    await sync_to_async(make_bot)(admin)
    secret = await sync_to_async(bot_token)(admin)
    bob_socket = await sockets(bob)
    await sync_to_async(as_token(secret).post)(
        "/api/rooms/general/messages/",
        json.dumps({"body": "deployed"}),
        content_type="application/json",
    )
    while (event := await bob_socket.receive())["type"] != "message":
        pass
    assert (event["user"], event["body"]) == ("ci-bot", "deployed")
    assert await Message.objects.filter(author__is_bot=True).acount() == 1


def test_the_bots_page_creates_a_bot_and_shows_its_token_once(person):
    admin = person("root", role="admin")
    page = admin.client.post("/settings/bots/", {"action": "create", "username": "pager"})
    assert page.status_code == 302
    page = admin.client.post("/settings/bots/", {"action": "token", "bot": "pager", "name": "prod"})
    html = page.content.decode()
    secret = html.split('id="shown-secret"')[1].split('value="')[1].split('"')[0]
    assert as_token(secret).get("/api/rooms/").status_code == 200
    assert secret not in admin.client.get("/settings/bots/").content.decode()
    other = person("bob").client.get("/settings/bots/").content.decode()
    assert "pager" not in other


def test_an_admin_reassigns_a_bot_in_the_django_admin_and_it_is_audited(person):
    allow_members()
    alice, carol = person("alice"), person("carol")
    admin = person("root", role="admin", is_staff=True, is_superuser=True)
    make_bot(alice, "helper")
    bot = User.objects.get(username="helper")
    page = admin.client.get(f"/admin/accounts/user/{bot.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {
        k: v
        for k, v in form.initial.items()
        if v is not None and k not in ("password", "groups", "user_permissions")
    }
    data.update(
        {
            "bot_owner": str(carol.user.pk),
            "date_joined_0": bot.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": bot.date_joined.strftime("%H:%M:%S"),
            "is_active": "on",
        }
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = admin.client.post(f"/admin/accounts/user/{bot.pk}/change/", data)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else response
    )
    bot.refresh_from_db()
    assert bot.bot_owner == carol.user and bot.is_bot
    assert AuditEntry.objects.filter(action="bot.reassign", data__to="carol").exists()
