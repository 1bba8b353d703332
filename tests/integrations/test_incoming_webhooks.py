"""Incoming webhooks: a secret URL posting Slack-compatible JSON into one room as its bot."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chat.models import Membership, Message
from integrations import bots_api
from integrations.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_hook_limits():
    bots_api.hook_limiter.reset()


def hook(owner, room="general", bot="alerts") -> tuple[int, str]:
    if owner.get(f"/api/bots/{bot}/").status_code == 404:
        assert owner.post("/api/bots/", {"username": bot}).status_code == 201
    response = owner.post(f"/api/bots/{bot}/webhooks/", {"room": room, "name": "CI"})
    assert response.status_code == 201, response.content
    data = response.json()["webhook"]
    return data["id"], data["url"].removeprefix("http://testserver")


def post(url: str, data, content_type="application/json"):
    body = (
        json.dumps(data)
        if content_type == "application/json" and not isinstance(data, str)
        else data
    )
    return Client(enforce_csrf_checks=True).post(url, body, content_type=content_type)


def test_a_slack_style_post_becomes_the_bots_message_in_the_room(person):
    admin, bob = person("root", role="admin"), person("bob")
    _, url = hook(admin)
    assert url.startswith("/hooks/incoming/wh_")
    response = post(url, {"text": "Build *142* failed", "username": "jenkins"})
    assert (response.status_code, response.content) == (200, b"ok")
    [message] = bob.history("general")
    assert (message["user"], message["body"]) == ("alerts", "Build *142* failed")


def test_the_form_encoded_payload_slack_also_accepts(person):
    admin, bob = person("root", role="admin"), person("bob")
    _, url = hook(admin)
    response = Client().post(url, {"payload": json.dumps({"text": "from curl -d payload="})})
    assert response.status_code == 200
    assert bob.history("general")[0]["body"] == "from curl -d payload="


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, "invalid"),
        ([1, 2], 400, "invalid"),
        ({}, 400, "invalid"),
        ({"text": ""}, 400, "invalid"),
        ({"text": 5}, 400, "invalid"),
        ({"text": "x" * 40_001}, 400, "too_long"),
    ],
)
def test_a_bad_post_gets_a_json_error_and_posts_nothing(person, body, status, code):
    admin = person("root", role="admin")
    _, url = hook(admin)
    response = post(url, body)
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert not Message.objects.exists()


def test_a_wrong_or_rotated_url_is_not_found(person):
    admin = person("root", role="admin")
    hook_id, url = hook(admin)
    assert post(url.replace("wh_", "wh_x"), {"text": "hi"}).status_code == 404
    assert post("/hooks/incoming/nothing/", {"text": "hi"}).status_code == 404
    rotated = admin.post(f"/api/bots/alerts/webhooks/{hook_id}/rotate/")
    assert rotated.status_code == 200
    new_url = rotated.json()["webhook"]["url"].removeprefix("http://testserver")
    assert post(url, {"text": "old"}).status_code == 404
    assert post(new_url, {"text": "new"}).status_code == 200
    assert list(Message.objects.values_list("body", flat=True)) == ["new"]
    assert AuditEntry.objects.filter(action="webhook.rotate").count() == 1


def test_a_deleted_webhook_or_deactivated_bot_posts_nothing(person):
    admin = person("root", role="admin")
    hook_id, url = hook(admin)
    _, other = hook(admin, bot="other")
    assert admin.delete(f"/api/bots/alerts/webhooks/{hook_id}/").status_code == 204
    assert post(url, {"text": "x"}).status_code == 404
    assert admin.delete("/api/bots/other/").status_code == 204
    assert post(other, {"text": "x"}).status_code == 404
    assert not Message.objects.exists()


def test_a_webhook_is_rate_limited_per_url(person, settings):
    admin = person("root", role="admin")
    _, url = hook(admin)
    answers = [post(url, {"text": f"alert {i}"}).status_code for i in range(15)]
    assert answers[:10] == [200] * 10
    assert 429 in answers[10:]
    assert Message.objects.count() == answers.count(200)


def test_a_webhook_needs_its_creator_in_the_room_and_adds_the_bot(person, channel):
    admin, bob = person("root", role="admin"), person("bob")
    channel("ops", admin, private=True)
    channel("hidden", bob, private=True)
    hook(admin, room="ops")
    assert Membership.objects.filter(room__slug="ops", user__username="alerts").exists()
    refused = admin.post("/api/bots/alerts/webhooks/", {"room": "hidden", "name": "x"})
    assert refused.status_code == 404


def test_only_get_is_refused_politely(person):
    admin = person("root", role="admin")
    _, url = hook(admin)
    response = Client().get(url)
    assert response.status_code == 405 and response["Allow"] == "POST"


async def test_a_webhook_post_reaches_open_sockets(people, sockets):
    root, bob = await people("root", "bob", role="admin")
    _, url = await sync_to_async(hook)(root)
    bob_socket = await sockets(bob)
    assert (await sync_to_async(post)(url, {"text": "disk at 91%"})).status_code == 200
    while (event := await bob_socket.receive())["type"] != "message":
        pass
    assert (event["user"], event["body"]) == ("alerts", "disk at 91%")
