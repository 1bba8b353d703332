"""Message search across every room a user may read, page by page.

On PostgreSQL a message matches when its words match the query (full-text
search with the `simple` configuration: no stemming, so identifiers and names
stay as typed) or when the query occurs anywhere in its text (ILIKE, which the
trigram index answers), so parts of words, identifiers and URLs are found too.
Elsewhere (SQLite) a case-insensitive substring match stands in.

Filters in the query narrow it and work without words too: `from:alice`,
`in:general` (a room's slug) or `in:@bob` (the conversation with bob),
`after:2026-01-01` and `before:2026-01-31` (whole days, both included).

Hits come newest first and are paged with a cursor (the last id seen), never
an offset: each page reads at most a page of ids from each index, and a
message stored while someone pages cannot shift the pages they have not seen
yet, so paging reaches every match exactly once. The total is counted the same
bounded way, up to TOTAL_CAP; past that it is "more than TOTAL_CAP".

Snippets are cut from the message as rendered and sanitized by
chat.formatting (never from its Markdown source), with matches marked in its
text nodes only.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import OperationalError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Func, Lookup, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from accounts.models import User
from accounts.selectors import avatar_url

from . import access, formatting, selectors
from .errors import NoSuchRoom
from .models import Message, Room, Upload

QUERY_MIN_LENGTH = 2
# Parts of words, identifiers and URLs are found from this many characters
# (trigrams); shorter queries match whole words only.
SUBSTRING_MIN_LENGTH = 3
QUERY_MAX_LENGTH = 200
# The words plus the filters.
QUERY_WITH_FILTERS_MAX_LENGTH = 400
SEARCH_DEFAULT_LIMIT = 50
# How long asking the text indexes first may take before the planner's own
# plan is used instead (see _newest_ids).
INDEX_FIRST_BUDGET_MS = 150
QUERY_CANCELED = "57014"
SEARCH_MAX_LIMIT = 200
# Matches are counted up to this many; beyond, the total is "more than" it.
TOTAL_CAP = 1000
# How far apart `created` and id order may drift (see _filtered).
DATE_MARGIN = timedelta(hours=1)
_NO_ID = 2**63 - 1
SNIPPET_LENGTH = 160
# How much text to keep before the first match, so the match is read in context
# but still sits near the start of the snippet.
SNIPPET_LEAD = 50

# Control characters cannot be typed in a search box, and PostgreSQL refuses
# NUL in text outright: reject them up front rather than fail in the database.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# websearch_to_tsquery syntax the snippet must not highlight literally.
_QUOTES = "\"'"
# A filter is a word of its own: "from:alice", not "https://...".
_FILTER = re.compile(r"\s*(?<!\S)(from|in|before|after):(\S*)", re.IGNORECASE)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURSOR = re.compile(r"(\d{1,18})\.(\d{1,9})")

Segment = formatting.Segment


class SearchError(ValueError):
    """The search cannot be run; the message says why, for the user.

    `code` is the API's error code: `invalid` (the words), `invalid_filter`
    (a filter, named by `filter`) or `invalid_cursor`.
    """

    def __init__(self, message: str, *, code: str = "invalid", filter: str | None = None):
        super().__init__(message)
        self.code = code
        self.filter = filter


@dataclass(frozen=True)
class SearchQueryParts:
    """A query taken apart: the words to match and the filters, resolved."""

    words: str = ""
    author: User | None = None
    room: Room | None = None
    # Bounds on `created`: since is included, until is not.
    since: datetime | None = None
    until: datetime | None = None
    filters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchHit:
    """One message found: where, by whom, when, and the part of it that matched."""

    id: int
    room: str
    room_name: str
    room_kind: str
    # Direct messages: the other people in the conversation, by name.
    people: list[str]
    user: str
    # The author as people see them: display name ("" for none) and picture URL.
    user_display_name: str
    user_avatar: str | None
    created: datetime
    snippet: list[Segment]
    # The same excerpt as sanitized HTML, matches in <mark>.
    snippet_html: str
    # The files the message carries (attachment objects).
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # A reply: its root's id, and whether it was also sent to the room.
    thread: int | None = None
    in_channel: bool = False

    @property
    def room_label(self) -> str:
        if self.room_kind == Room.Kind.DIRECT:
            return ", ".join(self.people) or self.room_name
        return f"#{self.room_name}"


@dataclass(frozen=True)
class SearchPage:
    """One page of hits, newest first, and where it sits among all of them."""

    hits: list[SearchHit]
    # Every match when total_exact; otherwise there are more than `total`.
    total: int
    total_exact: bool
    # Position of the first hit among all matches (0 for the first page).
    start: int
    # Pass back as `cursor` for the next page; None on the last one.
    next_cursor: str | None


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


# --- the query and its filters ---------------------------------------------------


def search_query_clean(query: str) -> str:
    """Words to search for without surrounding whitespace, or SearchError."""
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


def search_query_parse(user: User, query: str, *, room: Room | None = None) -> SearchQueryParts:
    """Split `query` into words and filters and resolve the filters for `user`.

    `room` (already checked) stands for an `in:` filter; naming another room
    with `in:` as well is an error. SearchError says what is wrong: too few
    or too many characters, or which filter cannot be used and why.
    """
    if len(query.strip()) > QUERY_WITH_FILTERS_MAX_LENGTH:
        raise SearchError(f"Search for at most {QUERY_MAX_LENGTH} characters.")
    if _CONTROL.search(query):
        raise SearchError("The search contains control characters.")
    filters: dict[str, str] = {}
    for match in _FILTER.finditer(query):
        name, value = match.group(1).lower(), match.group(2)
        if name in filters:
            raise SearchError(f"Use {name}: once.", code="invalid_filter", filter=name)
        if not value:
            raise SearchError(
                f"Say what {name}: should be, with no space after the colon.",
                code="invalid_filter",
                filter=name,
            )
        filters[name] = value
    words = _FILTER.sub("", query).strip()
    if words or not filters:
        words = search_query_clean(words)
    since = _day_filter(filters, "after")
    until = _day_filter(filters, "before")
    if since is not None and until is not None and until <= since:
        raise SearchError(
            "before: is earlier than after:, so nothing can match.",
            code="invalid_filter",
            filter="before",
        )
    if "in" in filters:
        named = _room_filter(user, filters["in"])
        if room is not None and named.pk != room.pk:
            raise SearchError("Search one room at a time.", code="invalid_filter", filter="in")
        room = named
    author = _author_filter(filters["from"]) if "from" in filters else None
    return SearchQueryParts(
        words=words, author=author, room=room, since=since, until=until, filters=filters
    )


def _day_filter(filters: dict[str, str], name: str) -> datetime | None:
    """after:D is from the start of day D; before:D up to the end of day D (site time)."""
    value = filters.get(name)
    if value is None:
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise SearchError(
            f"{name}: takes a date written like 2026-01-31.", code="invalid_filter", filter=name
        ) from None
    if name == "before":
        if day == date.max:
            return None
        day += timedelta(days=1)
    return timezone.make_aware(datetime.combine(day, time.min))


def _author_filter(value: str) -> User:
    name = value.removeprefix("@")
    author = User.objects.filter(username__iexact=name).first()
    if author is None:
        raise SearchError(f"No one is called {name}.", code="invalid_filter", filter="from")
    return author


def _room_filter(user: User, value: str) -> Room:
    """in:slug or in:#slug for a room; in:@bob (or in:@bob,carol) for a conversation."""
    if value.startswith("@"):
        return _conversation_filter(user, value[1:])
    slug = value.removeprefix("#")
    try:
        return selectors.room_for_reader(user, slug)
    except NoSuchRoom:
        raise SearchError(
            f"You have no room called {slug}.", code="invalid_filter", filter="in"
        ) from None


