"""Message search across every room a user may read.

On PostgreSQL a message matches when its words match the query (full-text
search with the `simple` configuration: no stemming, so identifiers and names
stay as typed) or when the query occurs anywhere in its text (ILIKE, which the
trigram index answers), so parts of words, identifiers and URLs are found too.
Elsewhere (SQLite) a case-insensitive substring match stands in.

Snippets are computed here, in Python, as plain-text segments with a flag for
"highlighted", so templates and scripts render them as text and never as HTML.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.postgres.search import (
    SearchQuery,
    SearchRank,
    SearchVectorField,
    TrigramWordSimilarity,
)
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Func, Lookup, Q, QuerySet, Value
from django.db.models.sql.compiler import SQLCompiler

from accounts.models import User

from . import access, selectors
from .models import Message, Room

QUERY_MIN_LENGTH = 2
# Parts of words, identifiers and URLs are found from this many characters
# (trigrams); shorter queries match whole words only.
SUBSTRING_MIN_LENGTH = 3
QUERY_MAX_LENGTH = 200
SEARCH_DEFAULT_LIMIT = 50
SEARCH_MAX_LIMIT = 200
# Matches ranked on PostgreSQL: beyond this many, older ones are left out.
RANK_WINDOW = 1000
SNIPPET_LENGTH = 160
# How much text to keep before the first match, so the match is read in context
# but still sits near the start of the snippet.
SNIPPET_LEAD = 50
ELLIPSIS = "…"

# Control characters cannot be typed in a search box, and PostgreSQL refuses
# NUL in text outright: reject them up front rather than fail in the database.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# websearch_to_tsquery syntax the snippet must not highlight literally.
_QUOTES = "\"'"

Segment = tuple[str, bool]


class SearchError(ValueError):
    """The query cannot be searched for; the message says why, for the user."""


@dataclass(frozen=True)
class SearchHit:
    """One message found: where, by whom, when, and the part of it that matched."""

    id: int
    room: str
    room_name: str
    user: str
    created: datetime
    snippet: list[Segment]


class _SimpleTsvector(Func):
    # Written exactly as the expression index of migration 0004 is, so the
    # planner can use it (SearchVector adds a COALESCE the index lacks).
    template = "to_tsvector('simple'::regconfig, %(expressions)s)"
    output_field = SearchVectorField()


class _Matches(Lookup):
    # tsvector @@ tsquery, usable directly in filter() with any left-hand side.
    lookup_name = "matches"

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} @@ {rhs}", (*lhs_params, *rhs_params)


class _ILike(Lookup):
    # Django's icontains is UPPER(body) LIKE UPPER(...), which the trigram
    # index on body cannot answer; ILIKE can.
    lookup_name = "ilike"

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", (*lhs_params, *rhs_params)


def search_query_clean(query: str) -> str:
    """The query without surrounding whitespace, or SearchError if it cannot be searched for."""
    cleaned = query.strip()
    if len(cleaned) < QUERY_MIN_LENGTH:
        raise SearchError(f"Type at least {QUERY_MIN_LENGTH} characters to search.")
    if len(cleaned) > QUERY_MAX_LENGTH:
        raise SearchError(f"Search for at most {QUERY_MAX_LENGTH} characters.")
    if _CONTROL.search(cleaned):
        raise SearchError("The search contains control characters.")
    return cleaned


def search_room_for(user: User, slug: str) -> Room:
    """The room `slug` to limit a search to, or NoSuchRoom when `user` may not read it."""
    return selectors.room_for_reader(user, slug)


def _readable(user: User) -> Q:
    # Messages of the rooms the user may read (archived ones included).
    return access.readable_by(user.pk, prefix="room__")


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _readable_messages(user: User, room: Room | None) -> QuerySet[Message]:
    qs = Message.objects.filter(_readable(user), is_deleted=False)
    return qs if room is None else qs.filter(room=room)


def _with_hit_fields(qs: QuerySet[Message]) -> QuerySet[Message]:
    return qs.select_related("room", "author").only(
        "id", "body", "created", "room__slug", "room__name", "author__username"
    )


def _postgres_search(readable: QuerySet[Message], query: str) -> QuerySet[Message]:
    tsquery = SearchQuery(query, config="simple", search_type="websearch")
    words = _SimpleTsvector(F("body"))
    # Each condition in its own SELECT so each index answers its half: ORed in
    # one WHERE, every row the trigram index finds would be re-checked against
    # to_tsvector as well, computed afresh from its body. Each half keeps only
    # its newest RANK_WINDOW matches before they are combined: a word found
    # in every other message then costs about what a rare one does.
    halves = [readable.filter(_Matches(words, tsquery)).order_by("-id").values("id")]
    if len(query) >= SUBSTRING_MIN_LENGTH:
        # Trigrams: a shorter query could not use the index, only read every message.
        pattern = Value(_like_pattern(query))
        halves.append(readable.filter(_ILike(F("body"), pattern)).order_by("-id").values("id"))
    newest = [half[:RANK_WINDOW] for half in halves]
    ids = newest[0].union(*newest[1:]) if len(newest) > 1 else newest[0]
    rank = SearchRank(words, tsquery) + TrigramWordSimilarity(query, F("body"))
    return (
        _with_hit_fields(Message.objects.filter(id__in=ids))
        .annotate(rank=rank)
        .order_by("-rank", "-created", "-id")
    )


def _fallback_search(readable: QuerySet[Message], query: str) -> QuerySet[Message]:
    return _with_hit_fields(readable.filter(body__icontains=query)).order_by("-created", "-id")


def search_queryset(user: User, query: str, *, room: Room | None = None) -> QuerySet[Message]:
    """The messages matching a cleaned `query` that `user` may read, best first (unsliced)."""
    readable = _readable_messages(user, room)
    if connection.vendor == "postgresql":
        return _postgres_search(readable, query)
    return _fallback_search(readable, query)


def messages_search(
    user: User, query: str, *, limit: int = SEARCH_DEFAULT_LIMIT, room: Room | None = None
) -> list[SearchHit]:
    """Messages matching `query` in rooms `user` may read (or in `room` only), best first.

    One query, whatever the number of hits. Deleted messages never match.
    On PostgreSQL the best are those whose words match best, then the newest
    (among the newest RANK_WINDOW matches); elsewhere simply the newest.
    SearchError when the query is too short, too long or not text.
    """
    query = search_query_clean(query)
    limit = max(1, min(limit, SEARCH_MAX_LIMIT))
    qs = search_queryset(user, query, room=room)
    terms = _highlight_terms(query)
    return [
        SearchHit(
            id=m.id,
            room=m.room.slug,
            room_name=m.room.name,
            user=m.author.username,
            created=m.created,
            snippet=snippet_segments(m.body, terms),
        )
        for m in qs[:limit]
    ]


def _highlight_terms(query: str) -> list[str]:
    """The query as typed, and each word of it that the search looks for."""
    terms = [query.strip(_QUOTES).strip()]
    for word in query.split():
        # websearch syntax: "OR" joins words, a leading "-" excludes one.
        if word.lower() == "or" or word.startswith("-"):
            continue
        word = word.strip(_QUOTES)
        if word:
            terms.append(word)
    unique = {t.casefold(): t for t in terms if t}
    return sorted(unique.values(), key=len, reverse=True)


def _pattern(terms: list[str]) -> re.Pattern[str] | None:
    parts = []
    for term in terms:
        # A single letter would light up inside every word: only as a word.
        parts.append(rf"\b{re.escape(term)}\b" if len(term) == 1 else re.escape(term))
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def _window(text: str, start: int, end: int) -> tuple[int, int]:
    """Bounds of about SNIPPET_LENGTH characters of `text` that hold text[start:end]."""
    if len(text) <= SNIPPET_LENGTH:
        return 0, len(text)
    lo = max(0, start - SNIPPET_LEAD)
    hi = max(end, lo + SNIPPET_LENGTH)
    if hi > len(text):
        hi = len(text)
        lo = max(0, min(lo, hi - SNIPPET_LENGTH))
    # Cut between words when a space is near, never inside the match.
    if lo > 0:
        space = text.find(" ", lo, min(start, lo + 20))
        if space != -1:
            lo = space + 1
    if hi < len(text):
        space = text.rfind(" ", max(end, hi - 20), hi)
        if space != -1:
            hi = space
    return lo, hi


def snippet_segments(body: str, terms: list[str]) -> list[Segment]:
    """About SNIPPET_LENGTH characters of `body` around the first match of any term.

    Returned as (text, highlighted) segments, every occurrence of a term in
    the window highlighted, with "…" where the body was cut. Runs of
    whitespace become one space, as they would on the page anyway.
    """
    text = " ".join(body.split())
    pattern = _pattern(terms)
    first = pattern.search(text) if pattern else None
    start, end = (first.start(), first.end()) if first else (0, 0)
    lo, hi = _window(text, start, end)
    window = text[lo:hi]
    segments: list[Segment] = []
    if lo > 0:
        segments.append((ELLIPSIS, False))
    pos = 0
    for match in pattern.finditer(window) if pattern else ():
        if match.start() > pos:
            segments.append((window[pos : match.start()], False))
        segments.append((match.group(), True))
        pos = match.end()
    if pos < len(window):
        segments.append((window[pos:], False))
    if hi < len(text):
        segments.append((ELLIPSIS, False))
    return _merged(segments)


def _merged(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for text, marked in segments:
        if not text:
            continue
        if merged and merged[-1][1] == marked:
            merged[-1] = (merged[-1][0] + text, marked)
        else:
            merged.append((text, marked))
    return merged
