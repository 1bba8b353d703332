"""Message search: what it finds, whose messages it never shows, the page and the API.

Tests that depend on PostgreSQL's full-text search are marked `postgres`; the
rest hold on every database (SQLite searches by substring).
"""

import html
import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import search, selectors
from chat.formatting import render
from chat.models import Membership, Room
from chat.search import SearchError, messages_search, snippet_segments
from tests.factories import MembershipFactory, MessageFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

XSS = "<script>alert('pwned')</script> deploy now"


@pytest.fixture(autouse=True)
def _fresh_search_budget():
    # Without Redis the budget is counted in this process, by user id, and
    # SQLite hands the same ids out again test after test.
    from chat.ratelimit import searches

    searches.reset()


@pytest.fixture
def reader():
    return UserFactory(username="reader")


@pytest.fixture
def signed_in(client, reader):
    client.force_login(reader)
    return client


def say(room: Room, body: str, **kwargs):
    kwargs.setdefault("author", UserFactory())
    return MessageFactory(room=room, body=body, **kwargs)


def found(user, query: str, **kwargs) -> list[int]:
    return [hit.id for hit in messages_search(user, query, **kwargs).hits]


def highlighted(snippet) -> list[str]:
    return [text for text, marked in snippet if marked]


# --- what is found ----------------------------------------------------------


def test_whole_words_are_found_case_insensitively(reader, general_room):
    hit = say(general_room, "The Deploy went fine")
    say(general_room, "nothing to see")
    assert found(reader, "deploy") == [hit.id]
    assert found(reader, "DEPLOY") == [hit.id]


def test_parts_of_words_are_found(reader, general_room):
    hit = say(general_room, "redeployment scheduled for noon")
    assert found(reader, "deploy") == [hit.id]
    assert found(reader, "ploym") == [hit.id]


def test_identifiers_are_found_whole_and_in_part(reader, general_room):
    ident = say(general_room, "rename user_id to owner_id please")
    snake = say(general_room, "see get_snake_case_name() in utils")
    assert found(reader, "user_id") == [ident.id]
    assert found(reader, "snake_case_name") == [snake.id]
    assert found(reader, "case_na") == [snake.id]


def test_underscore_and_percent_in_a_query_are_taken_literally(reader, general_room):
    exact = say(general_room, "the user_id column")
    say(general_room, "the userXid column")
    ratio = say(general_room, "a%z ratio")
    say(general_room, "amazing")
    assert found(reader, "user_id") == [exact.id]
    assert found(reader, "a%z") == [ratio.id]


def test_urls_and_url_fragments_are_found(reader, general_room):
    link = say(general_room, "docs at https://example.com/path/to/page?x=1 today")
    assert found(reader, "https://example.com/path/to/page?x=1") == [link.id]
    assert found(reader, "example.com/path") == [link.id]
    assert found(reader, "path/to") == [link.id]


def test_newest_first_among_equal_matches(reader, general_room):
    old = say(general_room, "standup notes", created=timezone.now() - timedelta(days=2))
    new = say(general_room, "standup notes", created=timezone.now())
    assert found(reader, "standup notes") == [new.id, old.id]


def test_hits_say_room_author_and_time(reader):
    room = RoomFactory(slug="ops", name="Operations")
    author = UserFactory(username="alice")
    message = say(room, "rollback done", author=author)
    (hit,) = messages_search(reader, "rollback").hits
    assert (hit.id, hit.room, hit.room_name, hit.user) == (message.id, "ops", "Operations", "alice")
    assert hit.created == message.created


def test_the_room_filter_limits_hits_to_that_room(reader, general_room):
    ops = RoomFactory(slug="ops")
    here = say(ops, "incident review")
    say(general_room, "incident review")
    assert found(reader, "incident", room=ops) == [here.id]


def test_the_limit_caps_the_hits(reader, general_room):
    for i in range(5):
        say(general_room, f"release {i}")
    assert len(found(reader, "release", limit=3)) == 3


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("", "at least 2"),
        ("  a  ", "at least 2"),
        ("x" * 201, "at most 200"),
        ("a\x00b", "control"),
    ],
)
def test_unsearchable_queries_are_refused_with_a_reason(reader, query, why):
    with pytest.raises(SearchError, match=why):
        messages_search(reader, query)


