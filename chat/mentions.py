"""Who a message mentions: people, user groups, and the whole room (@channel, @here).

`resolve_many` turns the `@names` of a batch of bodies into the people to
record as mentioned, the message's `broadcast` and the names the renderer
highlights, in a constant number of queries for the batch:

- one query for the members named (and, for a room where someone wrote
  @channel or @here, all its active members with the admin's size rule);
- one more only when some name is not a member's username (user groups);
- one presence round trip for all the @here rooms of the batch.

@channel (or @everyone) mentions every member through the message's flag,
never a row per member, so it costs the same in a room of five thousand as in
a room of five; @here records a mention for each member online or away when
it is sent. In rooms with more members than `MentionPolicy` allows, only
admins and moderators may use either.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Case, Count, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, Lower

from accounts.models import User

from .errors import ChatError, Code
from .formatting import mentions as mentioned_names
from .models import Membership, MentionPolicy, Message, UserGroup
from .realtime import presence

# The words that mention a whole room, and the broadcast each one means.
BROADCAST_WORDS = {
    "channel": Message.Broadcast.CHANNEL,
    "everyone": Message.Broadcast.CHANNEL,
    "here": Message.Broadcast.HERE,
}
# Presence states that count as "here".
HERE_STATES = frozenset({"online", "away"})


@dataclass(frozen=True)
class MentionRequest:
    room_id: int
    author: User
    body: str


@dataclass
class Resolved:
    """A body's mentions: the people to record, its broadcast, what the renderer highlights."""

    users: list[User] = field(default_factory=list)
    broadcast: str = ""
    highlighted: frozenset[str] = frozenset()
    error: ChatError | None = None


def broadcast_of(names: Iterable[str]) -> str:
    """The broadcast a set of lowercase `@names` asks for ("" for none); @channel wins."""
    kinds = {BROADCAST_WORDS[n] for n in names if n in BROADCAST_WORDS}
    if Message.Broadcast.CHANNEL in kinds:
        return Message.Broadcast.CHANNEL
    return Message.Broadcast.HERE if kinds else ""


def _policy_limit() -> Coalesce:
    default = MentionPolicy._meta.get_field("broadcast_max_members").get_default()
    limit = MentionPolicy.objects.filter(pk=1).values("broadcast_max_members")[:1]
    return Coalesce(Subquery(limit, output_field=IntegerField()), Value(default))


@dataclass
class _Rooms:
    """What one query told about the rooms of a batch."""

    named: dict[int, dict[str, User]]  # room id -> lowercase username -> member
    everyone: dict[int, list[User]]  # room id -> all active members (@here rooms only)
    sizes: dict[int, int]  # room id -> active members (broadcast rooms only)
    limit: int | None  # the admin's size rule (when a broadcast asked for it)


def _members_counted() -> Subquery:
    members = Membership.objects.filter(room_id=OuterRef("room_id"), user__is_active=True)
    counted = members.order_by().values("room_id").annotate(n=Count("id")).values("n")
    return Subquery(counted, output_field=IntegerField())


def _rooms_read(
    wanted: dict[int, set[str]], here_rooms: set[int], channel_rooms: set[int], authors: set[int]
) -> _Rooms:
    """The members named in each room, and what the broadcasts need. One query.

    Rows: the members named; every member of a room someone wrote @here in
    (who is online is asked next); for @channel only the authors' own rows,
    carrying their room's size, so a room of thousands is not read.
    """
    names = set().union(*wanted.values()) if wanted else set()
    channel_rooms = channel_rooms - here_rooms  # those rooms are read whole anyway
    found = _Rooms(defaultdict(dict), defaultdict(list), {}, None)
    parts = []
    if names:
        parts.append(Q(lname__in=names))
    if here_rooms:
        parts.append(Q(room_id__in=here_rooms))
    if channel_rooms:
        parts.append(Q(room_id__in=channel_rooms, user_id__in=authors))
    if not parts:
        return found
    chosen = parts[0]
    for part in parts[1:]:
        chosen |= part
    broadcast = bool(here_rooms or channel_rooms)
    # The admin's rule and the rooms' sizes ride along only when a broadcast needs them.
    none = Value(None, output_field=IntegerField())
    limit = _policy_limit() if broadcast else none
    size = Case(When(room_id__in=channel_rooms, then=_members_counted()), default=none)
    rows = (
        Membership.objects.filter(
            room_id__in=set(wanted) | here_rooms | channel_rooms, user__is_active=True
        )
        .annotate(lname=Lower("user__username"), limit=limit, size=size if channel_rooms else none)
        .filter(chosen)
        .values_list("room_id", "user_id", "user__username", "limit", "size")
    )
    for room_id, user_id, username, most, members in rows:
        user = User(pk=user_id, username=username)
        lname = username.lower()
        if lname in wanted.get(room_id, ()):
            found.named[room_id][lname] = user
        if room_id in here_rooms:
            found.everyone[room_id].append(user)
            found.sizes[room_id] = len(found.everyone[room_id])
        elif members is not None:
            found.sizes[room_id] = members
        if most is not None:
            found.limit = most
    return found


