"""Outgoing webhooks: triggers, the signed POST to a real local server, the bot's answer,
retries with backoff, at-least-once delivery across a killed worker, and the SSRF guard."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import services
from chat.services import SendRequest
from integrations.models import AuditEntry, Delivery, OutgoingWebhook
from integrations.outgoing import netguard, webhook_trigger
from integrations.outgoing import services as webhook_services
from tests import servers
from tests.factories import UserFactory
from tests.integrations.webhook_receiver import Answer, Receiver, signature_valid

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def allow_private(settings):
    """The test's receiver listens on loopback: the admin's setting allows it."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_DELAYS = [10.0, 30.0, 120.0, 600.0, 3600.0]


@pytest.fixture
def bot(person):
    return person("ci-bot")


def hook_for(bot, url: str, **fields) -> OutgoingWebhook:
    return webhook_services.webhook_create(actor=bot.user, bot=bot.name, url=url, **fields)


def worker_once() -> None:
    call_command("webhook_worker", "--once")


def bodies(who, slug: str) -> list[tuple[str, str]]:
    return [(m["user"], m["body"]) for m in who.history(slug)]


def delivery() -> Delivery:
    return Delivery.objects.get()


# --- a mention: signed POST, the answer as the bot's reply ------------------------


def test_a_mention_is_posted_signed_and_the_answer_becomes_the_bots_reply(
    person, bot, channel, receiver, allow_private
):
    alice = person("alice")
    channel("dev", alice, bot)
    webhook = hook_for(bot, receiver.url())
    receiver.answers.append(Answer.text("On it, @alice."))

    sent = alice.post("/api/rooms/dev/messages/", {"body": "@ci-bot deploy main please"})
    assert sent.status_code == 201
    queued = delivery()
    assert queued.status == Delivery.Status.PENDING and queued.attempts == 0

    worker_once()

    [request] = receiver.wait_for(1)
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert signature_valid(webhook.secret, request)
    assert not signature_valid("another-secret", request)
    event = request.event
    assert request.headers["x-teamchat-event-id"] == event["event_id"] == str(queued.event_id)
    message = sent.json()["message"]
    assert event == {
        "event_id": str(queued.event_id),
        "type": "message",
        "trigger": "mention",
        "room": {"slug": "dev", "name": "dev"},
        "message": {
            "id": message["id"],
            "body": "@ci-bot deploy main please",
            "user": "alice",
            "ts": message["created"],
            "thread": None,
        },
        "bot": "ci-bot",
    }
    assert "token" not in event

    assert bodies(alice, "dev")[-1] == ("ci-bot", "On it, @alice.")
    done = delivery()
    assert done.status == Delivery.Status.DELIVERED and done.attempts == 1
    assert done.last_status_code == 200 and done.delivered_at is not None
    # The bot's reply is its own message: it triggers nothing more.
    assert Delivery.objects.count() == 1


def test_a_mention_in_a_thread_is_answered_in_that_thread(
    person, bot, channel, receiver, allow_private
):
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, receiver.url())
    root = services.message_send(author=alice.user, room="dev", body="release 1.2", nonce=None)
    receiver.answers.append(Answer.text("Tagged."))
    services.message_send(
        author=alice.user, room="dev", body="@ci-bot tag it", nonce=None, thread=root.message.id
    )
    worker_once()
    assert receiver.wait_for(1)[0].event["message"]["thread"] == root.message.id
    replies = alice.history("dev", thread=root.message.id)
    assert [(m["user"], m["body"]) for m in replies] == [
        ("alice", "@ci-bot tag it"),
        ("ci-bot", "Tagged."),
    ]


def test_an_answer_without_text_posts_nothing(person, bot, channel, receiver, allow_private):
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, receiver.url())
    receiver.answers.append(Answer(204))
    services.message_send(author=alice.user, room="dev", body="@ci-bot ping", nonce=None)
    worker_once()
    assert delivery().status == Delivery.Status.DELIVERED
    assert bodies(alice, "dev") == [("alice", "@ci-bot ping")]


# --- which messages trigger --------------------------------------------------------