def test_a_query_of_200_characters_after_trimming_is_accepted(reader, general_room):
    body = "y" * 200
    hit = say(general_room, body)
    assert found(reader, f"   {body}   ") == [hit.id]


# --- PostgreSQL full-text search ----------------------------------------------


@pytest.mark.postgres
def test_words_are_found_in_any_order_and_apart(reader, general_room):
    hit = say(general_room, "friday: we deploy the new billing service")
    assert found(reader, "deploy friday") == [hit.id]
    assert found(reader, '"billing service"') == [hit.id]


@pytest.mark.postgres
def test_web_search_syntax_excludes_words(reader, general_room):
    keep = say(general_room, "deploy to production")
    say(general_room, "deploy to staging")
    assert found(reader, "deploy -staging") == [keep.id]


@pytest.mark.postgres
def test_whole_words_and_parts_of_words_come_newest_first_together(reader, general_room):
    # One order for every kind of match, so that pages follow one another.
    whole = say(general_room, "deploy", created=timezone.now() - timedelta(days=1))
    part = say(general_room, "a redeployment of the old cluster", created=timezone.now())
    assert found(reader, "deploy") == [part.id, whole.id]


# --- whose messages ------------------------------------------------------------


def test_private_rooms_of_others_and_their_dms_never_show(reader, general_room):
    secret = RoomFactory(slug="secret", is_private=True)
    say(secret, "launch codes")
    dm = RoomFactory(slug="dm-1-2", kind=Room.Kind.DIRECT, is_private=True)
    say(dm, "launch codes in a dm")
    # A DM not flagged private is still nobody else's business.
    open_dm = RoomFactory(slug="dm-3-4", kind=Room.Kind.DIRECT, is_private=False)
    say(open_dm, "launch codes, open dm")
    public = say(general_room, "launch codes are a joke")
    assert found(reader, "launch codes") == [public.id]


def test_private_rooms_and_dms_of_the_user_do_show(reader):
    secret = RoomFactory(slug="secret", is_private=True)
    MembershipFactory(room=secret, user=reader)
    dm = RoomFactory(slug="dm-x", kind=Room.Kind.DIRECT, is_private=True)
    MembershipFactory(room=dm, user=reader)
    in_secret = say(secret, "budget numbers")
    in_dm = say(dm, "budget numbers again")
    assert sorted(found(reader, "budget")) == sorted([in_secret.id, in_dm.id])


def test_public_channels_show_without_joining_and_archived_ones_too(reader):
    archived = RoomFactory(slug="old", is_archived=True)
    hit = say(archived, "legacy pipeline notes")
    assert not Membership.objects.filter(user=reader, room=archived).exists()
    assert found(reader, "pipeline") == [hit.id]


def test_newer_matches_in_unreadable_rooms_do_not_crowd_out_readable_ones(
    reader, general_room, monkeypatch
):
    monkeypatch.setattr(search, "TOTAL_CAP", 2)
    older = [say(general_room, f"quarterly report {i}") for i in range(2)]
    secret = RoomFactory(slug="secret", is_private=True)
    for i in range(3):
        say(secret, f"quarterly report draft {i}")
    page = messages_search(reader, "quarterly", limit=1)
    assert (page.total, page.total_exact) == (2, True)
    assert [page.hits[0].id] == [older[1].id]
    rest = messages_search(reader, "quarterly", limit=1, cursor=page.next_cursor)
    assert [hit.id for hit in rest.hits] == [older[0].id] and rest.next_cursor is None


def test_deleted_messages_never_show(reader, general_room):
    say(general_room, "oops wrong channel", is_deleted=True)
    kept = say(general_room, "wrong channel? no")
    assert found(reader, "wrong channel") == [kept.id]