def _conversation_filter(user: User, value: str) -> Room:
    names = {n.removeprefix("@").lower() for n in value.split(",") if n} - {user.username.lower()}
    people = list(User.objects.filter(username__in=names)) if names else []
    try:
        if not names or len(people) != len(names):
            raise NoSuchRoom(value)
        key = "-".join(str(pk) for pk in sorted([user.pk, *(p.pk for p in people)]))
        # Through the one rule: a conversation one is not in is not found.
        return selectors.room_for_reader(user, f"dm-{selectors.dm_slug_suffix(key)}")
    except NoSuchRoom:
        raise SearchError(
            f"You have no conversation with {value}.", code="invalid_filter", filter="in"
        ) from None


def search_cursor_parse(cursor: str) -> tuple[int, int]:
    """(last id seen, position of the next hit) from a cursor of a previous page."""
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise SearchError(
            "That page of results cannot be found; search again.", code="invalid_cursor"
        )
    return int(match.group(1)), int(match.group(2))


# --- the queries ------------------------------------------------------------------


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(user: User, parts: SearchQueryParts) -> QuerySet[Message]:
    qs = Message.objects.filter(access.readable_through(user.pk), is_deleted=False)
    if parts.room is not None:
        qs = qs.filter(room=parts.room)
    if parts.author is not None:
        qs = qs.filter(author=parts.author)
    # A date filter is exact on `created`, and also becomes a bound on the id
    # (what results are ordered and paged by), found through the index on
    # `created`: without it, "before:" a day long ago would read every newer
    # message first. Ids follow `created` (set when a message is stored) to
    # well within DATE_MARGIN, so a message of the day is never outside it.
    if parts.since is not None:
        older = Message.objects.filter(created__lt=parts.since - DATE_MARGIN)
        floor = older.order_by("-created").values("id")[:1]
        qs = qs.filter(created__gte=parts.since, id__gt=Coalesce(Subquery(floor), 0))
    if parts.until is not None:
        newer = Message.objects.filter(created__gte=parts.until + DATE_MARGIN)
        ceiling = newer.order_by("created").values("id")[:1]
        qs = qs.filter(created__lt=parts.until, id__lt=Coalesce(Subquery(ceiling), _NO_ID))
    return qs


