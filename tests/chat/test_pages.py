"""The room page and the channel directory: server-rendered content, escaping, access, cost."""

import json
import re

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.views.defaults import permission_denied, server_error

from chat.formatting import render
from chat.models import Membership, Mention, Message, Reaction, Room
from tests.factories import MembershipFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

XSS = "<img src=x onerror=alert(1)>"
HOSTILE = "**bold** <img src=x onerror=alert(1)> [x](javascript:alert(1))"


@pytest.fixture
def member(client):
    user = UserFactory(username="mia")
    client.force_login(user)
    return user


def queries(client, path: str = "/r/general/") -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx)


def config_of(page: str) -> dict:
    match = re.search(r'<script id="chat-config" type="application/json">(.*?)</script>', page)
    assert match, "no client config on the page"
    return json.loads(match.group(1))


def post(room: Room, author, body: str, mentioned=()) -> Message:
    """A message as the send service stores it: rendered html, mention rows."""
    names = frozenset(u.username.lower() for u in mentioned)
    message = Message.objects.create(room=room, author=author, body=body, html=render(body, names))
    Mention.objects.bulk_create([Mention(message=message, user=u) for u in mentioned])
    return message


def test_the_room_page_renders_the_newest_50_messages(client, member, general_room):
    for i in range(60):
        post(general_room, member, f"note {i}")
    post(general_room, member, XSS)
    page = client.get("/r/general/").content.decode()
    assert page.count('class="message-body"') == 50
    assert "<p>note 10</p>" not in page and "<p>note 11</p>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and XSS not in page
    newest = Message.objects.latest("id")
    assert f'id="m-{newest.id}" data-id="{newest.id}"' in page


def test_message_markup_is_the_sanitized_rendering_and_user_text_stays_text(
    client, member, general_room
):
    bob = UserFactory(username="bob")
    hostile = post(general_room, bob, HOSTILE)
    post(general_room, bob, "ping @mia", mentioned=[member])
    page = client.get("/r/general/").content.decode()
    assert "<strong>bold</strong>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img" not in page and "javascript:alert" not in page.replace(
        "[x](javascript:alert(1))", ""
    )
    assert 'href="javascript' not in page.lower()
    assert '<span class="mention">@mia</span>' in page
    assert re.search(r'<li class="message is-mention" id="m-\d+"', page)
    assert f'<li class="message" id="m-{hostile.id}"' in page
    assert "sanitized by chat.formatting" not in page  # a template comment, not output


def test_edits_and_reactions_are_rendered(client, member, general_room):
    bob = UserFactory(username="bob")
    message = post(general_room, bob, "lunch?")
    Message.objects.filter(pk=message.pk).update(edited=timezone.now())
    Reaction.objects.create(message=message, user=member, emoji="👍")
    Reaction.objects.create(message=message, user=bob, emoji="👍")
    Reaction.objects.create(message=message, user=bob, emoji="🎉")
    page = client.get("/r/general/").content.decode()
    assert '<span class="message-edited"' in page and "(edited)</span>" in page
    thumbs = re.search(r'<button type="button" class="reaction" data-emoji="👍"[^>]*>', page)
    assert thumbs and 'aria-pressed="true"' in thumbs.group(0)
    assert 'title="mia, bob"' in thumbs.group(0)
    party = re.search(r'<button type="button" class="reaction" data-emoji="🎉"[^>]*>', page)
    assert party and 'aria-pressed="false"' in party.group(0)


def test_a_reaction_named_like_a_dict_method_does_not_break_the_page(client, member, general_room):
    message = post(general_room, member, "hello")
    Reaction.objects.create(message=message, user=member, emoji="items")
    page = client.get("/r/general/").content.decode()
    assert f'data-id="{message.id}"' in page and "data-reactions-pending" in page