def test_a_direct_message_to_the_bot_triggers_and_is_answered_there(
    person, bot, receiver, allow_private
):
    alice = person("alice")
    hook_for(bot, receiver.url())
    dm = services.dm_open(actor=alice.user, usernames=["ci-bot"])
    receiver.answers.append(Answer.text("Hello Alice"))
    services.message_send(author=alice.user, room=dm.slug, body="hi there", nonce=None)
    worker_once()
    event = receiver.wait_for(1)[0].event
    assert event["trigger"] == "dm" and event["room"]["slug"] == dm.slug
    assert bodies(alice, dm.slug) == [("alice", "hi there"), ("ci-bot", "Hello Alice")]


def test_trigger_words_fire_as_whole_words_in_the_listed_rooms_the_bot_is_in(
    person, bot, channel, receiver, allow_private
):
    alice = person("alice")
    channel("ops", alice, bot)
    channel("dev", alice, bot)
    channel("lounge", alice)  # the bot is not in it
    hook_for(bot, receiver.url(), trigger_words=["deploy", "!status"], rooms=["ops"])

    def send(room: str, body: str) -> None:
        services.message_send(author=alice.user, room=room, body=body, nonce=None)

    send("ops", "please DEPLOY now")
    send("ops", "!status?")
    send("ops", "redeploy it")  # not the whole word
    send("dev", "deploy here too")  # not a listed room
    send("lounge", "deploy")  # the bot cannot read it
    send("dev", "@ci-bot in dev")  # a mention works in any room it is in
    triggered = [(d.payload["trigger"], d.payload["message"]["body"]) for d in
                 Delivery.objects.order_by("id")]  # fmt: skip
    assert triggered == [
        ("word", "please DEPLOY now"),
        ("word", "!status?"),
        ("mention", "@ci-bot in dev"),
    ]


def test_the_bots_own_messages_and_webhook_replies_trigger_nothing(
    person, bot, channel, receiver, allow_private
):
    alice, other = person("alice"), person("other-bot")
    channel("dev", alice, bot, other)
    hook_for(bot, receiver.url(), trigger_words=["deploy"])
    hook_for(other, receiver.url("/other"))
    # Its own message, with its name and its trigger word.
    services.message_send(author=bot.user, room="dev", body="@ci-bot deploy done", nonce=None)
    assert Delivery.objects.count() == 0
    # Its webhook's answer mentions the other bot: bots do not answer each other forever.
    receiver.answers.append(Answer.text("@other-bot your turn"))
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    worker_once()
    assert bodies(alice, "dev")[-1] == ("ci-bot", "@other-bot your turn")
    assert [d.webhook.bot.username for d in Delivery.objects.all()] == ["ci-bot"]
    # The same words from a person do reach the other bot.
    services.message_send(author=alice.user, room="dev", body="@other-bot hello", nonce=None)
    assert Delivery.objects.filter(webhook__bot=other.user).count() == 1


def test_a_paused_webhook_or_a_non_member_bot_is_not_triggered(
    person, bot, channel, receiver, allow_private
):
    alice = person("alice")
    channel("dev", alice, bot)
    channel("lounge", alice)
    webhook = hook_for(bot, receiver.url())
    services.message_send(author=alice.user, room="lounge", body="@ci-bot hi", nonce=None)
    webhook_services.webhook_update(
        actor=bot.user, webhook_id=webhook.pk, changes={"active": False}
    )
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    assert Delivery.objects.count() == 0


