"""What other apps may add to the chat's write path, without the chat depending on them.

`on_messages_stored(fn, read=...)` registers `fn(stored, read)`: it runs
inside the transaction that stores a batch of new messages, after their rows
(and their mentions) are written, so what it writes commits or rolls back
with them. `read(room_ids)`, if given, is the one query it needs about the
batch's rooms (a `chat.reusable.Read`, or None when it needs none); the send
path runs it with its own look-ups in one round trip, before the inserts, and
hands it to `fn` with its rows. It must cost a constant number of queries for
the batch: the send path's query counts are asserted
(tests/chat/test_query_counts.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

from .models import Message, Room
from .reusable import Read, read_together


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message just stored: its row (with its id), its room, the ids of the people it mentions."""

    message: Message
    room: Room
    mentioned: tuple[int, ...]


MessagesStored = Callable[[list[StoredMessage], Read | None], None]
RoomsRead = Callable[[set[int]], Read | None]

_on_stored: list[tuple[MessagesStored, RoomsRead | None]] = []


def on_messages_stored(fn: MessagesStored, *, read: RoomsRead | None = None) -> MessagesStored:
    """Register `fn` for every batch of new messages (once: registering it again is a no-op)."""
    if all(fn is not registered for registered, _ in _on_stored):
        _on_stored.append((fn, read))
    return fn


Prepared = list[tuple[MessagesStored, Read | None]]


def prepare(room_ids: set[int]) -> Prepared:
    """Each hook with the read it needs for a batch in these rooms (not run yet)."""
    return [
        (fn, read(room_ids) if read is not None and room_ids else None) for fn, read in _on_stored
    ]


def reads(prepared: Prepared) -> list[Read | None]:
    """The reads of `prepare`, to run with others (`chat.reusable.read_together`)."""
    return [read for _, read in prepared]


def messages_stored(stored: list[StoredMessage], prepared: Prepared | None = None) -> None:
    """Run the registered hooks for a batch (inside its transaction).

    `prepared` is `prepare` of the batch's rooms with its reads run; without
    it they are prepared and run here.
    """
    if not stored:
        return
    if prepared is None:
        prepared = prepare({s.message.room_id for s in stored})
        read_together(reads(prepared))
    for fn, read in prepared:
        fn(stored, read)
