"""Publishing to a channels-redis group in two Redis round trips instead of four.

Every logged change is published while the global ordering lock is held
(`chat.eventlog`), so each round trip of the publish holds up every write of
every process. channels-redis's `group_send` makes four: trim the group's
expired members, read them, trim each member channel's expired messages, then
a Lua script that pushes the message to every member channel (sent as text
each time). Here the first two go in one pipeline, and the per-channel trim
moves into the script, which Redis keeps compiled (`EVALSHA`): two round trips
and the same effect, key for key and message for message, so the layer's own
`receive` reads what is written here as its own.

What this relies on in channels-redis (the group key, how a channel name maps
to its Redis key and connection, the serializer, the capacities and expiries)
is checked on use: a layer that lacks any of it is published to through its
own `group_send`, with an error logged once. pyproject.toml bounds the version.
"""

import hashlib
import logging
import time
from typing import Any

from channels.layers import BaseChannelLayer
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

# channels-redis's group_send script, with each channel's expired messages
# trimmed first (its separate pipeline did that just before, in the same order).
# KEYS: the channel keys. ARGV: a message per key, a capacity per key, then the
# expiry cutoff, the current time and the expiry in seconds.
_PUSH = """
local n = #KEYS
local cutoff = ARGV[2 * n + 1]
local current_time = ARGV[2 * n + 2]
local expiry = ARGV[2 * n + 3]
local over_capacity = 0
for i = 1, n do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, cutoff)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
        redis.call('ZADD', KEYS[i], current_time, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""
_PUSH_SHA = hashlib.sha1(_PUSH.encode("utf8")).hexdigest()  # noqa: S324  (Redis names scripts so)

_RELIED_ON = (
    "_group_key",
    "consistent_hash",
    "connection",
    "_map_channel_keys_to_connection",
    "group_expiry",
    "expiry",
    "ring_size",
)


class LayerInternals:
    """Called with a layer: whether it is channels-redis's with every attribute a fast path uses.

    A channels-redis layer that lacks any gets the error once, naming what is
    missing and `fallback` (what is done instead); other layers (the
    in-memory one) are simply not supported: there are no round trips to save.
    """

    def __init__(self, relied_on: tuple[str, ...], fallback: str) -> None:
        self._relied_on = relied_on
        self._fallback = fallback
        self.logged = False

    def __call__(self, layer: BaseChannelLayer) -> bool:
        if not type(layer).__module__.startswith("channels_redis."):
            return False
        missing = [name for name in self._relied_on if not hasattr(layer, name)]
        if missing and not self.logged:
            self.logged = True
            log.error("the channel layer lacks %s: %s", ", ".join(missing), self._fallback)
        return not missing


# Whether a layer is channels-redis's with what this relies on (else: use its group_send).
supported = LayerInternals(
    _RELIED_ON,
    "publishing through its own group_send (four Redis round trips inside the ordering lock)",
)


def _members_read(pipe: Any, layer: Any, group: str, now: float) -> Any:
    """Queue the first round trip on `pipe`: drop the group's expired members, read the rest."""
    key = layer._group_key(group)
    pipe.zremrangebyscore(key, min=0, max=int(now) - layer.group_expiry)
    pipe.zrange(key, 0, -1)
    return pipe


def _pushes(layer: Any, members: list[bytes], message: dict[str, Any], now: float) -> list[Any]:
    """(connection index, keys, script args) for each Redis the group's channels live on."""
    names = [member.decode("utf8") for member in members]
    if not names:
        return []
    by_connection, messages, capacities = layer._map_channel_keys_to_connection(names, message)
    tail = [int(now) - int(layer.expiry), now, layer.expiry]
    return [
        (index, keys, [messages[k] for k in keys] + [capacities[k] for k in keys] + tail)
        for index, keys in by_connection.items()
    ]


def _over_capacity(full: int, members: list[bytes], group: str) -> int:
    if full:
        log.warning("%s of %s channels over capacity in group %s", full, len(members), group)
    return full


async def group_send(layer: Any, group: str, message: dict[str, Any]) -> int:
    """`layer.group_send(group, message)` in two round trips, on the running event loop.

    Returns how many channels were full. A full channel drops the message, as
    channels-redis does (logged here as a warning: a process's fan-out
    channel must never fill).
    """
    now = time.time()
    pipe = layer.connection(layer.consistent_hash(group)).pipeline(transaction=False)
    _, members = await _members_read(pipe, layer, group, now).execute()
    full = 0
    for index, keys, args in _pushes(layer, members, message, now):
        target = layer.connection(index)
        try:
            full += await target.evalsha(_PUSH_SHA, len(keys), *keys, *args)
        except NoScriptError:  # a Redis that has not seen it yet (or restarted)
            full += await target.eval(_PUSH, len(keys), *keys, *args)
    return _over_capacity(full, members, group)


def group_send_sync(client: Any, layer: Any, group: str, message: dict[str, Any]) -> int:
    """`group_send` from a thread, through `client`: the layer's one Redis (`ring_size` 1).

    The threads that commit publish so while holding the ordering lock,
    without handing the publish to an event loop and waiting to get it back.
    """
    now = time.time()
    _, members = _members_read(client.pipeline(transaction=False), layer, group, now).execute()
    full = 0
    for _index, keys, args in _pushes(layer, members, message, now):
        try:
            full += client.evalsha(_PUSH_SHA, len(keys), *keys, *args)
        except NoScriptError:
            full += client.eval(_PUSH, len(keys), *keys, *args)
    return _over_capacity(full, members, group)