def test_the_send_path_costs_the_same_for_1_or_50_messages_with_webhooks(
    person, bot, channel, receiver, allow_private
):
    alice = person("alice")
    channel("dev", alice, bot)
    channel("ops", alice, bot)
    hook_for(bot, receiver.url(), trigger_words=["deploy"], rooms=["ops"])

    def send(n: int, tag: str) -> int:
        batch = [
            SendRequest(alice.user, ("dev", "ops")[i % 2], f"@ci-bot deploy {i}", f"{tag}-{i}")
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            services.message_send_many(batch)
        return len(ctx)

    assert send(1, "a") == send(50, "b")
    assert Delivery.objects.count() == 51


def test_webhook_trigger_queues_any_event_for_the_bot(
    person, bot, channel, receiver, allow_private
):
    alice = person("alice")
    channel("dev", alice, bot)
    assert webhook_trigger(bot=bot.user, event={"type": "command"}) is False
    assert Delivery.objects.count() == 0

    webhook = hook_for(bot, receiver.url())
    event = {"type": "command", "command": "/deploy", "text": "main",
             "room": {"slug": "dev", "name": "dev"}, "user": "alice"}  # fmt: skip
    assert webhook_trigger(bot=bot.user, event=event) is True
    receiver.answers.append(Answer.text("Deploying main"))
    worker_once()
    request = receiver.wait_for(1)[0]
    assert signature_valid(webhook.secret, request)
    sent = request.event
    assert sent["type"] == "command" and sent["bot"] == "ci-bot" and sent["command"] == "/deploy"
    assert uuid.UUID(sent["event_id"]) == delivery().event_id
    assert bodies(alice, "dev")[-1] == ("ci-bot", "Deploying main")


# --- retries ----------------------------------------------------------------------


def let_its_delay_pass() -> None:
    """The clock reaches the pending delivery's retry (rather than the test waiting for it)."""
    Delivery.objects.filter(pk=delivery().pk).update(next_attempt_at=timezone.now())


def test_a_failing_receiver_is_retried_with_backoff_then_delivered(
    person, bot, channel, receiver, allow_private, settings
):
    settings.WEBHOOK_RETRY_DELAYS = [30.0, 60.0, 600.0]
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, receiver.url())
    receiver.answers += [Answer(500, b"oops"), Answer(503), Answer.text("finally")]
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)

    for attempt, delay, status in ((1, 30.0, 500), (2, 60.0, 503)):
        before = timezone.now()
        worker_once()
        after = timezone.now()
        failed = delivery()
        assert failed.status == Delivery.Status.PENDING and failed.attempts == attempt
        assert failed.last_status_code == status and f"HTTP {status}" in failed.last_error
        # Not before its delay, whatever a worker does meanwhile.
        wait = timedelta(seconds=delay)
        assert before + wait <= failed.next_attempt_at <= after + wait
        worker_once()
        assert len(receiver.requests) == attempt
        let_its_delay_pass()

    worker_once()
    requests = receiver.wait_for(3)
    # The same event each time: the receiver can tell a retry by its id.
    assert len({r.headers["x-teamchat-event-id"] for r in requests}) == 1
    done = delivery()
    assert done.status == Delivery.Status.DELIVERED and done.attempts == 3
    assert bodies(alice, "dev")[-1] == ("ci-bot", "finally")


def test_a_delivery_fails_after_its_last_retry_and_the_owner_sees_why(
    person, bot, channel, receiver, allow_private, settings
):
    settings.WEBHOOK_RETRY_DELAYS = [0.0, 0.0]
    alice = person("alice")
    channel("dev", alice, bot)
    webhook = hook_for(bot, receiver.url())
    receiver.default = Answer(500)
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    worker_once()
    assert len(receiver.requests) == 3
    failed = delivery()
    assert failed.status == Delivery.Status.FAILED and failed.attempts == 3

    [shown] = bot.get(f"/api/webhooks/outgoing/{webhook.pk}/deliveries/").json()["deliveries"]
    assert shown["status"] == "failed" and shown["attempts"] == 3
    assert shown["last_status_code"] == 500 and "HTTP 500" in shown["last_error"]
    assert shown["event_id"] == str(failed.event_id) and shown["trigger"] == "mention"
    page = bot.client.get("/settings/webhooks/")
    assert page.status_code == 200 and "HTTP 500" in page.content.decode()


def test_a_receiver_that_never_listens_is_retried(person, bot, channel, allow_private):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, f"http://127.0.0.1:{port}/hook")
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    worker_once()
    failed = delivery()
    assert failed.status == Delivery.Status.PENDING and failed.attempts == 1
    assert "ConnectError" in failed.last_error and failed.last_status_code is None


# --- a worker killed mid-delivery -------------------------------------------------


