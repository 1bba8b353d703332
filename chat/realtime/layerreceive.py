"""Receiving a process's fan-out messages from channels-redis many at a time, in one round trip.

channels-redis's `receive` takes one message per call, and each call costs
three Redis round trips in a row (a clean-up script, the blocking pop, a copy
to a backup queue; a fourth, removing the copy, in a task of its own) and a
few tasks. Each round trip waits for a turn of the event loop, and on a
loaded process a turn takes tens of milliseconds: the fan-out then could not
take more than a few messages a second off Redis, fell behind, and stayed
behind while messages piled up there.

Here one pipeline pops the oldest message, blocking while there is none
(`BZPOPMIN`), and whatever else waits behind it, up to a bound (`ZPOPMIN`):
Redis holds the second command until the first returns. A process that is
behind takes its backlog in a round trip instead of four per message.

The backup queue that channels-redis keeps, so that a receive cancelled
mid-pop loses nothing, is not kept: the fan-out's receive is cancelled only
when the process stops, and live delivery is at-most-once by design (a
socket catches up from the event log).

What this relies on in channels-redis (the channel's Redis key and
connection, the serializer, the blocking pop's timeout) is checked on use: a
layer that lacks any of it is received from through its own `receive`, with
an error logged once. pyproject.toml bounds the version.
"""

import logging
from typing import Any

from .groupsend import LayerInternals

log = logging.getLogger(__name__)

_RELIED_ON = ("prefix", "non_local_name", "consistent_hash", "connection", "deserialize")

_strays_logged = False

# Whether a layer is channels-redis's with what this relies on (else: use its receive).
supported = LayerInternals(
    _RELIED_ON,
    "the fan-out receives through its own receive (one message per three Redis round trips)",
)


async def receive_many(layer: Any, channel: str, most: int) -> list[dict[str, Any]]:
    """The messages sent to `channel`, a process-local channel: at least one, at most `most` (≥ 2).

    Waits for the first as `layer.receive(channel)` does. `channel` must be
    the only process-local channel anyone receives from in this process: a
    message for another one is dropped (with a warning).
    """
    local = layer.non_local_name(channel)
    key = layer.prefix + local
    timeout = getattr(layer, "brpop_timeout", 5)
    connection = layer.connection(layer.consistent_hash(local))
    while True:
        pipe = connection.pipeline(transaction=False)
        pipe.bzpopmin(key, timeout=timeout)
        pipe.zpopmin(key, most - 1)
        first, rest = await pipe.execute()
        # A message that arrives just as the blocking pop times out is in `rest`.
        contents = ([first[1]] if first is not None else []) + [member for member, _ in rest]
        if contents:
            break
    messages = []
    for content in contents:
        message = layer.deserialize(content)
        # The channel it is for; a group's message, a list of this process's channels in it.
        target = message.pop("__asgi_channel__", channel)
        if target == channel or (isinstance(target, list) and channel in target):
            messages.append(message)
        else:
            _stray(message)
    return messages


def _stray(message: dict[str, Any]) -> None:
    global _strays_logged
    if not _strays_logged:
        _strays_logged = True
        log.warning(
            "a %s message for another channel of this process was dropped: "
            "only the fan-out's channel may be received from",
            message.get("type"),
        )