def _groups_read(missing: dict[int, set[str]]) -> dict[int, dict[str, list[User]]]:
    """room id -> group handle -> the group's active members in that room. One query."""
    handles = set().union(*missing.values())
    # One filter() call, so the room and the member are those of the same joined row.
    rows = (
        UserGroup.objects.annotate(lhandle=Lower("handle"))
        .filter(
            lhandle__in=handles,
            members__is_active=True,
            members__memberships__room_id__in=missing.keys(),
        )
        .values_list("lhandle", "members__memberships__room_id", "members__id", "members__username")
    )
    found: dict[int, dict[str, list[User]]] = defaultdict(lambda: defaultdict(list))
    for handle, room_id, user_id, username in rows:
        if handle in missing[room_id]:
            found[room_id][handle].append(User(pk=user_id, username=username))
    return found


def _here(rooms: _Rooms, here_rooms: set[int]) -> set[int]:
    """The ids of the members of these rooms online or away now. One presence round trip."""
    ids = sorted({u.pk for room_id in here_rooms for u in rooms.everyone.get(room_id, [])})
    if not ids:
        return set()
    return {user_id for user_id, state in presence.states(ids).items() if state in HERE_STATES}


def resolve_many(requests: list[MentionRequest]) -> list[Resolved]:
    """The mentions of each body of a batch, in order; a constant number of queries for it.

    A username wins over a group handle of the same name; the broadcast
    words are never usernames or handles. A broadcast the author may not
    use in that room (more members than the admin's rule, and the author
    neither an admin nor a moderator) comes back as `error` (`forbidden`).
    """
    named = [mentioned_names(r.body) if "@" in r.body else set() for r in requests]
    wanted: dict[int, set[str]] = {}
    here_rooms: set[int] = set()
    channel_rooms: set[int] = set()
    authors: set[int] = set()
    for request, names in zip(requests, named, strict=True):
        people = names - BROADCAST_WORDS.keys()
        if people:
            wanted.setdefault(request.room_id, set()).update(people)
        broadcast = broadcast_of(names)
        if broadcast == Message.Broadcast.HERE:
            here_rooms.add(request.room_id)
        elif broadcast == Message.Broadcast.CHANNEL:
            channel_rooms.add(request.room_id)
            authors.add(request.author.pk)
    rooms = _rooms_read(wanted, here_rooms, channel_rooms, authors)

    missing: dict[int, set[str]] = {}
    for room_id, names in wanted.items():
        absent = names - rooms.named[room_id].keys()
        if absent:
            missing[room_id] = absent
    groups = _groups_read(missing) if missing else {}

    online = _here(rooms, here_rooms) if here_rooms else set()

    results = []
    for request, names in zip(requests, named, strict=True):
        results.append(_resolve_one(request, names, rooms, groups, online))
    return results


def _resolve_one(
    request: MentionRequest,
    names: set[str],
    rooms: _Rooms,
    groups: dict[int, dict[str, list[User]]],
    online: set[int],
) -> Resolved:
    if not names:
        return Resolved()
    room_id, author = request.room_id, request.author
    in_room = rooms.named.get(room_id, {})
    room_groups = groups.get(room_id, {})
    users: dict[int, User] = {}
    highlighted: set[str] = set()
    for name in sorted(names):
        if name in in_room:
            users[in_room[name].pk] = in_room[name]
            highlighted.add(name)
        elif room_groups.get(name):
            highlighted.add(name)
            # The author is not mentioned by a group they belong to.
            users.update((u.pk, u) for u in room_groups[name] if u.pk != author.pk)
    broadcast = broadcast_of(names)
    if broadcast:
        limit = rooms.limit if rooms.limit is not None else 0
        if rooms.sizes.get(room_id, 0) > limit and not author.is_moderator:
            return Resolved(
                error=ChatError(
                    Code.FORBIDDEN,
                    f"In rooms with more than {limit} members only admins and moderators "
                    "may notify everyone (@channel, @everyone, @here).",
                )
            )
        highlighted.update(n for n in names if n in BROADCAST_WORDS)
        if broadcast == Message.Broadcast.HERE:
            here = rooms.everyone.get(room_id, [])
            users.update((u.pk, u) for u in here if u.pk in online and u.pk != author.pk)
    return Resolved(
        users=sorted(users.values(), key=lambda u: u.username.lower()),
        broadcast=broadcast,
        highlighted=frozenset(highlighted),
    )
