"""What other apps may add to the chat's write path, without the chat depending on them.

`on_messages_stored(fn)` registers `fn(stored, read)`: it runs inside the
transaction that stores a batch of new messages, after their rows (and their
mentions) are written, so what it writes commits or rolls back with them.
It must cost a constant number of queries for the batch: the send path's
query counts are asserted (tests/chat/test_query_counts.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

from .eventlog import Read
from .models import Message, Room


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message just stored: its row (with its id), its room, the ids of the people it mentions."""

    message: Message
    room: Room
    mentioned: tuple[int, ...]


# fn(stored, read): `read` is what the hook's `first_read` asked, answered (None without one).
MessagesStored = Callable[[list[StoredMessage], Read | None], None]
# first_read(room ids) -> a read to answer as soon as the ordering lock is held, or None.
FirstRead = Callable[[set[int]], Read | None]


@dataclass(frozen=True, slots=True)
class _Registered:
    stored: MessagesStored
    first_read: FirstRead | None


_on_stored: list[_Registered] = []


def on_messages_stored(fn: MessagesStored, *, first_read: FirstRead | None = None) -> None:
    """Register `fn` for every batch of new messages (once: registering it again is a no-op).

    A hook that must read before it writes gives `first_read`: its query then
    goes to the database with the ordering lock, in the same round trip,
    instead of costing a round trip of its own inside the lock.
    """
    if all(r.stored is not fn for r in _on_stored):
        _on_stored.append(_Registered(fn, first_read))


def first_reads(room_ids: set[int]) -> list[Read | None]:
    """Each hook's first read for a batch in these rooms (before the ordering lock is taken)."""
    return [r.first_read(room_ids) if r.first_read is not None and room_ids else None
            for r in _on_stored]  # fmt: skip


def messages_stored(stored: list[StoredMessage], reads: list[Read | None]) -> None:
    """Run the registered hooks for a batch (inside its transaction), with their answered reads."""
    if stored:
        for registered, read in zip(_on_stored, reads, strict=True):
            registered.stored(stored, read)