def start_worker(**env: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "webhook_worker"],
        cwd=django_settings.BASE_DIR,
        env={
            **os.environ,
            "DATABASE_URL": servers.test_database_url(),
            "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,
            "REDIS_URL": django_settings.REDIS_URL,
            "CHANNEL_LAYER_PREFIX": django_settings.CHANNEL_LAYER_PREFIX,
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_LEASE_SECONDS": "2",
            "WEBHOOK_POLL_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "webhook worker started" in line, line
    return process


@pytest.mark.processes
@pytest.mark.postgres
def test_a_worker_killed_mid_delivery_delivers_after_a_restart(
    person, bot, channel, receiver, allow_private
):
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, receiver.url())
    receiver.hold = threading.Event()
    receiver.answers += [Answer.text("never seen"), Answer.text("Done")]

    first = start_worker()
    try:
        services.message_send(author=alice.user, room="dev", body="@ci-bot build", nonce=None)
        # The worker has sent it and waits for the answer: kill it there.
        receiver.wait_for(1)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    receiver.hold.set()
    receiver.hold = None
    taken = delivery()
    assert taken.status == Delivery.Status.PENDING and taken.attempts == 1

    second = start_worker()
    try:
        deadline = time.monotonic() + 20
        while delivery().status != Delivery.Status.DELIVERED:
            assert time.monotonic() < deadline, "not delivered after the restart"
            time.sleep(0.1)  # the worker is another process: polled, bounded by the deadline
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=15)
        assert second.returncode == 0 and "webhook worker stopped" in out
    finally:
        second.kill()
    requests = receiver.wait_for(2)
    assert len(requests) == 2
    assert requests[0].body == requests[1].body  # the same event: the receiver dedupes by its id
    done = delivery()
    assert done.attempts == 2 and done.delivered_at is not None
    assert [b for u, b in bodies(alice, "dev") if u == "ci-bot"] == ["Done"]


# --- the SSRF guard ----------------------------------------------------------------


def test_loopback_is_refused_by_default_when_creating_and_when_delivering(
    person, bot, channel, receiver, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    for url in (receiver.url(), f"http://localhost:{receiver.port}/hook"):
        refused = bot.post("/api/webhooks/outgoing/", {"bot": "ci-bot", "url": url})
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid"
        assert "loopback" in refused.json()["detail"]
    assert not OutgoingWebhook.objects.exists()

    # Allowed when it was made; the admin has turned that off since.
    settings.WEBHOOK_ALLOW_PRIVATE = True
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, receiver.url())
    settings.WEBHOOK_ALLOW_PRIVATE = False
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    worker_once()
    failed = delivery()
    assert failed.status == Delivery.Status.FAILED and failed.attempts == 1
    assert "127.0.0.1" in failed.last_error and "loopback" in failed.last_error
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.10:8080/hook", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "not a public"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped loopback"),
        ("http://[::ffff:10.0.0.1]/", "IPv4-mapped private"),
        ("http://[2002:a00:1::]/", "6to4 private"),
    ],
)
def test_private_link_local_and_other_non_public_addresses_are_refused(url, reason, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(netguard.Refused, match=reason):
        netguard.url_check(url)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "http:///nohost"]
)
def test_only_http_and_https_urls_with_a_host(url):
    with pytest.raises(netguard.Refused):
        netguard.url_check(url)


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Resolve these names to these addresses; returns the list of names asked, in order."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            asked.append(host)
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )  # fmt: skip
                for a in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_name_is_refused_if_any_of_its_addresses_is_private(monkeypatch, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, {"mixed.example.test": ["93.184.215.14", "10.0.0.7"],
                           "public.example.test": ["93.184.215.14"]})  # fmt: skip
    with pytest.raises(netguard.Refused, match=r"10\.0\.0\.7, a private"):
        netguard.url_check("https://mixed.example.test/hook")
    netguard.url_check("https://public.example.test/hook")
    netguard.url_check("https://93.184.215.14/hook")


def test_the_worker_connects_to_the_checked_address_with_the_names_host_header(
    person, bot, channel, receiver, allow_private, monkeypatch
):
    asked = fake_dns(monkeypatch, {"hooks.example.test": ["127.0.0.1"]})
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, f"http://hooks.example.test:{receiver.port}/hook")
    asked.clear()
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    worker_once()
    [request] = receiver.wait_for(1)
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert delivery().status == Delivery.Status.DELIVERED
    # Resolved once, and that answer is the one connected to: nothing to rebind in between.
    assert asked == ["hooks.example.test"]


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_delivery(
    person, bot, channel, receiver, monkeypatch, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, {"rebind.example.test": ["93.184.215.14"]})
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, f"http://rebind.example.test:{receiver.port}/hook")
    fake_dns(monkeypatch, {"rebind.example.test": ["127.0.0.1"]})
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    worker_once()
    failed = delivery()
    assert failed.status == Delivery.Status.FAILED and "loopback" in failed.last_error
    assert receiver.requests == []