def test_the_sidebar_has_channels_and_direct_messages_with_counts(client, member):
    bob = UserFactory(username="bob")
    design = RoomFactory(slug="design", name="design")
    core = RoomFactory(slug="core", name="core", is_private=True)
    old = RoomFactory(slug="old", name="old", is_archived=True)
    dm = Room.objects.create(slug="dm-x", name="bob, mia", kind=Room.Kind.DIRECT, is_private=True)
    for room in (design, core, old, dm):
        MembershipFactory(room=room, user=member)
        MembershipFactory(room=room, user=bob)
    post(design, bob, "hi all")
    post(design, bob, "@mia look", mentioned=[member])
    post(design, member, "mine do not count")
    post(dm, bob, "psst")

    page = client.get("/r/general/").content.decode()
    channels = page[page.index('id="channel-list"') : page.index('id="dm-list"')]
    dms = page[page.index('id="dm-list"') : page.index('class="sidebar-footer"')]
    assert re.findall(r'data-room="([^"]+)"', channels) == ["core", "design", "general"]
    assert re.findall(r'data-room="([^"]+)"', dms) == ["dm-x"]
    assert 'data-room="old"' not in page, "archived rooms are not in the sidebar"
    design_link = channels[channels.index('data-room="design"') :]
    design_link = design_link[: design_link.index("</a>")]
    assert re.search(r'class="unread-count"[^>]*>2<', design_link)
    assert re.search(r'class="mention-count"[^>]*>@1<', design_link)
    assert '<span class="room-name">bob</span>' in dms
    assert re.search(r'class="unread-count"[^>]*>1<', dms)
    assert '<span class="lock-icon">' in channels[channels.index('data-room="core"') :]

    config = config_of(page)
    counts = {r["slug"]: (r["unread"], r["mentions"]) for r in config["rooms"]}
    assert counts == {"core": (0, 0), "design": (2, 1), "general": (0, 0), "dm-x": (1, 0)}
    assert isinstance(config["seq"], int)
    assert config["user"] == "mia" and config["room"] == "general"


def test_the_room_page_costs_the_same_queries_for_1_or_30_messages(client, member, general_room):
    bob = UserFactory(username="bob")

    def busy(i: int) -> None:
        message = post(general_room, bob, f"@mia **note** {i}", mentioned=[member])
        Message.objects.filter(pk=message.pk).update(edited=timezone.now())
        Reaction.objects.create(message=message, user=member, emoji="👍")
        Reaction.objects.create(message=message, user=bob, emoji="🎉")

    busy(0)
    one = queries(client)
    for i in range(1, 30):
        busy(i)
    assert queries(client) == one


def test_the_room_page_costs_the_same_queries_for_1_or_10_rooms(client, member):
    bob = UserFactory(username="bob")

    def add_room(i: int, kind: str = Room.Kind.CHANNEL) -> None:
        room = Room.objects.create(
            slug=f"{'dm-' if kind == Room.Kind.DIRECT else ''}room-{i}",
            name=f"room {i}",
            kind=kind,
            is_private=kind == Room.Kind.DIRECT or i % 2 == 0,
        )
        Membership.objects.create(room=room, user=member)
        Membership.objects.create(room=room, user=bob)
        post(room, bob, f"@mia hello {i}", mentioned=[member])

    add_room(0, Room.Kind.DIRECT)  # one of each kind from the start: DMs cost one query
    one = queries(client)
    for i in range(1, 10):
        add_room(i, Room.Kind.DIRECT if i % 3 == 0 else Room.Kind.CHANNEL)
    assert queries(client) == one


@pytest.mark.parametrize(
    ("fields", "manages", "moderates"),
    [
        ({"role": "member"}, False, False),
        ({"role": "moderator"}, False, True),
        ({"role": "admin"}, True, True),
        ({"role": "member", "is_superuser": True, "is_staff": True}, True, True),
    ],
    ids=["member", "moderator", "admin", "superuser"],
)
def test_the_page_gives_the_client_the_users_effective_role(client, fields, manages, moderates):
    RoomFactory(slug="design", name="design", created_by=UserFactory())
    client.force_login(UserFactory(username="viewer", **fields))
    config = config_of(client.get("/r/design/").content.decode())
    assert (config["canManage"], config["isModerator"]) == (manages, moderates)


def test_anonymous_visitors_are_sent_to_login(client):
    for path in ("/r/general/", "/rooms/"):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("debug", [False, True], ids=["production", "scripts/run (DEBUG)"])
