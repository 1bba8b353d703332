"""The chat socket: parse a frame, call one service, send the result."""

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts import session_store
from accounts.models import User
from accounts.selectors import login_session_is_valid, login_verified_at_handshake
from accounts.session_store import LOGIN_ID_KEY, TOKEN_LOGIN_PREFIX
from teamchat import drain, metrics

from .. import access, events, selectors, services
from ..errors import ChatError, Code, NoSuchRoom, RateLimited, Unavailable
from ..eventlog import Item, Op, apublish
from ..protocol import Frame, FrameError, parse_frame, slug_is_valid
from ..ratelimit import SendRateLimiter, writes
from ..threads import services as thread_services
from . import handshake, presence
from .fanout import STATUS_LIVE, local_fanout
from .perloop import per_event_loop
from .transport import CLOSE_SERVICE_RESTART, PreparedMessage, SocketOutput, WriteBatch
from .writer import message_writer, read_marker_writer, side_sync_to_async

if TYPE_CHECKING:
    from channels.consumer import _ChannelScope

log = logging.getLogger(__name__)

CLOSE_SESSION_ENDED = 4401
CLOSE_RELOAD = 4410
CLOSE_RETRY = 4500
# A socket opened with a read-only token may only say how it is and whom it follows.
READ_ONLY_FRAMES = frozenset({"presence", "presence_sub"})
RELOAD = '{"type":"reload","reason":"too_far_behind","seq":null}'

# Per user, in this process: sends and other writes; read markers; typing
# hints; presence (a tab's state and whom it follows).
send_limiter = writes  # shared with the HTTP API and every process
read_limiter = SendRateLimiter(settings.CHAT_READ_RATE_LIMIT, settings.CHAT_READ_RATE_BURST)
typing_limiter = SendRateLimiter(settings.CHAT_TYPING_RATE_LIMIT, settings.CHAT_TYPING_RATE_BURST)
presence_limiter = SendRateLimiter(
    settings.CHAT_PRESENCE_RATE_LIMIT, settings.CHAT_PRESENCE_RATE_BURST
)
# Frames of any kind one socket may send a second (and at once): far above what
# a page sends (its buckets above add up to about 40 a second). Past it the
# socket is not read for a while: a flooding client's frames wait in its own
# TCP buffers, and are still each answered, as slowly as this allows.
FRAME_RATE = settings.CHAT_SOCKET_FRAME_RATE
FRAME_BURST = settings.CHAT_SOCKET_FRAME_BURST
# Sends a socket may have queued for storage before it stops reading frames.
MAX_SENDS_IN_FLIGHT = 32
# Events read from the log per query while a reconnecting socket catches up.
REPLAY_PAGE = 500
# The most events one catch-up sends, and the furthest back in the log it
# starts; beyond either the client is told to reload.
REPLAY_MAX_EVENTS = 10_000
REPLAY_MAX_LOG_DISTANCE = 1_000_000
# Catch-ups running at once: per user (its tabs), and per process past their first page.
REPLAYS_PER_USER = 2
REPLAYS_PER_PROCESS = 8


class _ReplayLimits:
    def __init__(self) -> None:
        # user id -> (their semaphore, how many catch-ups hold or wait for it)
        self.per_user: dict[int, tuple[asyncio.Semaphore, list[int]]] = {}
        self.process = asyncio.Semaphore(REPLAYS_PER_PROCESS)

    def of(self, user_id: int) -> asyncio.Semaphore:
        entry = self.per_user.get(user_id)
        if entry is None:
            entry = self.per_user[user_id] = (asyncio.Semaphore(REPLAYS_PER_USER), [0])
        entry[1][0] += 1
        return entry[0]

    def done(self, user_id: int) -> None:
        entry = self.per_user.get(user_id)
        if entry is not None:
            entry[1][0] -= 1
            if not entry[1][0]:
                del self.per_user[user_id]