def _halves(readable: QuerySet[Message], words: str) -> list[QuerySet[Message]]:
    """The matching messages as one queryset per index that answers part of the query.

    Each condition in its own SELECT so each index answers its half: ORed in
    one WHERE, every row the trigram index finds would be re-checked against
    to_tsvector as well, computed afresh from its body. Callers take the
    newest few of each half before combining them, so a word found in every
    other message costs about what a rare one does.
    """
    if not words:
        return [readable]
    if connection.vendor != "postgresql":
        return [readable.filter(body__icontains=words)]
    tsquery = SearchQuery(words, config="simple", search_type="websearch")
    halves = [readable.filter(_Matches(_SimpleTsvector(F("body")), tsquery))]
    if len(words) >= SUBSTRING_MIN_LENGTH:
        # Trigrams: a shorter query could not use the index, only read every message.
        halves.append(readable.filter(_ILike(F("body"), Value(_like_pattern(words)))))
    return halves


# The newest messages with a matching file name considered per search: a
# name common enough to pass this is better narrowed with more words.
FILE_CANDIDATES = 2000


def _named_files(words: str) -> QuerySet[Upload, int]:
    """Ids of messages carrying a file whose name holds every word ("quarterly report").

    On PostgreSQL as ILIKE, which the trigram index of migration 0008 answers.
    """
    files = Upload.objects.filter(message__isnull=False)
    for word in words.split():
        word = word.strip('"')
        if not word:
            continue
        if connection.vendor == "postgresql":
            files = files.filter(_ILike(F("name"), Value(_like_pattern(word))))
        else:
            files = files.filter(name__icontains=word)
    return files.values_list("message_id", flat=True)


@dataclass
class HalfAsked:
    """How one half of a search was answered (for bench/search_explain.py)."""

    queryset: QuerySet[Message, int]
    index_first: bool


def _newest_ids(
    half: QuerySet[Message],
    limit: int,
    *,
    words: str,
    trace: list[HalfAsked] | None = None,
) -> list[int]:
    """The ids of the newest `limit` messages of one half, asked the fastest way found.

    PostgreSQL guesses that about 1% of messages match any pattern, so for
    the newest few matches it often walks the primary key backwards, testing
    every message: quick when matches are common, seconds when they are
    rare. Ordering by "id + 0" (no index is sorted by it) makes it ask the
    text index first and sort what it finds: quick for rare matches, slow
    for very common ones. Which is which cannot be told from the words, so
    the index is tried under a statement timeout and the walk answers when
    that runs out: at worst the budget is spent for nothing, never both slow
    plans. Each half on its own: in "deploy staging" the words are common
    and the phrase is rare.
    """

    def ask(index_first: bool) -> list[int]:
        order = (F("id") + 0).desc() if index_first else F("id").desc()
        queryset = half.order_by(order).values_list("id", flat=True)[:limit]
        ids = list(queryset)
        if trace is not None:  # what answered: an attempt that ran out raised above
            trace.append(HalfAsked(queryset, index_first))
        return ids

    if not words or connection.vendor != "postgresql":
        return ask(False)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)", [str(INDEX_FIRST_BUDGET_MS)]
            )
            ids = ask(True)
            cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
            return ids
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
            raise
    return ask(False)