def test_a_private_room_of_others_is_not_found(client, member, settings, debug):
    settings.DEBUG = debug
    RoomFactory(slug="secret", is_private=True)
    Room.objects.create(slug="dm-other", name="a, b", kind=Room.Kind.DIRECT, is_private=True)
    pages = []
    for path in ("/r/secret/", "/r/dm-other/", "/r/nowhere/", "/search/?room=secret"):
        response = client.get(path)
        assert response.status_code == 404, path
        pages.append(response.content.decode())
    # The branded page even under DEBUG, where Http404 would show Django's
    # technical page; and the same page whether the room exists or not.
    assert 'class="error-card"' in pages[0] and "Back to chat" in pages[0]
    assert "Django" not in pages[0] and "secret" not in pages[0]
    assert len(set(pages)) == 1


def test_an_unknown_address_gets_the_branded_404(client, member):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert 'class="error-card"' in page and 'href="/"' in page
    assert "/static/css/base" in page


def test_the_403_page_is_branded(rf):
    response = permission_denied(rf.get("/admin/"), PermissionDenied())
    assert response.status_code == 403
    assert 'class="error-card"' in response.content.decode()


def test_the_500_page_needs_neither_context_processors_nor_the_database(
    rf, django_assert_num_queries
):
    # Django renders 500.html with an empty context, often because the
    # database is what failed.
    with django_assert_num_queries(0):
        response = server_error(rf.get("/r/general/"))
    page = response.content.decode()
    assert response.status_code == 500
    assert 'class="error-card"' in page and "Back to chat" in page


def test_members_see_their_private_rooms_in_the_sidebar(client, member):
    MembershipFactory(room=RoomFactory(slug="core", name="core", is_private=True), user=member)
    page = client.get("/r/core/").content.decode()
    assert 'data-room="core"' in page and 'data-room="general"' in page


def test_a_public_room_not_joined_is_readable_with_a_join_button(client, member):
    room = RoomFactory(slug="design", name="design")
    post(room, UserFactory(), "welcome")
    page = client.get("/r/design/").content.decode()
    assert "<p>welcome</p>" in page
    assert re.search(r'<form id="composer" class="composer" autocomplete="off" hidden>', page)
    assert re.search(r'<button type="button" id="join-button" class="join-button">', page)
    assert config_of(page)["isMember"] is False


def test_the_directory_lists_public_channels_only(client, member):
    bob = UserFactory(username="bob")
    design = RoomFactory(slug="design", name="design", topic="Pixels & <things>")
    MembershipFactory(room=design, user=bob)
    RoomFactory(slug="old", name="old", is_archived=True)
    MembershipFactory(room=RoomFactory(slug="secret", name="secret", is_private=True), user=member)
    dm = Room.objects.create(slug="dm-x", name="bob, mia", kind=Room.Kind.DIRECT, is_private=True)
    MembershipFactory(room=dm, user=member)

    page = client.get("/rooms/").content.decode()
    listed = re.findall(r'<li class="channel-row[^"]*" data-room="([^"]+)"', page)
    assert listed == ["design", "general", "old"]
    assert "secret" not in page and "dm-x" not in page
    design_row = page[page.index('data-room="design"') : page.index('data-room="general"')]
    assert "Pixels &amp; &lt;things&gt;" in design_row
    assert "1 member<" in design_row
    assert 'class="channel-join" data-room="design"' in design_row
    general_row = page[page.index('data-room="general"') : page.index('data-room="old"')]
    assert 'class="channel-badge is-joined"' in general_row and "channel-join" not in general_row
    old_row = page[page.index('data-room="old"') :]
    assert "Archived</span>" in old_row[:800] and "channel-join" not in old_row[:1500]


@pytest.mark.parametrize("path", ["/r/general/", "/rooms/"])
def test_pages_run_no_inline_script_or_style(client, member, general_room, path):
    post(general_room, member, "hello")
    page = client.get(path).content.decode()
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert " src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<[^>]+\sstyle=", page)
    assert not re.search(r"<[^>]+\son[a-z]+=", page)
    assert "<style" not in page


@pytest.mark.parametrize("path", ["/r/general/", "/rooms/"])
def test_assets_have_hashed_names_and_are_served_compressed_and_cacheable(client, member, path):
    page = client.get(path).content.decode()
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
