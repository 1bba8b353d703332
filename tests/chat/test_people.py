"""Profiles: names, titles, time zones, statuses and avatars, and everyone hearing of them."""

import io
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from accounts import selectors
from chat.models import Event, uploads_storage
from tests.chat.test_uploads import png_bomb

pytestmark = pytest.mark.django_db(transaction=True)


def photo(size: tuple[int, int] = (400, 300), exif: bool = False) -> bytes:
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    extra = {}
    if exif:
        tags = Image.Exif()
        tags[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}
        extra["exif"] = tags.tobytes()
    image.save(out, "JPEG", **extra)
    return out.getvalue()


def set_avatar(who, data: bytes, name: str = "me.jpg"):
    return who.client.post("/api/profile/avatar/", {"file": SimpleUploadedFile(name, data)})


def directory(who) -> dict[str, dict]:
    response = who.get("/api/people/")
    assert response.status_code == 200
    return {p["username"]: p for p in response.json()["people"]}


def test_a_profile_is_edited_and_everyone_sees_it(person):
    alice, bob = person("alice"), person("bob")
    until = timezone.now() + timedelta(hours=1)
    response = alice.patch(
        "/api/profile/",
        {
            "display_name": "  Alice Liddell ",
            "title": "Design lead",
            "time_zone": "Europe/Paris",
            "status": {"text": "In a meeting", "emoji": "📅", "expires": until.isoformat()},
        },
    )
    assert response.status_code == 200, response.content
    seen = directory(bob)["alice"]
    assert seen == {
        "username": "alice",
        "display_name": "Alice Liddell",
        "bot": False,
        "title": "Design lead",
        "time_zone": "Europe/Paris",
        "status": {"text": "In a meeting", "emoji": "📅", "expires": seen["status"]["expires"]},
        "avatar": None,
        "dnd_until": None,
    }
    assert seen["status"]["expires"].endswith("Z")
    assert alice.patch("/api/profile/", {"status": None}).json()["profile"]["status"] is None
    assert directory(bob)["alice"]["status"] is None


def test_an_expired_status_is_never_handed_out(person):
    alice, bob = person("alice"), person("bob")
    alice.user.status_text = "Out to lunch"
    alice.user.status_expires = timezone.now() - timedelta(minutes=1)
    alice.user.save()
    assert directory(bob)["alice"]["status"] is None
    assert alice.get("/api/profile/").json()["profile"]["status"] is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"display_name": "x" * 65}, "longer than 64"),
        ({"display_name": "evil\u202egnp.exe"}, "control characters"),
        ({"time_zone": "Mars/Olympus"}, "time zone name"),
        ({"status": {"text": "", "emoji": ""}}, "needs text or an emoji"),
        ({"status": {"text": "hi", "emoji": "smile"}}, "emoji"),
        ({"status": {"text": "hi", "expires": "tomorrow"}}, "ISO 8601"),
        ({"status": {"text": "hi", "expires": "2020-01-01T00:00:00Z"}}, "already have ended"),
        ({"status": "busy"}, "or null"),
        ({"username": "root"}, "Unknown profile fields: username"),
    ],
)
def test_bad_profile_values_are_refused_in_words_and_change_nothing(person, data, words):
    alice = person("alice")
    response = alice.patch("/api/profile/", {"title": "Keeper", **data})
    assert response.status_code == 400
    assert words in response.json()["detail"]
    assert alice.get("/api/profile/").json()["profile"]["title"] == ""


def test_an_avatar_is_a_square_without_metadata_served_to_signed_in_people(person):
    alice, bob = person("alice"), person("bob")
    response = set_avatar(alice, photo((400, 300), exif=True))
    assert response.status_code == 200, response.content
    url = response.json()["profile"]["avatar"]
    assert url == f"/avatars/{alice.user.pk}/1"
    assert directory(bob)["alice"]["avatar"] == url

    got = bob.client.get(url)
    assert got.status_code == 200
    assert got["X-Content-Type-Options"] == "nosniff"
    assert "immutable" in got["Cache-Control"]
    picture = Image.open(io.BytesIO(b"".join(got.streaming_content)))
    assert picture.size == (256, 256)
    assert not picture.getexif()
    # The centre square of red-left, blue-right: both halves survive.
    assert picture.getpixel((10, 128))[0] > 200 and picture.getpixel((245, 128))[2] > 200

    assert Client().get(url).status_code == 404  # anonymous
    assert bob.client.get(f"/avatars/{alice.user.pk}/2").status_code == 404  # no such version


def test_a_new_avatar_replaces_the_old_one_and_clearing_goes_back_to_initials(person):
    alice = person("alice")
    set_avatar(alice, photo())
    alice.user.refresh_from_db()
    first = alice.user.avatar.name
    assert set_avatar(alice, photo((300, 500))).json()["profile"]["avatar"].endswith("/2")
    assert not uploads_storage().exists(first)
    assert alice.client.get(f"/avatars/{alice.user.pk}/1").status_code == 404

    alice.user.refresh_from_db()
    second = alice.user.avatar.name
    assert alice.delete("/api/profile/avatar/").json()["profile"]["avatar"] is None
    assert not uploads_storage().exists(second)


def test_an_avatar_must_be_a_picture(person):
    alice = person("alice")
    for data, name in ((b"<svg xmlns='http://www.w3.org/2000/svg'/>", "a.svg"),
                       (b"<html><script>1</script>", "a.png")):  # fmt: skip
        response = set_avatar(alice, data, name)
        assert response.status_code == 400
        assert "PNG, JPEG, GIF or WebP" in response.json()["detail"]
    assert alice.get("/api/profile/").json()["profile"]["avatar"] is None


def test_an_avatar_claiming_too_many_pixels_is_refused_without_decoding(person):
    alice = person("alice")
    response = set_avatar(alice, png_bomb(), "bomb.png")
    assert response.status_code == 400
    assert "too many pixels" in response.json()["detail"]
    alice.user.refresh_from_db()
    assert alice.user.avatar_version == 0 and not alice.user.avatar


def test_the_directory_is_one_query_however_many_people(person):
    person("alice")

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            selectors.people_directory()
        return len(queries)

    one = cost()
    for i in range(20):
        person(f"user{i}")
    assert cost() == one == 1


async def test_a_change_reaches_everyone_live_and_on_catch_up(people, sockets, channel):
    alice, bob, carol = await people("alice", "bob", "carol")
    # Carol shares no room with alice at all: profiles are for everyone.
    await sync_to_async(lambda: carol.user.memberships.all().delete())()
    b, c = await sockets(bob), await sockets(carol)
    before = await sync_to_async(
        lambda: Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    )()

    def change():
        with CaptureQueriesContext(connection) as queries:
            response = alice.patch("/api/profile/", {"title": "Design lead"})
        return response, queries

    response, queries = await sync_to_async(change)()
    assert response.status_code == 200
    rows = await sync_to_async(lambda: list(Event.objects.filter(seq__gt=before)))()
    assert [(e.kind, e.room_id, e.user_id) for e in rows] == [("profile", None, None)]
    assert not any("chat_membership" in q["sql"] for q in queries.captured_queries)

    for sock in (b, c):
        event = await sock.receive()
        assert event["type"] == "profile" and event["username"] == "alice"
        assert event["title"] == "Design lead" and event["seq"] == rows[0].seq

    # A tab that was away catches up with it.
    again = await sockets(carol, seq=before)
    replayed = await again.receive()
    assert (replayed["type"], replayed["title"], replayed["seq"]) == (
        "profile",
        "Design lead",
        rows[0].seq,
    )