def test_a_member_removed_from_a_private_room_no_longer_finds_it(reader, signed_in):
    secret = RoomFactory(slug="secret", is_private=True)
    membership = MembershipFactory(room=secret, user=reader)
    message = say(secret, "reorg plans")
    assert found(reader, "reorg") == [message.id]
    membership.delete()
    assert found(reader, "reorg") == []
    assert signed_in.get("/api/search/", {"q": "reorg"}).json()["results"] == []
    assert signed_in.get("/api/search/", {"q": "reorg", "room": "secret"}).status_code == 404
    assert signed_in.get("/search/", {"q": "reorg", "room": "secret"}).status_code == 404


# --- snippets --------------------------------------------------------------------


def test_every_occurrence_in_the_snippet_is_highlighted_with_its_own_case(reader, general_room):
    say(general_room, "Deploy early, deploy often, DEPLOY always")
    (hit,) = messages_search(reader, "deploy").hits
    assert hit.snippet == [
        ("Deploy", True),
        (" early, ", False),
        ("deploy", True),
        (" often, ", False),
        ("DEPLOY", True),
        (" always", False),
    ]


def test_words_of_the_query_are_highlighted_separately():
    snippet = snippet_segments(
        "we ship on friday and deploy later", ["deploy friday", "deploy", "friday"]
    )
    assert highlighted(snippet) == ["friday", "deploy"]


def test_a_long_body_is_cut_around_the_first_match_with_ellipses(reader, general_room):
    say(general_room, "lorem ipsum " * 40 + "the needle is here " + "dolor sit " * 40)
    (hit,) = messages_search(reader, "needle").hits
    text = "".join(t for t, _ in hit.snippet)
    assert text.startswith("…") and text.endswith("…")
    assert highlighted(hit.snippet) == ["needle"]
    assert len(text) <= 170


def test_a_match_at_the_start_is_cut_only_at_the_end():
    snippet = snippet_segments("needle " + "hay " * 100, ["needle"])
    text = "".join(t for t, _ in snippet)
    assert snippet[0] == ("needle", True) and text.endswith("…")


# --- the API -------------------------------------------------------------------


def test_the_api_returns_hits_with_snippet_segments(signed_in, general_room):
    message = say(general_room, "ship it", author=UserFactory(username="alice"))
    response = signed_in.get("/api/search/", {"q": "ship"})
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result == {
        "id": message.id,
        "room": "general",
        "room_name": "general",
        "room_kind": "channel",
        "people": [],
        "user": "alice",
        "user_display_name": "",
        "user_avatar": None,
        "attachments": [],
        "created": result["created"],
        "snippet": [["ship", True], [" it", False]],
        "snippet_html": "<p><mark>ship</mark> it</p>\n",
        "thread": None,
        "in_channel": False,
    }
    assert result["created"].endswith("Z")


