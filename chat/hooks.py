"""What other apps may add to the chat's write path, without the chat depending on them.

`on_messages_stored(fn)` registers `fn(stored)`: it runs inside the
transaction that stores a batch of new messages, after their rows (and their
mentions) are written, so what it writes commits or rolls back with them.
It must cost a constant number of queries for the batch: the send path's
query counts are asserted (tests/chat/test_query_counts.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

from .models import Message, Room


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message just stored: its row (with its id), its room, the ids of the people it mentions."""

    message: Message
    room: Room
    mentioned: tuple[int, ...]


MessagesStored = Callable[[list[StoredMessage]], None]

_on_stored: list[MessagesStored] = []


def on_messages_stored(fn: MessagesStored) -> MessagesStored:
    """Register `fn` for every batch of new messages (once: registering it again is a no-op)."""
    if fn not in _on_stored:
        _on_stored.append(fn)
    return fn


def messages_stored(stored: list[StoredMessage]) -> None:
    """Run the registered hooks for a batch (inside its transaction)."""
    if stored:
        for fn in _on_stored:
            fn(stored)
