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


def test_the_room_page_sends_the_newest_50_messages_as_data(client, member, general_room):
    for i in range(60):
        post(general_room, member, f"note {i}")
    post(general_room, member, XSS)
    page = client.get("/r/general/").content.decode()
    messages = config_of(page)["messages"]
    assert len(messages) == 50
    assert [m["body"] for m in messages[:2]] == ["note 11", "note 12"]
    newest = Message.objects.latest("id")
    assert messages[-1]["id"] == newest.id and messages[-1]["body"] == XSS
    assert messages[-1]["html"].strip() == "<p>&lt;img src=x onerror=alert(1)&gt;</p>"
    # json_script escapes markup: nothing of a message is markup in the page itself.
    assert XSS not in page and "<p>note 11</p>" not in page
    assert '<li class="message' not in page, "messages are rendered by render.js only"


def test_message_data_is_the_sanitized_rendering_and_user_text_stays_text(
    client, member, general_room
):
    bob = UserFactory(username="bob")
    hostile = post(general_room, bob, HOSTILE)
    post(general_room, bob, "ping @mia", mentioned=[member])
    page = client.get("/r/general/").content.decode()
    first, second = config_of(page)["messages"]
    assert first["id"] == hostile.id and first["body"] == HOSTILE
    assert "<strong>bold</strong>" in first["html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in first["html"]
    assert "<img" not in first["html"] and "href" not in first["html"]
    assert '<span class="mention">@mia</span>' in second["html"]
    assert second["mentions"] == ["mia"] and first["mentions"] == []
    assert "<img" not in page and 'href="javascript' not in page.lower()


def test_edits_and_reactions_are_in_the_data(client, member, general_room):
    bob = UserFactory(username="bob")
    message = post(general_room, bob, "lunch?")
    Message.objects.filter(pk=message.pk).update(edited=timezone.now())
    Reaction.objects.create(message=message, user=member, emoji="👍")
    Reaction.objects.create(message=message, user=bob, emoji="👍")
    Reaction.objects.create(message=message, user=bob, emoji="🎉")
    Reaction.objects.create(message=message, user=bob, emoji="items")  # once a template pitfall
    page = client.get("/r/general/").content.decode()
    (data,) = config_of(page)["messages"]
    assert data["edited"] and data["edited"].endswith("Z")
    assert data["reactions"] == {"👍": ["mia", "bob"], "🎉": ["bob"], "items": ["bob"]}


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
    assert [m["body"] for m in config_of(page)["messages"]] == ["welcome"]
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


def test_modules_name_each_other_by_hashed_names_that_are_served(client, member, settings):
    """The room page's module graph, as a browser walks it: every file hashed, served, reached."""
    page = client.get("/r/general/").content.decode()
    (entry,) = re.findall(r'<script type="module" src="(/static/js/[^"]+)"></script>', page)
    seen, queue = set(), [entry]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200, path
        assert "max-age=315360000" in response["Cache-Control"]
        source = b"".join(response.streaming_content).decode()
        names = re.findall(r"""^import [^;]+ from "([^"]+)";$""", source, re.M)
        for name in names:
            assert re.fullmatch(r"\./[a-z]+\.[0-9a-f]{12}\.js", name), (path, name)
            queue.append(path.rsplit("/", 1)[0] + "/" + name[2:])
    reached = {re.sub(r"\.[0-9a-f]{12}\.js$", ".js", p.rsplit("/", 1)[1]) for p in seen}
    sources = {f.name for f in (settings.BASE_DIR / "static" / "js").glob("*.js")}
    # browse.js and exportpage.js are other pages' entries; theme.js a classic script every
    # page runs first.
    assert reached == sources - {"browse.js", "exportpage.js", "theme.js"}
