"""The room page: server-rendered history, escaping, access, assets."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message
from tests.factories import MembershipFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def member(client):
    user = UserFactory(username="mia")
    client.force_login(user)
    return user


def test_the_room_page_renders_the_newest_50_messages_as_text(client, member, general_room):
    for i in range(60):
        Message.objects.create(room=general_room, author=member, body=f"note {i}")
    Message.objects.create(room=general_room, author=member, body=XSS)
    page = client.get("/r/general/").content.decode()
    assert page.count('class="message-body"') == 50
    assert "note 10</div>" not in page and "note 11</div>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and XSS not in page


def test_the_room_page_costs_the_same_queries_for_few_or_many_messages(
    client, member, general_room
):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/r/general/").status_code == 200
        return len(ctx)

    Message.objects.create(room=general_room, author=member, body="one")
    few = count()
    for i in range(80):
        Message.objects.create(room=general_room, author=UserFactory(), body=f"m{i}")
    assert count() == few


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/r/general/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_private_room_of_others_is_not_found(client, member):
    RoomFactory(slug="secret", is_private=True)
    assert client.get("/r/secret/").status_code == 404
    assert client.get("/r/nowhere/").status_code == 404


def test_members_see_their_private_rooms_in_the_sidebar(client, member):
    MembershipFactory(room=RoomFactory(slug="core", name="core", is_private=True), user=member)
    page = client.get("/r/core/").content.decode()
    assert 'data-room="core"' in page and 'data-room="general"' in page


def test_assets_have_hashed_names_and_are_served_compressed_and_cacheable(client, member):
    page = client.get("/r/general/").content.decode()
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert re.search(r"\.[0-9a-f]{12}\.\w+$", asset), asset
        response = client.get(asset, HTTP_ACCEPT_ENCODING="gzip, br")
        assert response.status_code == 200
        if asset.endswith((".js", ".css")):
            assert response["Content-Encoding"] in ("br", "gzip")
        assert "max-age=315360000" in response["Cache-Control"]
    assert not re.search(r"(?:href|src)=\"https?://", page), "the page loads from another host"
