"""A server process closing down (SIGTERM): every socket told to reconnect, nothing lost.

The sockets are closed first, with 1012 (service restart): clients stop
sending once they read it, reconnect with a jittered delay (to another
process, or to this one's successor) and resume with `?seq=`. Frames that
were already on their way are still stored as they arrive; their answer
cannot reach the closed socket, so the client sends them again with the
same nonce and gets the stored message back: each message exactly once.
The process exits once every send it received is stored and its sockets
are gone, or when the time is up.
"""

import asyncio
import logging

from teamchat import drain

from .fanout import local_fanout
from .writer import message_writer, read_marker_writer

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02


async def drain_sockets(seconds: float = 20.0) -> None:
    """Close this process's sockets with 1012, then wait for every received send to be stored."""
    drain.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    fanout = local_fanout()
    sockets = list(fanout.rooms_of)
    log.info("draining: closing %d sockets with 1012", len(sockets))
    results = await asyncio.gather(
        *(sock.close_for_restart() for sock in sockets),  # type: ignore[attr-defined]
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            log.warning("draining: a socket failed to close: %r", result)
    writer, markers = message_writer(), read_marker_writer()

    def settled() -> bool:
        return (
            not fanout.rooms_of
            and not writer.busy()
            and not markers.busy()
            and not any(getattr(s, "sends_in_flight", 0) for s in sockets)
        )

    # Polled: the sockets, the writers and the sends have no common event to wait on.
    while not settled() and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)
    if settled():
        log.info("draining: done")
    else:
        log.warning(
            "draining: time is up with %d sockets open and sends %s",
            len(fanout.rooms_of),
            "still being stored" if writer.busy() else "stored",
        )