def search_ids(
    user: User,
    parts: SearchQueryParts,
    *,
    before_id: int | None = None,
    limit: int,
    trace: list[HalfAsked] | None = None,
) -> list[int]:
    """Ids of up to `limit` matches `user` may read, newest first, below `before_id`."""
    found: set[int] = set()
    readable = _filtered(user, parts)
    for half in _halves(readable, parts.words):
        if before_id is not None:
            half = half.filter(id__lt=before_id)
        found.update(_newest_ids(half, limit, words=parts.words, trace=trace))
    if parts.words:
        # Messages whose files are named so, found from the uploads (far fewer
        # than the messages) and only then checked against who may read them:
        # asked the other way round, an empty match would walk every message.
        named = _named_files(parts.words)
        if before_id is not None:
            named = named.filter(message_id__lt=before_id)
        candidates = list(named.order_by("-message_id")[:FILE_CANDIDATES])
        if candidates:
            files = readable.filter(id__in=candidates).order_by("-id")
            found.update(files.values_list("id", flat=True)[:limit])
    return sorted(found, reverse=True)[:limit]


def search_total(
    user: User, parts: SearchQueryParts, *, trace: list[HalfAsked] | None = None
) -> tuple[int, bool]:
    """(number of matches, exact?): counted up to TOTAL_CAP, bounded queries.

    Each half contributes at most TOTAL_CAP + 1 ids; their union is every
    match when both are under the cap, and over the cap when either is.
    """
    counted = len(search_ids(user, parts, limit=TOTAL_CAP + 1, trace=trace))
    return min(counted, TOTAL_CAP), counted <= TOTAL_CAP


def _hits_by_id(ids: list[int]) -> list[Message]:
    """The messages of `ids`, in that order, with what a result shows."""
    rows = (
        Message.objects.filter(id__in=ids)
        .select_related("room", "author")
        .only(
            "id",
            "body",
            "html",
            "created",
            "thread_id",
            "in_channel",
            "room__slug",
            "room__name",
            "room__kind",
            "author__username",
            "author__display_name",
            "author__avatar",
            "author__avatar_version",
        )
        .order_by("-id")
    )
    return list(rows)


def messages_search(
    user: User,
    query: str,
    *,
    limit: int = SEARCH_DEFAULT_LIMIT,
    room: Room | None = None,
    cursor: str | None = None,
) -> SearchPage:
    """One page of the messages matching `query` in rooms `user` may read, newest first.

    `query` is words and filters (see search_query_parse); `room` limits the
    search as `in:` does; `cursor` is a previous page's next_cursor. A fixed
    number of queries: the ids of each half of the match for the page and
    for the total (see _newest_ids), the page's messages, the people of the
    conversations on the page if any, and one per filter to resolve.
    Deleted messages never match. SearchError for a query, filter or cursor
    that cannot be used.
    """
    limit = max(1, min(limit, SEARCH_MAX_LIMIT))
    before_id, start = search_cursor_parse(cursor) if cursor else (None, 0)
    parts = search_query_parse(user, query, room=room)
    total, exact = search_total(user, parts)
    found = _hits_by_id(search_ids(user, parts, before_id=before_id, limit=limit + 1))
    more = len(found) > limit
    found = found[:limit]
    people = selectors.dm_people(
        user.pk, {m.room_id for m in found if m.room.kind == Room.Kind.DIRECT}
    )
    pattern = _pattern(_highlight_terms(parts.words)) if parts.words else None
    files = selectors.message_attachments([m.id for m in found])
    hits = []
    for m in found:
        snippet_html, snippet = formatting.excerpt(
            m.html or formatting.render(m.body), pattern, _window
        )
        hits.append(
            SearchHit(
                id=m.id,
                room=m.room.slug,
                room_name=m.room.name,
                room_kind=m.room.kind,
                people=people.get(m.room_id, []),
                user=m.author.username,
                user_display_name=m.author.display_name,
                user_avatar=avatar_url(m.author),
                created=m.created,
                snippet=snippet,
                snippet_html=snippet_html,
                attachments=files.get(m.id, []),
                thread=m.thread_id,
                in_channel=m.in_channel,
            )
        )
    next_cursor = f"{found[-1].id}.{start + len(found)}" if more else None
    return SearchPage(
        hits=hits, total=total, total_exact=exact, start=start, next_cursor=next_cursor
    )


# --- snippets ---------------------------------------------------------------------


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
    """About SNIPPET_LENGTH characters of `body`, rendered, around the first match of any term.

    As (text, highlighted) segments, every occurrence of a term in the window
    highlighted, with "…" where the text was cut.
    """
    return formatting.excerpt(formatting.render(body), _pattern(terms), _window)[1]