def test_a_redirect_is_not_followed(person, bot, channel, receiver, allow_private):
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, receiver.url())
    receiver.answers.append(Answer(302, b"", {"Location": receiver.url("/elsewhere")}))
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    worker_once()
    assert [r.path for r in receiver.requests] == ["/hook"]
    failed = delivery()
    assert failed.status == Delivery.Status.PENDING and failed.last_status_code == 302
    assert "redirect" in failed.last_error and "not followed" in failed.last_error


# --- managing webhooks --------------------------------------------------------------


def test_the_owner_creates_lists_changes_rotates_and_deletes_with_audit_entries(
    person, bot, channel, receiver, allow_private
):
    channel("ops", bot)
    created = bot.post(
        "/api/webhooks/outgoing/",
        {"bot": "ci-bot", "url": receiver.url(), "trigger_words": ["deploy", "Deploy"],
         "rooms": ["ops"]},
    )  # fmt: skip
    assert created.status_code == 201, created.content
    data = created.json()["webhook"]
    assert data["bot"] == "ci-bot" and data["owner"] == "ci-bot" and data["active"] is True
    assert data["trigger_words"] == ["deploy"] and data["rooms"] == ["ops"]
    assert len(data["secret"]) == 64
    path = f"/api/webhooks/outgoing/{data['id']}/"
    assert bot.get("/api/webhooks/outgoing/").json()["webhooks"] == [data]

    again = bot.post("/api/webhooks/outgoing/", {"bot": "ci-bot", "url": receiver.url()})
    assert again.status_code == 409

    changed = bot.patch(path, {"active": False, "trigger_words": [], "rooms": []}).json()["webhook"]
    assert changed["active"] is False and changed["trigger_words"] == [] and changed["rooms"] == []
    rotated = bot.post(path + "rotate/").json()["webhook"]
    assert rotated["secret"] != data["secret"]
    assert OutgoingWebhook.objects.get().secret == rotated["secret"]
    assert bot.delete(path).status_code == 204
    assert not OutgoingWebhook.objects.exists()
    actions = list(
        AuditEntry.objects.filter(target="bot:ci-bot")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["webhook.create", "webhook.update", "webhook.rotate", "webhook.delete"]
    assert AuditEntry.objects.filter(action="webhook.create").get().actor_name == "ci-bot"


def test_only_the_account_itself_or_an_admin_manages_its_webhook(
    person, bot, receiver, allow_private
):
    mallory, admin = person("mallory"), person("root", role="admin")
    # Someone else's account: as if it did not exist.
    taken = mallory.post("/api/webhooks/outgoing/", {"bot": "ci-bot", "url": receiver.url()})
    assert taken.status_code == 404
    assert (
        mallory.post("/api/webhooks/outgoing/", {"bot": "nobody", "url": receiver.url()}).json()[
            "detail"
        ]
        == taken.json()["detail"]
    )

    made = admin.post("/api/webhooks/outgoing/", {"bot": "ci-bot", "url": receiver.url()})
    assert made.status_code == 201
    webhook_id = made.json()["webhook"]["id"]
    path = f"/api/webhooks/outgoing/{webhook_id}/"
    for response in (
        mallory.get(path),
        mallory.patch(path, {"url": receiver.url("/mine")}),
        mallory.post(path + "rotate/"),
        mallory.delete(path),
        mallory.get(path + "deliveries/"),
    ):
        assert response.status_code == 404
    assert mallory.get("/api/webhooks/outgoing/").json()["webhooks"] == []
    assert bot.get(path).json()["webhook"]["owner"] == "root"
    assert OutgoingWebhook.objects.get().url == receiver.url()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"bot": "ci-bot"}, "url"),
        ({"bot": "ci-bot", "url": "ftp://x.example/"}, "http"),
        ({"bot": "ci-bot", "url": "http://x/", "trigger_words": "deploy"}, "list"),
        ({"bot": "ci-bot", "url": "http://x/", "trigger_words": ["two words"]}, "one word"),
        ({"bot": "ci-bot", "url": "http://x/", "rooms": ["nowhere"]}, "not a member of: nowhere"),
        ({"url": "http://x/"}, "bot"),
    ],
)
def test_bad_input_gets_a_clear_json_error(bot, allow_private, monkeypatch, body, detail):
    fake_dns(monkeypatch, {"x": ["127.0.0.1"]})
    response = bot.post("/api/webhooks/outgoing/", body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid" and detail in response.json()["detail"]
    assert not OutgoingWebhook.objects.exists()


def test_a_rotated_secret_signs_the_next_delivery(person, bot, channel, receiver, allow_private):
    alice = person("alice")
    channel("dev", alice, bot)
    old = hook_for(bot, receiver.url())
    new = webhook_services.webhook_rotate(actor=bot.user, webhook_id=old.pk)
    services.message_send(author=alice.user, room="dev", body="@ci-bot hi", nonce=None)
    worker_once()
    [request] = receiver.wait_for(1)
    assert signature_valid(new.secret, request) and not signature_valid(old.secret, request)


def test_the_settings_page_creates_and_lists_webhooks(bot, receiver, allow_private):
    response = bot.client.post(
        "/settings/webhooks/",
        {"action": "create", "bot": "", "url": receiver.url(), "trigger_words": "deploy, ship"},
    )
    assert response.status_code == 302
    webhook = OutgoingWebhook.objects.get()
    assert webhook.bot == bot.user and webhook.trigger_words == ["deploy", "ship"]
    page = bot.client.get("/settings/webhooks/").content.decode()
    assert receiver.url() in page and webhook.secret in page and "No deliveries yet" in page
    refused = bot.client.post("/settings/webhooks/", {"action": "create", "url": "ftp://x/"})
    assert refused.status_code == 400 and "http://" in refused.content.decode()


# --- the documented receiver -----------------------------------------------------


@pytest.mark.processes
def test_the_documented_receiver_checks_signatures_and_answers_each_event_once(
    person, bot, channel, allow_private
):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    alice = person("alice")
    channel("dev", alice, bot)
    webhook = hook_for(bot, f"http://127.0.0.1:{port}/")
    example = django_settings.BASE_DIR / "docs" / "examples" / "webhook_receiver.py"
    process = subprocess.Popen(
        [sys.executable, str(example)],
        env={"TEAMCHAT_WEBHOOK_SECRET": webhook.secret, "PORT": str(port), "PATH": "/usr/bin:/bin"},
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        # Not signed with the secret: refused.
        forged = httpx.post(f"http://127.0.0.1:{port}/", content=b"{}", headers={
            "X-TeamChat-Request-Timestamp": str(int(time.time())),
            "X-TeamChat-Signature": "v0=" + "0" * 64})  # fmt: skip
        assert forged.status_code == 401

        services.message_send(author=alice.user, room="dev", body="@ci-bot hello", nonce=None)
        worker_once()
        assert bodies(alice, "dev")[-1] == ("ci-bot", "Hi @alice, on it.")
        # The same event again (as after a worker died before recording it): answered once.
        Delivery.objects.update(status=Delivery.Status.PENDING, next_attempt_at=timezone.now())
        worker_once()
        assert delivery().status == Delivery.Status.DELIVERED and delivery().attempts == 2
        assert [b for u, b in bodies(alice, "dev") if u == "ci-bot"] == ["Hi @alice, on it."]
    finally:
        process.kill()
        process.wait()


def test_the_worker_deletes_finished_deliveries_after_the_kept_days(
    bot, receiver, allow_private, settings
):
    settings.WEBHOOK_DELIVERIES_KEEP_DAYS = 30
    webhook = hook_for(bot, receiver.url())
    old = timezone.now() - timedelta(days=31)
    for status, created in (
        (Delivery.Status.DELIVERED, old),
        (Delivery.Status.FAILED, old),
        (Delivery.Status.DELIVERED, timezone.now() - timedelta(days=29)),
        (Delivery.Status.PENDING, old),  # still to send: kept whatever its age
    ):
        Delivery.objects.create(
            webhook=webhook, payload={}, status=status, created=created,
            next_attempt_at=timezone.now() + timedelta(hours=1),
        )  # fmt: skip
    worker_once()
    left = sorted(Delivery.objects.values_list("status", flat=True))
    assert left == ["delivered", "pending"]


def test_a_bots_owner_manages_its_webhook_and_others_do_not(person, receiver, allow_private):
    alice, bob = person("alice"), person("bob")
    UserFactory(username="deploy-bot", is_bot=True, bot_owner=alice.user)
    assert (
        bob.post(
            "/api/webhooks/outgoing/", {"bot": "deploy-bot", "url": receiver.url()}
        ).status_code
        == 404
    )
    made = alice.post("/api/webhooks/outgoing/", {"bot": "deploy-bot", "url": receiver.url()})
    assert made.status_code == 201 and made.json()["webhook"]["bot"] == "deploy-bot"
    assert [w["bot"] for w in alice.get("/api/webhooks/outgoing/").json()["webhooks"]] == [
        "deploy-bot"
    ]
    assert bob.get("/api/webhooks/outgoing/").json()["webhooks"] == []
    # The page offers one's own account and one's bots.
    page = alice.client.get("/settings/webhooks/").content.decode()
    assert '<option value="deploy-bot"' in page and '<option value="alice"' in page
    assert (
        '<option value="deploy-bot"' not in bob.client.get("/settings/webhooks/").content.decode()
    )


def test_https_goes_to_the_checked_ip_with_the_name_as_host_and_tls_sni(monkeypatch, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, {"hooks.example.test": ["93.184.215.14", "2606:2800:21f:cb07::1"]})
    transport = netguard.PinnedTransport()
    seen: list[tuple[str, str, str]] = []

    def connect(request: httpx.Request) -> httpx.Response:
        host = request.headers["host"]
        seen.append((str(request.url), host, request.extensions["sni_hostname"]))
        if len(seen) == 1:
            raise httpx.ConnectError("refused")  # the next checked address is tried
        return httpx.Response(200)

    monkeypatch.setattr(transport._inner, "handle_request", connect)
    with httpx.Client(transport=transport) as client:
        assert client.post("https://hooks.example.test/hook", content=b"{}").status_code == 200
    name = "hooks.example.test"
    assert seen == [
        ("https://93.184.215.14/hook", name, name),
        ("https://[2606:2800:21f:cb07::1]/hook", name, name),
    ]


def test_a_bug_in_the_worker_fails_one_attempt_and_the_worker_goes_on(
    person, bot, channel, receiver, allow_private, monkeypatch
):
    from integrations.outgoing import delivery as worker

    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, receiver.url())
    services.message_send(author=alice.user, room="dev", body="@ci-bot one", nonce=None)
    services.message_send(author=alice.user, room="dev", body="@ci-bot two", nonce=None)
    real = worker.delivery_send

    def broken_once(client, item):
        if item.payload["message"]["body"] == "@ci-bot one":
            raise RuntimeError("a bug")
        return real(client, item)

    monkeypatch.setattr(worker, "delivery_send", broken_once)
    worker_once()
    one, two = Delivery.objects.order_by("id")
    assert one.status == "pending" and one.attempts == 1 and "RuntimeError" in one.last_error
    assert two.status == "delivered"


@pytest.mark.processes
@pytest.mark.postgres
def test_a_running_worker_is_woken_by_a_queued_delivery_not_by_its_poll(
    person, bot, channel, receiver, allow_private
):
    alice = person("alice")
    channel("dev", alice, bot)
    hook_for(bot, receiver.url())
    receiver.answers += [Answer(200), Answer.text("Awake")]
    # Queued before it starts: its first look finds it. Then it waits for the next poll.
    services.message_send(author=alice.user, room="dev", body="@ci-bot first", nonce=None)
    worker = start_worker(WEBHOOK_POLL_SECONDS="120")
    try:
        deadline = time.monotonic() + 20
        while Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        services.message_send(author=alice.user, room="dev", body="@ci-bot up?", nonce=None)
        # Far sooner than the poll: LISTEN/NOTIFY woke it at the commit.
        receiver.wait_for(2, timeout=20)
        while Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert bodies(alice, "dev")[-1] == ("ci-bot", "Awake")
        # And a stop request is seen within a second or so, not at the next poll.
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=10)
        assert worker.returncode == 0
    finally:
        worker.kill()
        worker.wait()
