"""Presence: online (some tab active), away (tabs open, none active) or offline.

Each server process knows the states of its own sockets. What a user is
across processes lives in Redis (when configured) as one hash per user with a
field per process, `state|expires|sockets`, which the process keeps renewing,
so the entries of a process that died fade out by themselves, and a version
field that every write increments, so a newer reading always wins over an
older one whatever order they arrive in. The socket counts serve the per-user
cap. Presence is never stored in the database.

Nobody is told about everyone: a socket names the people it shows
(`presence_sub`: its DM list, an open member list) and hears about those
only. A process gathers the changes of its users and announces them at most
once per `CHAT_PRESENCE_ANNOUNCE_SECONDS`, in one channel-layer message; every process
passes each socket one `presence` frame with the changes it asked for. A
change that ends where it started (a reconnect, a tab reloaded) is never
announced, and going offline is announced only after
`CHAT_PRESENCE_OFFLINE_GRACE_SECONDS`,
so a tab reconnecting after a restart does not flicker its user offline. N
people connecting at once cost each watcher at most one frame per second, not
one per arrival.

The socket path talks to Redis with redis-py's asyncio client on the event
loop (no thread hop, no connection per call); HTTP views read it with the
blocking client. Without Redis (one process) a dict stands in.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio
from django.conf import settings

from teamchat import metrics, redisconn

from ..eventlog import PresenceChange, apublish_presence, encode
from .perloop import per_event_loop

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0
ENTRY_SECONDS = 90.0
# The heartbeat renews (and reconciles) the users in turn, a slice of them
# every HEARTBEAT_SECONDS / HEARTBEAT_SLICES, rather than all at once.
HEARTBEAT_SLICES = 30
# A version known for a user who is offline is forgotten after this long,
# well before their hash can expire in Redis (and its version start again).
FORGET_OFFLINE_SECONDS = 60.0
# The most people one socket may follow.
MAX_WATCHED = 1000
ONLINE, AWAY, OFFLINE = "online", "away", "offline"
_RANK = {ONLINE: 2, AWAY: 1, OFFLINE: 0}
_VERSION = "~v"

# Without Redis: key -> {process: entry, "~v": version}, shared by the one process's threads.
_memory: dict[str, dict[str, str]] = {}
_sync_client: redis.Redis | None = None


class Watcher(Protocol):
    user_id: int

    async def deliver_now(self, text: str) -> None: ...


def _key(user_id: int) -> str:
    return f"{settings.CHANNEL_LAYER_PREFIX}:presence:{user_id}"


def _entry(state: str, sockets: int) -> str:
    return f"{state}|{time.time() + ENTRY_SECONDS:.0f}|{sockets}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(entries: dict[Any, Any] | None) -> list[tuple[str, str, float, int]]:
    """[(process, state, expires, sockets)] of the live entries."""
    now = time.time()
    parsed = []
    for process, value in (entries or {}).items():
        process = _text(process)
        if process == _VERSION:
            continue
        state, expires, sockets = _text(value).split("|")
        if float(expires) > now:
            parsed.append((process, state, float(expires), int(sockets)))
    return parsed


def _best(entries: dict[Any, Any] | None) -> str:
    best = OFFLINE
    for _, state, _, _ in _parse(entries):
        if _RANK[state] > _RANK[best]:
            best = state
    return best


def _version(entries: dict[Any, Any] | None) -> int:
    for field, value in (entries or {}).items():
        if _text(field) == _VERSION:
            return int(value)
    return 0


@dataclass(frozen=True, slots=True)
class Summary:
    """A user's state across all processes, its version, and other processes' sockets."""

    state: str
    version: int
    others: int


def _summary(entries: dict[Any, Any] | None, process: str) -> Summary:
    others = sum(n for p, _, _, n in _parse(entries) if p != process)
    return Summary(_best(entries), _version(entries), others)


# Users per script call: Redis runs a script alone, so keep each call short.
SCRIPT_BATCH = 1000
# For each user's hash (KEYS): the best live state, the version, and the sockets
# of the processes other than ARGV[1], at time ARGV[2]; as one flat list.
_SUMMARIES = """
local rank = {online = 2, away = 1}
local now = tonumber(ARGV[2])
local out = {}
for _, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  local best, best_rank, version, others = 'offline', 0, 0, 0
  for j = 1, #fields, 2 do
    local field, value = fields[j], fields[j + 1]
    if field == '~v' then
      version = tonumber(value)
    else
      local state, expires, sockets = string.match(value, '^([^|]*)|([^|]*)|([^|]*)$')
      if state and tonumber(expires) > now then
        local r = rank[state] or 0
        if r > best_rank then best, best_rank = state, r end
        if field ~= ARGV[1] then others = others + tonumber(sockets) end
      end
    end
  end
  out[#out + 1] = best
  out[#out + 1] = version
  out[#out + 1] = others
end
return out
"""
# For each user's hash (KEYS): set this process's entry (ARGV[1]) to ARGV[2 + i]
# or remove it ('' ), count the version up, renew the expiry (ARGV[2] seconds);
# the new versions, in order.
_WRITE = """
local out = {}
for i, key in ipairs(KEYS) do
  local entry = ARGV[2 + i]
  if entry == '' then
    redis.call('HDEL', key, ARGV[1])
  else
    redis.call('HSET', key, ARGV[1], entry)
  end
  out[i] = redis.call('HINCRBY', key, '~v', 1)
  redis.call('EXPIRE', key, ARGV[2])
end
return out
"""


def states(user_ids: list[int]) -> dict[int, str]:
    """Each user's state across every server process. One round trip."""
    global _sync_client
    if not settings.REDIS_URL:
        return {u: _best(_memory.get(_key(u))) for u in user_ids}
    if _sync_client is None:
        _sync_client = redisconn.sync_client()
    pipe = _sync_client.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hgetall(_key(user_id))
    return {u: _best(found) for u, found in zip(user_ids, pipe.execute(), strict=True)}


class LocalPresence:
    """This process's side of presence: its sockets' states, its announcements, its watchers."""

    def __init__(self) -> None:
        self.process = uuid.uuid4().hex
        # user id -> {socket: "active" | "away"} for the sockets open here.
        self.sockets: dict[int, dict[Any, str]] = {}
        # Sockets counted against the per-user cap, from handshake to close.
        self.open: dict[int, int] = {}
        # Usernames of the users with sockets here (announcements carry them).
        self.names: dict[int, str] = {}
        self._client: redis.asyncio.Redis | None = None
        if settings.REDIS_URL:
            # A bounded pool: a burst of handshakes queues for a few
            # connections instead of opening one each.
            self._client = redisconn.async_client(max_connections=16, wait=10)
            self._scripts = {
                "summaries": self._client.register_script(_SUMMARIES),
                "write": self._client.register_script(_WRITE),
            }
        # Other processes' socket counts by user: (count, when read).
        self._remote: dict[int, tuple[int, float]] = {}
        # The version this process's last write gave each of its users.
        self.written: dict[int, int] = {}
        # Entries to write, gathered so that a burst of changes is one round trip.
        self._dirty: dict[int, tuple[str | None, int]] = {}
        self._flushing: asyncio.Task[None] | None = None
        # Reads wanted, gathered the same way: (user ids, the reader's future).
        self._wanted: list[tuple[list[int], asyncio.Future[dict[int, Summary]]]] = []
        self._reading: asyncio.Task[None] | None = None
        # Users whose state here changed since the last announcement, and when.
        self._changed: dict[int, float] = {}
        self._announcing: asyncio.Task[None] | None = None
        # The newest state heard for each user (state, version, when), online or lately.
        self.known: dict[int, tuple[str, int, float]] = {}
        # Who watches whom: user id -> sockets here, and each socket's list.
        self.watchers: dict[int, set[Watcher]] = {}
        self.watching: dict[Watcher, frozenset[int]] = {}
        self._names_watched: dict[int, str] = {}
        # Users whose stored state differed from what was announced at the last heartbeat.
        self._suspect: dict[int, str] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._pruned = 0.0
        self._failing = False

    # --- the shared store ------------------------------------------------------

    async def _read(self, user_id: int) -> Summary:
        """The user's summary; reads asked for at about the same time share one round trip."""
        return (await self._read_many([user_id]))[user_id]

    async def _read_many(self, user_ids: Iterable[int]) -> dict[int, Summary]:
        """Summaries of these users, read with those everyone else asked for meanwhile."""
        ids = list(user_ids)
        if self._client is None:
            return {u: _summary(_memory.get(_key(u)), self.process) for u in ids}
        future: asyncio.Future[dict[int, Summary]] = asyncio.get_running_loop().create_future()
        self._wanted.append((ids, future))
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_wanted())
        return await future

    async def _read_wanted(self) -> None:
        await asyncio.sleep(0)  # let the rest of a burst of handshakes ask
        while self._wanted:
            batch, self._wanted = self._wanted, []
            users = list(dict.fromkeys(u for ids, _ in batch for u in ids))
            try:
                found = dict(zip(users, await self._summaries(users), strict=True))
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for ids, future in batch:
                if not future.done():
                    future.set_result({u: found[u] for u in ids})

    async def _summaries(self, user_ids: list[int]) -> list[Summary]:
        """Each user's state, version and other processes' sockets, worked out in Redis.

        One script call per thousand users: a storm's worth of users costs
        one reply to parse, not three per user.
        """
        assert self._client is not None
        script = self._scripts["summaries"]
        found: list[Summary] = []
        for start in range(0, len(user_ids), SCRIPT_BATCH):
            chunk = user_ids[start : start + SCRIPT_BATCH]
            reply = await script(keys=[_key(u) for u in chunk], args=[self.process, time.time()])
            for i in range(len(chunk)):
                state, version, others = reply[3 * i : 3 * i + 3]
                found.append(Summary(_text(state), int(version), int(others)))
        return found

    async def _write(self, entries: dict[int, tuple[str | None, int]]) -> None:
        """Set (or, for a None state, remove) this process's entry for each user."""
        if self._client is None:
            for user_id, (state, sockets) in entries.items():
                found = _memory.setdefault(_key(user_id), {})
                if state is None:
                    found.pop(self.process, None)
                else:
                    found[self.process] = _entry(state, sockets)
                version = int(found.get(_VERSION, "0")) + 1
                found[_VERSION] = str(version)
                self.written[user_id] = version
            return
        script = self._scripts["write"]
        users = list(entries)
        for start in range(0, len(users), SCRIPT_BATCH):
            chunk = users[start : start + SCRIPT_BATCH]
            args: list[str | int] = [self.process, int(ENTRY_SECONDS * 2)]
            for user_id in chunk:
                state, sockets = entries[user_id]
                args.append("" if state is None else _entry(state, sockets))
            versions = await script(keys=[_key(u) for u in chunk], args=args)
            for user_id, version in zip(chunk, versions, strict=True):
                self.written[user_id] = int(version)

    # --- sockets ----------------------------------------------------------------

    async def admit(self, user_id: int, cap: int) -> bool:
        """Count a new socket of the user unless they already have `cap` open (all processes).

        Other processes' counts are as they last reported them (read at most
        once a second per user, so a burst of handshakes costs one read);
        this process's is exact, and is taken in the same step as the check.
        """
        now = time.monotonic()
        cached = self._remote.get(user_id)
        if cached is not None and now - cached[1] < 1.0:
            remote = cached[0]
        else:
            try:
                remote = (await self._read(user_id)).others
            except Exception:  # the store being down must not lock everyone out
                log.warning("could not read socket counts; applying the cap to this process only")
                remote = 0
            self._remote[user_id] = (remote, now)
            if len(self._remote) > 10_000:
                self._remote.clear()
        if remote + self.open.get(user_id, 0) >= cap:
            return False
        self.open[user_id] = self.open.get(user_id, 0) + 1
        return True

    def release(self, user_id: int) -> None:
        left = self.open.get(user_id, 0) - 1
        if left > 0:
            self.open[user_id] = left
        else:
            self.open.pop(user_id, None)

    @staticmethod
    def _local(by_socket: dict[Any, str] | None) -> str | None:
        if not by_socket:
            return None
        return ONLINE if "active" in by_socket.values() else AWAY

    def update(self, sock: Any, state: str | None) -> None:
        """Record a socket's state ("active", "away", or None when it closed).

        Every change is written to the store (the socket count serves the
        per-user cap); a change of what the user is here is announced with
        the next batch.
        """
        user_id = sock.user_id
        by_socket = self.sockets.setdefault(user_id, {})
        before = self._local(by_socket)
        if state is None:
            by_socket.pop(sock, None)
            if not by_socket:
                del self.sockets[user_id]
                self.written.pop(user_id, None)
        else:
            by_socket[sock] = state
            self.names[user_id] = sock.user.username
        after = self._local(self.sockets.get(user_id))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew_forever())
        self._dirty[user_id] = (after, self.open.get(user_id, 0))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        if before != after:
            self._changed.setdefault(user_id, time.monotonic())
            if self._announcing is None or self._announcing.done():
                self._announcing = asyncio.create_task(self._announce_forever())

    def closed(self, sock: Any) -> None:
        """The socket is gone: its state, and what it watched."""
        self.update(sock, None)
        self.watch(sock, frozenset())

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of a burst of changes gather
        while self._dirty:
            batch, self._dirty = self._dirty, {}
            try:
                await self._write(batch)
            except Exception:
                log.warning("could not record presence for %s user(s)", len(batch))

    # --- announcing -------------------------------------------------------------

    async def _announce_forever(self) -> None:
        while self._changed:
            await asyncio.sleep(settings.CHAT_PRESENCE_ANNOUNCE_SECONDS)
            try:
                await self.announce()
            except Exception:
                if not self._failing:  # once per outage, not once a second
                    log.warning("could not announce presence changes; retrying every second")
                self._failing = True
            else:
                self._failing = False

    async def announce(self, now: float | None = None) -> None:
        """Tell every process the new states of the users that changed here, in one message.

        A user whose state across all processes is what was last announced is
        left out; one who went offline waits out the grace period first.
        """
        now = time.monotonic() if now is None else now
        if self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)
        changed, self._changed = self._changed, {}
        # Online here is online everywhere (the highest state), at the version
        # of this process's own write: only the others need the store.
        states: dict[int, tuple[str, int]] = {}
        for user_id in changed:
            if self._local(self.sockets.get(user_id)) == ONLINE and user_id in self.written:
                states[user_id] = (ONLINE, self.written[user_id])
        try:
            found = await self._read_many(u for u in changed if u not in states)
        except Exception:
            self._changed = {**changed, **self._changed}
            raise
        for user_id, summary in found.items():
            states[user_id] = (summary.state, summary.version)
        changes = []
        for user_id, (state, version) in states.items():
            grace = settings.CHAT_PRESENCE_OFFLINE_GRACE_SECONDS
            if state == OFFLINE and now - changed[user_id] < grace:
                self._changed.setdefault(user_id, changed[user_id])  # not yet
                continue
            known = self.known.get(user_id)
            if known is not None and known[0] == state:
                continue
            if known is None and state == OFFLINE:
                continue  # never seen online here: nothing to take back
            name = self.names.get(user_id)
            if name is not None:
                changes.append(PresenceChange(user_id, name, state, version))
            if state == OFFLINE and user_id not in self.sockets:
                self.names.pop(user_id, None)
                self.written.pop(user_id, None)
        if changes:
            try:
                await apublish_presence(changes)
            except Exception:
                metrics.CHANNEL_LAYER_FAILURES.labels("presence").inc()
                # Not told: try again with the next batch.
                for change in changes:
                    self._changed.setdefault(change.user_id, changed[change.user_id])
                raise

    async def changes_received(self, changes: list[PresenceChange]) -> None:
        """Apply an announcement from any process and tell the sockets watching those users."""
        now = time.monotonic()
        frames: dict[Watcher, dict[str, str]] = {}
        for change in changes:
            known = self.known.get(change.user_id)
            if known is not None and (change.version <= known[1] or change.state == known[0]):
                if change.version > known[1]:
                    self.known[change.user_id] = (change.state, change.version, now)
                continue
            self.known[change.user_id] = (change.state, change.version, now)
            for sock in self.watchers.get(change.user_id, ()):
                frames.setdefault(sock, {})[change.username] = change.state
        for sock, users in frames.items():
            await self._send(sock, users)
        if len(self.known) > 1000 and now - self._pruned > FORGET_OFFLINE_SECONDS:
            self._pruned = now
            self.known = {
                u: k
                for u, k in self.known.items()
                if k[0] != OFFLINE or now - k[2] < FORGET_OFFLINE_SECONDS
            }

    async def _send(self, sock: Watcher, users: dict[str, str]) -> None:
        text = encode({"type": "presence", "users": users, "seq": None})
        try:
            await sock.deliver_now(text)
        except Exception:
            log.exception("presence delivery to a socket failed")
            return
        metrics.PRESENCE_FRAMES.inc()

    # --- watching ---------------------------------------------------------------

    def watch(
        self, sock: Watcher, user_ids: frozenset[int], names: dict[int, str] | None = None
    ) -> None:
        """From now on `sock` hears about these users (and no others)."""
        if names:
            self._names_watched.update(names)
        for user_id in self.watching.pop(sock, frozenset()) - user_ids:
            watchers = self.watchers.get(user_id)
            if watchers is not None:
                watchers.discard(sock)
                if not watchers:
                    del self.watchers[user_id]
                    self._names_watched.pop(user_id, None)
        if user_ids:
            self.watching[sock] = user_ids
            for user_id in user_ids:
                self.watchers.setdefault(user_id, set()).add(sock)

    async def current(self, users: dict[int, str]) -> dict[str, str]:
        """username -> state, for these users (id -> username), as their followers see it.

        That is what was last announced, where anything was: someone in the
        middle of a reconnect is still shown as announced (their reconnect
        will not be announced again). The store answers for the others, in
        one round trip.
        """
        result = {}
        unknown = {}
        for user_id, name in users.items():
            known = self.known.get(user_id)
            if known is None:
                unknown[user_id] = name
            else:
                result[name] = known[0]
        if unknown:
            for user_id, summary in (await self._read_many(unknown)).items():
                result[unknown[user_id]] = summary.state
        return result

    async def reconcile(self, turn: int | None = None) -> None:
        """Correct what followers here were told, from the store, for users they follow.

        A process that dies announces nothing: its users' entries fade out
        of the store, but their followers elsewhere were last told they were
        online. Every process checks the users its sockets follow against
        the store at each heartbeat, and tells its own followers of a state
        that differed at two heartbeats in a row (a reconnect in between is
        not a change). With `turn`, only the users of that heartbeat slice.
        """
        shown = [
            u
            for u in self.watchers
            if _in_turn(u, turn) and self.known.get(u, (OFFLINE,))[0] != OFFLINE
        ]
        found = await self._read_many(shown) if shown else {}
        if turn is None:
            suspect, self._suspect = self._suspect, {}
        else:
            suspect = {u: s for u, s in self._suspect.items() if _in_turn(u, turn)}
            for user_id in suspect:
                del self._suspect[user_id]
        changes = []
        for user_id, summary in found.items():
            state, version = summary.state, summary.version
            known = self.known.get(user_id)
            if known is None or state == known[0] or user_id in self._changed:
                continue
            if suspect.get(user_id) != state:
                self._suspect[user_id] = state  # again at the next heartbeat, then corrected
                continue
            name = self.names.get(user_id) or self._names_watched.get(user_id)
            if name is not None:
                changes.append(PresenceChange(user_id, name, state, max(version, known[1] + 1)))
        if changes:
            await self.changes_received(changes)

    async def _renew_forever(self) -> None:
        """Renew this process's entries before they expire, and reconcile, a slice at a time.

        Each user is renewed every HEARTBEAT_SECONDS, in the slice their id
        falls in. All at once, each heartbeat was one burst of work for
        every user here (at 5,000 people 5,000 entries written and as many
        read back, Redis running nothing else during each script call),
        with sends and fan-outs waiting behind it.
        """
        turn = 0
        while self.sockets:
            await asyncio.sleep(HEARTBEAT_SECONDS / HEARTBEAT_SLICES)
            turn = (turn + 1) % HEARTBEAT_SLICES
            try:
                await self.renew(turn)
            except Exception:
                log.warning("could not renew presence entries")

    async def renew(self, turn: int) -> None:
        """One heartbeat slice: renew the entries of its users here, and reconcile theirs."""
        current = {
            u: (self._local(s), self.open.get(u, 0))
            for u, s in self.sockets.items()
            if _in_turn(u, turn)
        }
        # Names are kept for users with sockets here or a change to announce.
        for user_id in [u for u in self.names if _in_turn(u, turn) and u not in self.sockets]:
            if user_id not in self._changed:
                del self.names[user_id]
        if current:
            await self._write(current)
        await self.reconcile(turn)


def _in_turn(user_id: int, turn: int | None) -> bool:
    """Whether the user's presence is renewed in heartbeat slice `turn` (None: every slice)."""
    return turn is None or user_id % HEARTBEAT_SLICES == turn


local_presence = per_event_loop(LocalPresence)