_replay_limits = per_event_loop(_ReplayLimits)
TYPING_EVERY_SECONDS = 3.0
_running: set[asyncio.Task[None]] = set()


def _track(task: "asyncio.Task[None]") -> None:
    _running.add(task)  # asyncio keeps only weak references to tasks
    task.add_done_callback(_running.discard)


def _shed_handshake_state(scope: Mapping[str, Any]) -> User:
    """Free what only the handshake needed, for the socket's lifetime.

    The middleware layers each keep a shallow copy of the scope, so the
    shared header list, cookie dict and decoded session are emptied in place
    rather than dropped from one copy, and the user behind the scope's lazy
    object becomes one that holds only what the socket uses. Nothing reads the
    rest after the handshake; Channels' session wrapper saves sessions only
    on HTTP responses.
    """
    headers = scope.get("headers")
    if isinstance(headers, list):
        headers.clear()
    cookies = scope.get("cookies")
    if isinstance(cookies, dict):
        cookies.clear()
    session = scope.get("session")
    if session is not None:
        session._session_cache = {}
    user = scope["user"]
    # Only these fields are loaded; the socket never reads another one.
    # from_db takes the values in the model's field order, whatever order the names are in.
    loaded = {"id": user.pk, "username": user.username, "is_active": True}
    names = [f.attname for f in User._meta.concrete_fields if f.attname in loaded]
    slim = User.from_db(None, names, [loaded[name] for name in names])
    if hasattr(user, "_wrapped"):
        user._wrapped = slim
    return slim


