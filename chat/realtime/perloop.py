import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class per_event_loop(Generic[T]):  # noqa: N801  (used like the function it was)
    """A getter for one `factory()` object per running event loop (per server process)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        instance = self._instances.get(loop)
        if instance is None:
            instance = self._instances[loop] = self._factory()
        return instance

    def existing(self) -> list[T]:
        """The objects made so far, for every loop still alive (from outside any loop)."""
        return list(self._instances.values())
