"""Message search: what it finds, whose messages it never shows, the page and the API.

Tests that depend on PostgreSQL's full-text search are marked `postgres`; the
rest hold on every database (SQLite searches by substring).
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import search
from chat.models import Membership, Room
from chat.search import SearchError, messages_search, snippet_segments
from tests.factories import MembershipFactory, MessageFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

XSS = "<script>alert('pwned')</script> deploy now"


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
    return [hit.id for hit in messages_search(user, query, **kwargs)]


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
    (hit,) = messages_search(reader, "rollback")
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
def test_a_whole_word_match_ranks_above_a_newer_part_of_a_word(reader, general_room):
    whole = say(general_room, "deploy", created=timezone.now() - timedelta(days=1))
    part = say(general_room, "a redeployment of the old cluster", created=timezone.now())
    assert found(reader, "deploy") == [whole.id, part.id]


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
    monkeypatch.setattr(search, "RANK_WINDOW", 2)
    older = [say(general_room, f"quarterly report {i}") for i in range(2)]
    secret = RoomFactory(slug="secret", is_private=True)
    for i in range(3):
        say(secret, f"quarterly report draft {i}")
    assert sorted(found(reader, "quarterly")) == sorted(m.id for m in older)


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
    assert signed_in.get("/api/search/", {"q": "reorg"}).json() == {"results": []}
    assert signed_in.get("/api/search/", {"q": "reorg", "room": "secret"}).status_code == 404
    assert signed_in.get("/search/", {"q": "reorg", "room": "secret"}).status_code == 404


# --- snippets --------------------------------------------------------------------


def test_every_occurrence_in_the_snippet_is_highlighted_with_its_own_case(reader, general_room):
    say(general_room, "Deploy early, deploy often, DEPLOY always")
    (hit,) = messages_search(reader, "deploy")
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
    (hit,) = messages_search(reader, "needle")
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
        "user": "alice",
        "created": result["created"],
        "snippet": [["ship", True], [" it", False]],
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


def test_a_hostile_body_is_rendered_as_text(signed_in, general_room):
    say(general_room, XSS)
    page = signed_in.get("/search/", {"q": "deploy"}).content.decode()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert "<script>alert" not in page


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


def test_the_page_loads_no_script_and_nothing_from_other_hosts(signed_in, general_room):
    say(general_room, "release day")
    page = signed_in.get("/search/", {"q": "release"}).content.decode()
    assert "<script" not in page and "style=" not in page
    assert "https://" not in page and "http://" not in page


# --- cost ------------------------------------------------------------------------


def test_the_search_is_one_query_however_many_hits(reader, general_room, django_assert_num_queries):
    for i in range(30):
        say(general_room, f"metric {i}")
    with django_assert_num_queries(1):
        assert len(messages_search(reader, "metric")) == 30


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