class ChatConsumer(AsyncWebsocketConsumer):
    """One socket per browser tab, carrying every room its user belongs to.

    Events reach it from the process's fan-out (chat.realtime.fanout), not through a
    channel-layer channel of its own, so it has none.
    """

    # No alias names no layer (get_channel_layer(None) is None); the stubs
    # allow only names.
    channel_layer_alias = None  # type: ignore[assignment]
    groups = ()  # type: ignore[assignment]  # none: no per-socket list either

    user_id: int
    # The public rooms this socket follows without being a member (`?watch=`).
    watched: tuple[int, ...] = ()
    sends_in_flight = 0
    admitted = False
    counted = False
    finished = False
    # Its login was found gone; the close is on its way.
    session_over = False
    # Opened with a read-only token: frames that change anything are refused.
    read_only = False
    replay_task: "asyncio.Task[None] | None" = None
    again_after: int | None = None
    # When this socket last forwarded typing, by room id (made on first use).
    typing_sent: dict[int, float] | None = None
    # The frame budget (tokens, when counted) once a frame has come; reading
    # is held until `held_until` (monotonic seconds).
    frame_budget: tuple[float, float] | None = None
    held_until = 0.0

    async def __call__(
        self, scope: "_ChannelScope", receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Read the socket's frames one after another, in the socket's own task.

        Channels' loop (`await_many_dispatch`) makes a new task and an
        `asyncio.wait` for every frame, so that it can wait on a channel-layer
        channel as well; this consumer has none. Each of those was a few dozen
        objects that outlived the frame, up to the socket's next one: with
        thousands of sockets they filled the youngest collector generation,
        whose collections then paused the server for 100 ms and more.
        """
        self.scope = scope
        self.channel_layer = None  # type: ignore[assignment]  # none, as channel_layer_alias says
        self.base_send = send
        try:
            while True:
                await self.dispatch(cast(dict, await receive()))
        except StopConsumer:
            pass

    async def dispatch(self, message: dict) -> None:
        # Channels' dispatch first closes stale database connections through the
        # database thread, a thread hop per frame; the database work here runs in
        # database_sync_to_async, which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        login_id: str | None
        token_id = self.scope.get("token_id")
        if token_id is not None:
            # Opened with a bearer token (integrations.auth): the socket lives
            # as long as the token does.
            login_id = f"{TOKEN_LOGIN_PREFIX}{token_id}"
            self.read_only = self.scope.get("token_scope") == "read"
        else:
            session = self.scope.get("session")
            login_id = session.get(LOGIN_ID_KEY) if session is not None else None
        if drain.draining():
            # Closing down: the client tries again, and reaches a process that stays.
            metrics.HANDSHAKES.labels("refused_draining").inc()
            await self.close()
            return
        if user is None or not user.is_authenticated or not user.is_active or not login_id:
            metrics.HANDSHAKES.labels("refused_unauthenticated").inc()
            await self.close()  # before accept: the handshake gets HTTP 403
            return
        ahead = session_store.preloaded.get()
        blocked = ahead.blocked if ahead is not None and ahead.user is not None else None
        verified = (
            login_verified_at_handshake(ahead, user.pk)
            if ahead is not None and token_id is None
            else None
        )
        # The socket's task keeps its context for life, and so do the copies
        # that tasks and loop callbacks made during the handshake took: let go
        # of the session data and the full user read ahead for the handshake.
        session_store.preloaded.set(None)
        if ahead is not None:
            ahead.forget()
        if blocked:  # two-factor to set up, an address to verify: as for pages
            metrics.HANDSHAKES.labels(f"refused_{blocked}").inc()
            await self.close()
            return
        self.user_id = user.pk
        self.login_id = login_id
        if verified is not None:
            local_fanout().login_verified((login_id, user.pk), verified)
        if not await presence.local_presence().admit(user.pk, settings.CHAT_MAX_SOCKETS_PER_USER):
            log.warning("user %s is at the cap of open sockets; handshake refused", user.pk)
            metrics.HANDSHAKES.labels("refused_socket_cap").inc()
            await self.close()  # before accept: HTTP 403
            return
        self.admitted = True
        try:
            await self._open(cast(User, user))  # the scope's lazy User, signed in
        except BaseException:
            self._finish()  # the slot, the registration: whatever was taken
            raise

    async def _open(self, user: User) -> None:
        resume_from, watch = _resume_params(self.scope.get("query_string", b""))
        # Everything delivered before the socket is accepted (and, when
        # resuming, replayed) is held, then sent in order.
        self.replaying = True
        # The highest seq sent to this socket, or that its catch-up read past:
        # a later catch-up starts after it, so nothing is sent twice.
        self.sent_upto = 0
        # Where the socket's stream begins: it is sent every event of its
        # rooms after this seq (replayed, then live), none before.
        self.stream_from = 0
        # Seqs of messages this socket was sent as a retry's answer before
        # their event reached it: the event, when it comes, is not sent again.
        self.answered: set[int] = set()
        self.again_after = None
        self.held: list[tuple[str, PreparedMessage | None, int | None]] = []
        self.output = SocketOutput(self.base_send)
        # Whatever ends the socket (a close, a dropped connection, daphne giving
        # up on a handler still busy) gives back what it holds, once.
        self.output.when_closed(self._finish)
        # Registered before the rooms are read: a membership change committed
        # after the read is then applied to this socket, whenever it lands.
        fanout = local_fanout()
        await fanout.register(self)
        # Live from the first event the fan-out hands out after this one.
        self.stream_from = resume_from if resume_from is not None else fanout.last_seq
        rooms = await handshake.rooms_of(user.pk)
        fanout.remember_rooms(rooms)
        self.watched = ()
        if watch is not None and not any(slug == watch for _, slug, _, _ in rooms):
            self.watched = await database_sync_to_async(_watched_room)(user, watch)
        fanout.set_rooms(self, [room[0] for room in rooms] + list(self.watched))
        await self.accept()
        metrics.HANDSHAKES.labels("accepted").inc()
        metrics.OPEN_SOCKETS.inc()
        self.counted = True
        self.output.start()
        self.user = _shed_handshake_state(self.scope)
        presence.local_presence().update(self, "active")
        if resume_from is not None:
            self._start_replay(resume_from)
        else:
            await self._go_live()

    def _start_replay(self, after: int, notice: str | None = None) -> None:
        self.replay_task = asyncio.create_task(self._replay(after, notice))
        _track(self.replay_task)

    def catch_up_soon(self, after: int, notice: bool = True) -> None:
        """Replay what the live path may have dropped after `after`; `notice`: say so first."""
        if self.replaying:
            # The replay in progress may have read the log before the missing
            # events were there: another one follows it, before going live.
            if notice:
                self.held.append((STATUS_LIVE, None, None))
            self.again_after = min(after, self.again_after or after)
            return
        self.replaying = True
        after = max(after, self.sent_upto)
        self._start_replay(after, notice=STATUS_LIVE if notice else None)

    async def disconnect(self, code: int) -> None:
        self._finish()

    def _finish(self) -> None:
        """Give back everything the socket holds, once, whatever ended it.

        Called when the transport closes, from disconnect(), and when the
        handshake fails after admission: the per-user socket slot, the
        fan-out registration and presence, and a catch-up still running.
        """
        if self.finished:
            return
        self.finished = True
        if self.replay_task is not None:
            self.replay_task.cancel()
        if self.admitted:
            presence.local_presence().release(self.user_id)
        fanout = local_fanout()
        if self in fanout.rooms_of:
            presence.local_presence().closed(self)
        if self.counted:
            metrics.OPEN_SOCKETS.dec()
            if self.output.closed_for_slowness:
                metrics.SLOW_CLIENT_CLOSES.inc()
        fanout.unregister(self)

    async def _replay(self, after: int, notice: str | None = None) -> None:
        """Send every logged event after `after` from the database, then go live.

        Live events that arrive meanwhile are held and sent afterwards, minus
        those the replay already carried, so the socket sees each event once,
        in seq order. A socket too far behind (more than `REPLAY_MAX_EVENTS`
        to send) is told to reload instead. A catch-up stops when its socket
        closes; each user has at most `REPLAYS_PER_USER` running at a time in
        a process, and the process at most `REPLAYS_PER_PROCESS` past their
        first page.
        """
        limits = _replay_limits()
        per_user = limits.of(self.user_id)
        request = events.ReplayRequest(self.user_id, after, self.watched)
        sent = 0
        try:
            async with per_user:
                if notice is not None:
                    await self.output.write(notice, None)
                metrics.REPLAYS.inc()
                if local_fanout().last_seq - after > REPLAY_MAX_LOG_DISTANCE:
                    await self._too_far_behind()
                    return
                page = await handshake.first_replay_page(request)
                while True:
                    if page.pruned:
                        await self._too_far_behind()
                        return
                    for seq, text in page.texts:
                        if not self._was_answered(seq):
                            await self.output.write(text, None)
                    sent += len(page.texts)
                    metrics.REPLAYED_EVENTS.inc(len(page.texts))
                    self.sent_upto = max(self.sent_upto, page.last_seq)
                    if page.complete:
                        break
                    if sent >= REPLAY_MAX_EVENTS:
                        await self._too_far_behind()
                        return
                    request = events.ReplayRequest(self.user_id, page.last_seq, self.watched)
                    async with limits.process:
                        [page] = await database_sync_to_async(events.replay_pages)(
                            [request], REPLAY_PAGE
                        )
                assert page.resumed is not None
                await self.output.write(page.resumed, None)
        except asyncio.CancelledError:
            return  # the socket closed: nobody to catch up
        except Exception:
            log.exception("replay for user %s failed", self.user_id)
            await self.close(code=CLOSE_RETRY)
            return
        finally:
            limits.done(self.user_id)
            metrics.REPLAY_SIZE.observe(sent)
        await self._go_live()

    async def _too_far_behind(self) -> None:
        """More to catch up than a socket is sent: the client reloads (and reads the history)."""
        metrics.REPLAY_RELOADS.inc()
        await self.output.write(RELOAD, None)
        await self.close(code=CLOSE_RELOAD)

    async def _go_live(self) -> None:
        """Send what was held (minus what a replay carried), then deliver as events come."""
        if self.again_after is not None and not self.finished:
            after, self.again_after = max(self.again_after, self.sent_upto), None
            self._start_replay(after)
            return
        while self.held:
            held, self.held = self.held, []
            for text, prepared, seq in held:
                if seq is None:
                    await self.output.write(text, prepared)
                elif seq > self.sent_upto:
                    self.sent_upto = seq
                    if not self._was_answered(seq):
                        await self.output.write(text, prepared)
        self.replaying = False

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.finished:
            return  # frames still queued from a socket that is gone: nobody to answer
        self._count_frame()
        if text_data is None:
            metrics.FRAMES_IN.labels("binary").inc()
            await self._send_error(Code.BINARY_NOT_SUPPORTED, "Binary frames are not supported.")
            return
        try:
            frame = parse_frame(text_data)
        except FrameError as exc:
            metrics.FRAMES_IN.labels("refused").inc()
            await self._send_error(exc.code, exc.detail, exc.nonce)
            return
        metrics.FRAMES_IN.labels(frame.type).inc()
        if self.read_only and frame.type not in READ_ONLY_FRAMES:
            await self._send_error(Code.FORBIDDEN, "This token may only read.", frame.nonce)
            return
        if frame.type == "send":
            await self._receive_send(frame)
        elif frame.type == "typing":
            await self._receive_typing(frame)
        elif frame.type == "read":
            await self._receive_read(frame)
        elif frame.type == "read_thread":
            await self._receive_read_thread(frame)
        elif frame.type == "presence":
            if not presence_limiter.allow(self.user_id):
                await self._rate_limited(frame)
                return
            presence.local_presence().update(self, frame.state)
        elif frame.type == "presence_sub":
            await self._receive_presence_sub(frame)
        elif frame.type == "command":
            await self._receive_command(frame)
        else:
            if not await send_limiter.aallow(self.user_id):
                await self._rate_limited(frame)
                return
            try:
                await database_sync_to_async(_apply)(self.user, frame)
            except ChatError as exc:
                await self._refuse(exc, frame.nonce)
            except Exception:
                log.exception("%s from user %s failed", frame.type, self.user_id)
                await self._refuse(Unavailable(), frame.nonce)

    def _count_frame(self) -> None:
        """Take one frame from the socket's budget; past it, stop reading the socket a while."""
        now = time.monotonic()
        budget = self.frame_budget
        if budget is None:
            tokens = float(FRAME_BURST)
        else:
            tokens = min(float(FRAME_BURST), budget[0] + (now - budget[1]) * FRAME_RATE)
        # Frames already read when reading stops still come: owed, up to one burst.
        tokens = max(tokens - 1.0, -float(FRAME_BURST))
        self.frame_budget = (tokens, now)
        if tokens < 0 and now >= self.held_until:
            wait = (1.0 - tokens) / FRAME_RATE
            if self.output.hold_reading(wait):
                self.held_until = now + wait
                metrics.READS_HELD.inc()

    async def _rate_limited(self, frame: Frame) -> None:
        metrics.RATE_LIMITED.labels(frame.type).inc()
        await self._refuse(RateLimited(), frame.nonce)

    async def _receive_typing(self, frame: Frame) -> None:
        """Forward a typing hint to the room's other members: no query once the room is known.

        The per-user bucket bounds what a client can ask for; the room is
        checked (chat.access) against this process's memory of the socket's
        rooms: a member is a socket that carries the room, not just watches it.
        Rooms of more than `CHAT_TYPING_MAX_MEMBERS` members get no hints (the
        process counts a room's members at most once a minute).
        """
        if not typing_limiter.allow(self.user_id):
            await self._rate_limited(frame)
            return
        slug = frame.room or ""
        fanout = local_fanout()
        room = fanout.rooms_by_slug.get(slug)
        if room is None:  # a room no socket here has carried yet
            try:
                found = await database_sync_to_async(_room_ref)(self.user, slug)
            except ChatError as exc:
                await self._refuse(exc, frame.nonce)
                return
            fanout.remember_rooms([found])
            room = fanout.rooms_by_slug[slug]
        is_member = room.id in fanout.rooms_of.get(self, ()) and room.id not in self.watched
        try:
            access.check_write(
                slug,
                public=not room.private,
                is_member=is_member,
                archived=room.id in fanout.archived,
            )
        except ChatError as exc:
            await self._refuse(exc, frame.nonce)
            return
        now = time.monotonic()
        if self.typing_sent is None:
            self.typing_sent = {}
        sent = self.typing_sent
        if now - sent.get(room.id, -TYPING_EVERY_SECONDS) < TYPING_EVERY_SECONDS:
            return  # throttled: typing is a hint, never stored
        sent[room.id] = now
        try:
            size = await fanout.room_size(room.id)
        except Exception:
            log.warning("could not count a room's members; a typing hint was not forwarded")
            return  # a hint, not worth an error
        if size > settings.CHAT_TYPING_MAX_MEMBERS:
            return  # in a room this big, who is typing is noise (and costs every member a frame)
        event = {"type": "typing", "room": slug, "user": self.user.username, "seq": None}
        item = Item(events.encode(event), (room.id,), op=Op.SKIP_USER, arg=self.user_id)
        try:
            await apublish([item])
        except Exception:
            # A hint, not worth an error: the live path's state is told by `status`.
            metrics.CHANNEL_LAYER_FAILURES.labels("typing").inc()
            log.warning("could not forward a typing hint: the channel layer failed")

    async def _receive_read(self, frame: Frame) -> None:
        """Queue a read-marker move; only a refusal is answered (a move reaches every tab)."""
        if not read_limiter.allow(self.user_id):
            await self._rate_limited(frame)
            return
        request = services.ReadRequest(self.user, frame.room or "", frame.id or 0)
        future = read_marker_writer().submit(request)
        future.add_done_callback(lambda done: self._read_done(done, frame.nonce))

    async def _receive_read_thread(self, frame: Frame) -> None:
        """Move a thread's read marker; a move reaches every tab, the state as it is this one."""
        if not read_limiter.allow(self.user_id):
            await self._rate_limited(frame)
            return
        assert frame.root is not None and frame.id is not None  # parse_frame checked them
        try:
            result = await side_sync_to_async(thread_services.thread_read_set)(
                user=self.user, root_id=frame.root, message_id=frame.id
            )
        except ChatError as exc:
            await self._refuse(exc, frame.nonce)
            return
        except Exception:
            log.exception("read_thread from user %s failed", self.user_id)
            await self._refuse(Unavailable(), frame.nonce)
            return
        if not result.logged:
            event = events.stored_event("thread_read", result.data, 0)
            await self.deliver_now(events.encode({**event, "seq": None}))

    def _read_done(self, future: "asyncio.Future[dict | None]", nonce: str | None) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            return
        if not isinstance(exc, ChatError):
            log.error("read marker of user %s failed: %r", self.user_id, exc)
            exc = Unavailable()
        _track(asyncio.ensure_future(self._refuse(exc, nonce)))

    async def _receive_presence_sub(self, frame: Frame) -> None:
        """Follow the presence of these people (replacing the list); answered with their states."""
        if not presence_limiter.allow(self.user_id):
            await self._rate_limited(frame)
            return
        local = presence.local_presence()
        names = frozenset(frame.users or ())
        users = await handshake.users_named(names) if names else {}
        local.watch(self, frozenset(users), users)
        try:
            states = await local.current(users) if users else {}
        except Exception:
            log.warning("could not read presence for a subscription")
            states = {}
        await self.deliver_now(events.encode({"type": "presence", "users": states, "seq": None}))

    async def _receive_send(self, frame: Frame) -> None:
        if not await send_limiter.aallow(self.user_id):
            await self._rate_limited(frame)
            return
        assert frame.room is not None and frame.body is not None  # parse_frame checked them
        request = services.SendRequest(
            self.user,
            frame.room,
            frame.body,
            frame.nonce,
            frame.attachments,
            thread=frame.thread,
            in_channel=frame.in_channel,
        )
        # The next frame is read while this one is being stored, so a client
        # with several sends in flight gets them into one commit; results come
        # back as the writer finishes each batch, in order.
        future = message_writer().submit(request)
        self.sends_in_flight += 1
        _track(asyncio.create_task(self._answer_send(future, frame.nonce, self.sent_upto)))
        if self.sends_in_flight > MAX_SENDS_IN_FLIGHT:
            await asyncio.wait({future})  # stored in order: all earlier ones are done too

    async def _answer_send(
        self, future: "asyncio.Future[services.SendResult]", nonce: str | None, asked_at: int
    ) -> None:
        """Refuse a send that failed; answer a retried one (a new message is its own answer).

        `asked_at` is how far the socket's stream had gone when the send
        arrived.
        """
        try:
            result = await future
        except ChatError as exc:
            await self._refuse(exc, nonce)
            return
        except Exception:
            log.exception("send from user %s failed", self.user_id)
            await self._refuse(Unavailable(), nonce)
            return
        finally:
            self.sends_in_flight -= 1
        if not result.created:
            # A retried nonce: only this socket hears about it, nothing is re-broadcast.
            seq, text = await database_sync_to_async(events.message_retry_answer)(result.message)
            if seq is not None and max(asked_at, self.stream_from) < seq <= self.sent_upto:
                # Stored by the first try, which a server still had in hand
                # (say, one draining for a restart), and its event reached
                # this socket since the retry arrived (the socket is sent
                # every event after where its stream began): that was the
                # answer.
                return
            if seq is not None and seq > max(self.sent_upto, self.stream_from):
                # The event may still come (live, held, or in a catch-up):
                # the answer stands for it.
                self.answered = {s for s in self.answered if s > self.sent_upto}
                self.answered.add(seq)
            await self.deliver_now(text)

    def _was_answered(self, seq: int) -> bool:
        """Whether the event `seq` reached this socket already, as a retry's answer (once)."""
        if self.answered and seq in self.answered:
            self.answered.discard(seq)
            return True
        return False

    async def _receive_command(self, frame: Frame) -> None:
        """Run a slash command; answered with `command_result` (or an error) to this socket."""
        if not await send_limiter.aallow(self.user_id):
            await self._rate_limited(frame)
            return
        from integrations.commands import command_run

        try:
            result = await database_sync_to_async(command_run)(
                user=self.user,
                room=frame.room or "",
                text=frame.text or "",
                thread=frame.thread,
                nonce=frame.nonce,
            )
        except ChatError as exc:
            await self._refuse(exc, frame.nonce)
            return
        except Exception:
            log.exception("command from user %s failed", self.user_id)
            await self._refuse(Unavailable(), frame.nonce)
            return
        event = {"type": "command_result", "nonce": frame.nonce, **result.to_wire(), "seq": None}
        await self.deliver_now(events.encode(event))

    async def _refuse(self, error: ChatError, nonce: str | None = None) -> None:
        await self._send_error(error.code, error.detail, nonce)

    async def _send_error(self, code: Code, detail: str, nonce: str | None = None) -> None:
        # Straight to the socket, like events: a flood of refused frames must
        # not cost each answer a trip through Twisted's write queue.
        metrics.ERRORS.labels(code.value).inc()
        await self.deliver_now(events.encode(events.error_event(code, detail, nonce)))

    # --- called by the fan-out ---------------------------------------------

    async def deliver(
        self, text: str, prepared: PreparedMessage | None = None, seq: int | None = None
    ) -> None:
        if self.offer(text, prepared, seq):
            return
        # Not daphne's socket (offer wrote nothing and moved nothing): an ASGI send.
        if seq is not None:
            self.sent_upto = seq
        await self.output.write(text, prepared)

    def offer(
        self,
        text: str,
        prepared: PreparedMessage | None,
        seq: int | None,
        batch: WriteBatch | None = None,
    ) -> bool:
        """`deliver` without waiting, where the socket can take it so; False: await `deliver`.

        With a `batch`, the write may wait in it until the caller flushes it.
        """
        if self.replaying:
            self.held.append((text, prepared, seq))
            return True
        if seq is None:
            return self.output.write_now(text, prepared, batch)
        if seq <= self.sent_upto:
            return True
        if self.answered and self._was_answered(seq):
            self.sent_upto = seq
            return True
        if not self.output.write_now(text, prepared, batch):
            return False
        self.sent_upto = seq
        return True

    async def deliver_now(self, text: str) -> None:
        """An ephemeral event (no seq): it need not wait for a catch-up in progress."""
        await self.output.write(text, None)

    async def close_for_restart(self) -> None:
        """The server is draining: close with 1012, so the client reconnects soon and resumes."""
        if self.finished:
            return
        if not self.output.close_for_restart():
            await self.close(code=CLOSE_SERVICE_RESTART)

    def session_check_soon(self) -> None:
        _track(asyncio.create_task(self._check_session()))

    def session_ended(self) -> None:
        """The periodic re-check found the login gone (it expired): close with 4401.

        Once: two re-checks that overlap (the periodic one and another) both
        find the socket before its close is done.
        """
        if self.finished or self.session_over:
            return
        self.session_over = True
        metrics.SESSIONS_ENDED.labels("expired").inc()
        _track(asyncio.create_task(self.close(code=CLOSE_SESSION_ENDED)))

    async def _check_session(self) -> None:
        valid = await database_sync_to_async(login_session_is_valid)(
            login_id=self.login_id, user_id=self.user_id
        )
        if not valid and not self.finished:
            # Told: a sign-out, a password change, a deactivation, a revoked token.
            metrics.SESSIONS_ENDED.labels("ended").inc()
            await self.close(code=CLOSE_SESSION_ENDED)


def _resume_params(query_string: bytes) -> tuple[int | None, str | None]:
    """`?seq=<n>&watch=<slug>` from the socket URL; a malformed seq or slug is ignored."""
    query = parse_qs(query_string.decode("latin-1"))
    seq = query.get("seq", [""])[0]
    watch = query.get("watch", [""])[0]
    resume_from = int(seq) if seq.isascii() and seq.isdigit() and len(seq) <= 18 else None
    return resume_from, watch if slug_is_valid(watch) else None


def _watched_room(user: User, slug: str) -> tuple[int, ...]:
    """The public room `slug` if the user may read it without being a member, as a 1-tuple."""
    try:
        room, membership = selectors.room_and_membership(user, slug)
    except NoSuchRoom:
        return ()
    return (room.id,) if membership is None else ()


def _room_ref(user: User, slug: str) -> tuple[int, str, bool, bool]:
    """(id, slug, private, archived) of a room the user may read, else NoSuchRoom."""
    room = selectors.room_for_reader(user, slug)
    return room.id, room.slug, not access.is_public(room), room.is_archived


def _apply(user: User, frame: Frame) -> None:
    """Run the service a frame asks for; its result reaches sockets as events."""
    # parse_frame has checked that each type's fields are there.
    assert frame.id is not None
    if frame.type == "edit":
        assert frame.body is not None
        services.message_edit(actor=user, message_id=frame.id, body=frame.body)
    elif frame.type == "delete":
        services.message_delete(actor=user, message_id=frame.id)
    elif frame.type == "react":
        assert frame.emoji is not None
        services.reaction_toggle(actor=user, message_id=frame.id, emoji=frame.emoji)