def test_the_api_refuses_anonymous_callers_with_json(client, general_room):
    say(general_room, "ship it")
    response = client.get("/api/search/", {"q": "ship"})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_the_api_explains_a_bad_query(signed_in):
    response = signed_in.get("/api/search/", {"q": "x"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and "at least 2" in body["detail"]
    assert signed_in.get("/api/search/").status_code == 400


def test_the_api_room_filter_hides_rooms_the_user_cannot_read(signed_in):
    RoomFactory(slug="secret", is_private=True)
    RoomFactory(slug="dm-5-6", kind=Room.Kind.DIRECT, is_private=False)
    for slug in ("secret", "dm-5-6", "nowhere"):
        response = signed_in.get("/api/search/", {"q": "anything", "room": slug})
        assert response.status_code == 404, slug
        assert response.json()["error"] == "no_such_room"


# --- the page ------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/search/", {"q": "ship"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_shows_hits_highlighted_and_linked_into_their_room(signed_in):
    room = RoomFactory(slug="ops", name="ops")
    message = say(room, "rollback of the Redeployment", author=UserFactory(username="alice"))
    page = signed_in.get("/search/", {"q": "deploy"}).content.decode()
    assert f'href="/r/ops/?m={message.id}#m-{message.id}"' in page
    assert "Re<mark>deploy</mark>ment" in page
    assert "#ops" in page and "alice" in page
    assert "<time" in page and "datetime=" in page


# Every page loads one script of its own, before it is painted: the colour theme.
THEME_SCRIPT = re.compile(r'<script src="/static/js/theme\.[0-9a-f]+\.js"></script>')


def without_theme_script(page: str) -> str:
    assert len(THEME_SCRIPT.findall(page)) == 1, "the page applies the colour theme"
    return THEME_SCRIPT.sub("", page)


def test_a_hostile_body_is_rendered_as_text(signed_in, general_room):
    say(general_room, XSS)
    page = signed_in.get("/search/", {"q": "deploy"}).content.decode()
    assert "&lt;script&gt;alert('pwned')&lt;/script&gt;" in page
    assert "<script" not in without_theme_script(page)


def test_a_hostile_query_is_rendered_as_text(signed_in, general_room):
    say(general_room, "<b>bold</b> claims")
    page = signed_in.get("/search/", {"q": "<b>bold"}).content.decode()
    assert "<mark>&lt;b&gt;bold</mark>" in page
    assert "<b>bold" not in page


def test_the_page_says_when_nothing_matches_and_when_a_query_is_too_short(signed_in):
    assert "No messages match" in signed_in.get("/search/", {"q": "zzzz"}).content.decode()
    page = signed_in.get("/search/", {"q": "z"}).content.decode()
    assert "Type at least 2 characters" in page and 'role="alert"' in page


def test_an_empty_page_shows_just_the_form(signed_in):
    page = signed_in.get("/search/").content.decode()
    assert 'name="q"' in page and 'role="alert"' not in page and "No messages match" not in page


def test_the_page_keeps_the_room_filter(signed_in):
    ops = RoomFactory(slug="ops", name="ops")
    say(ops, "incident review")
    page = signed_in.get("/search/", {"q": "incident", "room": "ops"}).content.decode()
    assert 'name="room" value="ops"' in page and "1 result" in page


def test_the_page_loads_no_script_but_the_theme_and_nothing_from_other_hosts(
    signed_in, general_room
):
    say(general_room, "release day")
    page = signed_in.get("/search/", {"q": "release"}).content.decode()
    assert "<script" not in without_theme_script(page) and "style=" not in page
    assert "https://" not in page and "http://" not in page


# --- cost ------------------------------------------------------------------------


def message_reads(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if 'FROM "chat_message"' in q["sql"]]


def test_the_search_is_two_queries_however_many_hits(reader, general_room):
    for i in range(30):
        say(general_room, f"metric {i}")
    # The ids of each half (words, substring) for the total and for the page,
    # then the page's messages; each id query is tried on the text index
    # within a time budget (a savepoint and a statement timeout around it).
    # Files named so are looked for in the uploads, for the total and the
    # page (none match here, so no message is read for them).
    with CaptureQueriesContext(connection) as ctx:
        assert len(messages_search(reader, "metric").hits) == 30
    assert len(message_reads(ctx)) == 5
    assert len([q for q in ctx.captured_queries if 'FROM "chat_upload"' in q["sql"]]) == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="statement timeouts are PostgreSQL's")
def test_a_search_the_indexes_answer_too_slowly_is_answered_by_the_planned_walk(
    reader, general_room, monkeypatch
):
    for i in range(30):
        say(general_room, f"metric {i}")
    monkeypatch.setattr(search, "INDEX_FIRST_BUDGET_MS", 1)
    real = search._halves

    def slow_halves(readable, words):
        # Each half takes far past the budget (pg_sleep in the same statement).
        return [half.extra(where=["pg_sleep(0.01) IS NOT NULL"]) for half in real(readable, words)]

    monkeypatch.setattr(search, "_halves", slow_halves)
    asked: list[search.HalfAsked] = []
    newest_ids = search._newest_ids
    monkeypatch.setattr(
        search,
        "_newest_ids",
        lambda half, limit, *, words, trace=None: newest_ids(half, limit, words=words, trace=asked),
    )
    page = messages_search(reader, "metric")
    ids = [hit.id for hit in page.hits]
    assert len(ids) == 30 and ids == sorted(ids, reverse=True)
    assert page.total == 30
    # Every half of the total and of the page was answered by the walk.
    assert [half.index_first for half in asked] == [False] * 4
    # The timeout was the attempt's only: later statements run unhurried.
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


@pytest.mark.parametrize("url", ["/search/", "/api/search/"])
def test_the_page_and_api_cost_the_same_queries_for_1_or_30_hits(signed_in, general_room, url):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = signed_in.get(url, {"q": "metric", "room": "general"})
        assert response.status_code == 200
        return len(ctx)

    say(general_room, "metric 0")
    one = count()
    for i in range(1, 30):
        say(general_room, f"metric {i}")
    assert count() == one


@pytest.mark.postgres
def test_below_three_characters_only_whole_words_match(reader, general_room):
    # Two letters cannot use the trigram index: matching them inside words
    # would read every message; whole words use the word index.
    word = say(general_room, "qa passed")
    say(general_room, "aqua marine")
    assert found(reader, "qa") == [word.id]
    # From three characters, parts of words match too.
    part = say(general_room, "postgres")
    assert part.id in found(reader, "ost")


def test_searching_faster_than_the_limit_is_refused(signed_in, general_room, settings):
    from chat.ratelimit import searches

    searches.reset()
    limit = int(searches.burst)
    answers = [
        signed_in.get("/api/search/", {"q": f"word{i}"}).status_code for i in range(limit + 3)
    ]
    assert answers[:limit] == [200] * limit
    refused = signed_in.get("/api/search/", {"q": "again"})
    assert (refused.status_code, refused.json()["error"]) == (429, "rate_limited")
    page = signed_in.get("/search/", {"q": "again"}).content.decode()
    assert "searching too fast" in page


# --- paging and the total ----------------------------------------------------------


def api_pages(client, **params) -> list[dict]:
    """Every page of an API search, following `next` to the end."""
    pages, cursor = [], None
    while True:
        response = client.get("/api/search/", {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        pages.append(response.json())
        cursor = pages[-1]["next"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "paging does not end"


@pytest.mark.parametrize("matches", [120, 168])
def test_paging_reaches_every_match_once_with_the_right_total(signed_in, general_room, matches):
    wanted = [say(general_room, f"incident {i} resolved").id for i in range(matches)]
    say(general_room, "nothing to see here")
    pages = api_pages(signed_in, q="incident", limit=50)
    assert len(pages) == -(-matches // 50)
    assert {(p["total"], p["total_exact"]) for p in pages} == {(matches, True)}
    assert [p["start"] for p in pages] == list(range(0, matches, 50))
    ids = [r["id"] for p in pages for r in p["results"]]
    assert ids == sorted(wanted, reverse=True)  # each once, newest first


def test_a_message_stored_while_paging_shifts_nothing(reader, general_room):
    old = [say(general_room, f"standup {i}").id for i in range(5)]
    first = messages_search(reader, "standup", limit=2)
    newer = say(general_room, "standup late")
    seen = [h.id for h in first.hits]
    cursor = first.next_cursor
    while cursor:
        page = messages_search(reader, "standup", limit=2, cursor=cursor)
        seen += [h.id for h in page.hits]
        cursor = page.next_cursor
    assert seen == sorted(old, reverse=True)
    assert found(reader, "standup", limit=1) == [newer.id]


def test_past_the_cap_the_total_says_more_than(signed_in, reader, general_room, monkeypatch):
    monkeypatch.setattr(search, "TOTAL_CAP", 5)
    for i in range(8):
        say(general_room, f"alert {i} fired")
    page = messages_search(reader, "alert", limit=3)
    assert (page.total, page.total_exact) == (5, False)
    body = signed_in.get("/api/search/", {"q": "alert"}).json()
    assert (body["total"], body["total_exact"], len(body["results"])) == (5, False, 8)
    html = signed_in.get("/search/", {"q": "alert"}).content.decode()
    assert "more than 5 results" in html


def test_exactly_the_cap_is_counted_exactly(reader, general_room, monkeypatch):
    monkeypatch.setattr(search, "TOTAL_CAP", 5)
    for i in range(5):
        say(general_room, f"alert {i} fired")
    page = messages_search(reader, "alert")
    assert (page.total, page.total_exact) == (5, True)


def test_the_page_pages_through_results_and_says_where_it_is(signed_in, general_room):
    for i in range(130):
        say(general_room, f"build {i} green")
    first = signed_in.get("/search/", {"q": "build"}).content.decode()
    assert "Results 1–50 of 130 results" in first
    assert first.count('class="search-hit"') == 50
    next_url = re.search(r'class="search-pager-next" href="([^"]+)"', first).group(1)
    second = signed_in.get(next_url.replace("&amp;", "&")).content.decode()
    assert "Results 51–100 of 130 results" in second
    assert "Newest results" in second
    last_url = re.search(r'class="search-pager-next" href="([^"]+)"', second).group(1)
    last = signed_in.get(last_url.replace("&amp;", "&")).content.decode()
    assert "Results 101–130 of 130 results" in last
    assert "search-pager-next" not in last


@pytest.mark.parametrize("cursor", ["abc", "12", "-1.0", "1.2.3", "9" * 40 + ".1"])
def test_a_bad_cursor_is_a_clear_error(signed_in, cursor):
    response = signed_in.get("/api/search/", {"q": "deploy", "cursor": cursor})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_cursor")
    page = signed_in.get("/search/", {"q": "deploy", "cursor": cursor}).content.decode()
    assert 'role="alert"' in page and "search again" in page


@pytest.mark.parametrize("limit", ["0", "-3", "ten", "1" * 20, "²"])
def test_a_bad_limit_is_refused(signed_in, limit):
    response = signed_in.get("/api/search/", {"q": "deploy", "limit": limit})
    assert (response.status_code, response.json()["error"]) == (400, "invalid")


# --- filters ---------------------------------------------------------------------


@pytest.fixture
def alice():
    return UserFactory(username="alice")


@pytest.fixture
def bob():
    return UserFactory(username="bob")


def conversation(*people) -> Room:
    """A direct conversation between these people, as dm_open makes it (without its events)."""
    key = "-".join(str(pk) for pk in sorted(p.pk for p in people))
    room = RoomFactory(
        slug=f"dm-{selectors.dm_slug_suffix(key)}",
        name=", ".join(sorted(p.username for p in people)),
        kind=Room.Kind.DIRECT,
        is_private=True,
        dm_key=key,
    )
    for person in people:
        MembershipFactory(room=room, user=person)
    return room


def at(day: str, hour: int = 12):
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def test_from_keeps_one_persons_messages(reader, general_room, alice, bob):
    mine = say(general_room, "deploy done", author=alice)
    say(general_room, "deploy done too", author=bob)
    assert found(reader, "deploy from:alice") == [mine.id]
    assert found(reader, "from:@ALICE deploy") == [mine.id]
    assert found(reader, "from:alice") == [mine.id]  # no words


def test_in_keeps_one_room(reader, general_room):
    ops = RoomFactory(slug="ops", name="Operations")
    here = say(ops, "incident review")
    say(general_room, "incident review")
    assert found(reader, "incident in:ops") == [here.id]
    assert found(reader, "in:#ops") == [here.id]


def test_in_at_someone_keeps_the_conversation_with_them(reader, general_room, alice, bob):
    with_alice = conversation(reader, alice)
    group = conversation(reader, alice, bob)
    one = say(with_alice, "lunch?", author=alice)
    say(group, "lunch?", author=bob)
    say(general_room, "lunch?")
    assert found(reader, "lunch in:@alice") == [one.id]
    (hit,) = messages_search(reader, "in:@bob,alice").hits
    assert hit.room == group.slug


def test_dates_include_the_days_named(reader, general_room):
    say(general_room, "report late", created=at("2025-12-31", 23))
    days = {}
    for day in ("2026-01-01", "2026-01-15", "2026-01-31", "2026-02-01"):
        days[day] = say(general_room, f"report of {day}", created=at(day, 23)).id
    january = found(reader, "report after:2026-01-01 before:2026-01-31")
    assert january == [days["2026-01-31"], days["2026-01-15"], days["2026-01-01"]]
    assert found(reader, "report before:2026-01-01")[0] == days["2026-01-01"]
    assert found(reader, "after:2026-02-01") == [days["2026-02-01"]]
    assert found(reader, "report after:2026-01-15 before:2026-01-15") == [days["2026-01-15"]]


def test_a_day_holds_messages_stored_a_moment_out_of_order(reader, general_room):
    # Two senders' clocks: ids and times may cross at midnight; the day is still whole.
    after_midnight = say(general_room, "tick", created=at("2026-02-01", 0))
    before_midnight = say(general_room, "tock", created=at("2026-01-31", 23))
    assert found(reader, "before:2026-01-31") == [before_midnight.id]
    assert found(reader, "after:2026-02-01") == [after_midnight.id]


def test_filters_combine(reader, general_room, alice, bob):
    ops = RoomFactory(slug="ops")
    hit = say(ops, "deploy ok", author=alice, created=at("2026-01-10"))
    say(ops, "deploy ok", author=bob, created=at("2026-01-10"))
    say(general_room, "deploy ok", author=alice, created=at("2026-01-10"))
    say(ops, "deploy ok", author=alice, created=at("2026-03-10"))
    say(ops, "rollback", author=alice, created=at("2026-01-10"))
    query = "deploy from:alice in:ops after:2026-01-01 before:2026-01-31"
    assert found(reader, query) == [hit.id]
    page = messages_search(reader, query)
    assert (page.total, page.total_exact) == (1, True)


def test_filters_never_reach_rooms_the_user_cannot_read(reader, alice, bob):
    secret = RoomFactory(slug="secret", is_private=True)
    say(secret, "plans", author=alice)
    dm = conversation(alice, bob)
    say(dm, "psst", author=alice)
    assert found(reader, "from:alice") == []
    assert messages_search(reader, "from:alice").total == 0


@pytest.mark.parametrize(
    ("query", "name", "why"),
    [
        ("deploy from:nobody", "from", "No one is called nobody"),
        ("deploy in:nowhere", "in", "no room called nowhere"),
        ("deploy in:secret", "in", "no room called secret"),
        ("deploy in:@nobody", "in", "no conversation with nobody"),
        ("deploy in:@alice", "in", "no conversation with alice"),
        ("deploy before:2026-13-01", "before", "2026-01-31"),
        ("deploy before:2026-02-30", "before", "2026-01-31"),
        ("deploy after:yesterday", "after", "2026-01-31"),
        ("deploy after:２０２６-01-01", "after", "2026-01-31"),
        ("deploy from:", "from", "no space after the colon"),
        ("from:alice from:bob", "from", "once"),
        ("after:2026-02-01 before:2026-01-31", "before", "earlier than after"),
    ],
)
def test_a_bad_filter_is_a_clear_error_on_the_page_and_a_400_in_the_api(
    signed_in, alice, bob, query, name, why
):
    RoomFactory(slug="secret", is_private=True)
    response = signed_in.get("/api/search/", {"q": query})
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["filter"]) == ("invalid_filter", name)
    assert why.lower() in body["detail"].lower()
    page = signed_in.get("/search/", {"q": query})
    assert page.status_code == 200
    error = re.search(r'role="alert">([^<]*)<', page.content.decode()).group(1)
    assert why.lower() in html.unescape(error).lower()


def test_a_secret_room_and_a_missing_one_read_the_same(signed_in):
    RoomFactory(slug="secret", is_private=True)
    secret = signed_in.get("/api/search/", {"q": "in:secret"}).json()["detail"]
    missing = signed_in.get("/api/search/", {"q": "in:nowhere"}).json()["detail"]
    assert secret.replace("secret", "X") == missing.replace("nowhere", "X")


def test_words_that_only_look_like_filters_are_words(reader, general_room):
    link = say(general_room, "see https://example.com/x and mailto:ops@example.com")
    assert found(reader, "https://example.com/x") == [link.id]
    assert found(reader, "mailto:ops") == [link.id]


def test_filters_alone_are_enough_but_one_letter_of_words_is_not(reader, general_room):
    say(general_room, "hello")
    with pytest.raises(SearchError, match="at least 2"):
        messages_search(reader, "x in:general")


# --- snippets from the rendered message --------------------------------------------


def test_a_markdown_snippet_shows_bold_not_asterisks_and_escapes_script(signed_in, general_room):
    body = "**deploy** now <script>alert(1)</script>"
    say(general_room, body, html=render(body))
    (result,) = signed_in.get("/api/search/", {"q": "deploy"}).json()["results"]
    assert result["snippet_html"] == (
        "<p><strong><mark>deploy</mark></strong> now &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    )
    assert result["snippet"] == [["deploy", True], [" now <script>alert(1)</script>", False]]
    page = signed_in.get("/search/", {"q": "deploy"}).content.decode()
    assert "<strong><mark>deploy</mark></strong>" in page
    assert "**" not in page and "<script" not in without_theme_script(page)


def test_a_snippet_is_highlighted_in_text_only_never_inside_markup(reader, general_room):
    # "mark" and "href" are in the markup of the rendered message, not its text.
    say(general_room, "**mark** the [href docs](https://example.com/mark) for `strong`")
    (hit,) = messages_search(reader, "mark").hits
    assert hit.snippet_html == (
        "<p><strong><mark>mark</mark></strong> the href docs for <code>strong</code></p>\n"
    )
    (hit,) = messages_search(reader, "strong").hits
    assert "<code><mark>strong</mark></code>" in hit.snippet_html
    assert "<strong><mark>" not in hit.snippet_html


def test_a_query_of_markup_is_matched_as_text(reader, general_room):
    say(general_room, "use <mark> & </mark> tags")
    (hit,) = messages_search(reader, "<mark>").hits
    assert hit.snippet_html == ("<p>use <mark>&lt;mark&gt;</mark> &amp; &lt;/mark&gt; tags</p>\n")


def test_a_long_rendered_message_is_cut_with_its_tags_closed(reader, general_room):
    body = "- " + "\n- ".join(f"item {i}" for i in range(60)) + "\n- the needle\n- after"
    say(general_room, body)
    (hit,) = messages_search(reader, "needle").hits
    assert hit.snippet_html.startswith("<ul>") and hit.snippet_html.rstrip().endswith("</ul>")
    assert (
        "<li><mark>" not in hit.snippet_html and "the <mark>needle</mark></li>" in hit.snippet_html
    )
    assert "…" in hit.snippet_html and "item 0<" not in hit.snippet_html


# --- direct messages are labelled by their people -------------------------------------


def test_a_dm_hit_is_labelled_by_the_other_people(signed_in, reader, alice, bob):
    dm = conversation(reader, alice)
    group = conversation(reader, alice, bob)
    say(dm, "the plan, one to one", author=alice)
    say(group, "the plan, for three", author=bob)
    results = signed_in.get("/api/search/", {"q": "plan"}).json()["results"]
    assert [(r["room_kind"], r["people"]) for r in results] == [
        ("dm", ["alice", "bob"]),
        ("dm", ["alice"]),
    ]
    page = signed_in.get("/search/", {"q": "plan"}).content.decode()
    labels = re.findall(r'class="search-hit-room" data-kind="dm">(.*?)</span>\s*<span', page)
    assert [re.sub(r"<[^>]+>[^<]*</span>", "", label) for label in labels] == [
        "alice, bob",
        "alice",
    ]
    assert "#alice" not in page and "#reader" not in page


def test_searching_within_a_dm_names_its_people(signed_in, reader, alice):
    dm = conversation(reader, alice)
    say(dm, "see you", author=alice)
    page = signed_in.get("/search/", {"q": "see", "room": dm.slug}).content.decode()
    assert 'class="search-scope">alice<' in page and "Only alice." in page
