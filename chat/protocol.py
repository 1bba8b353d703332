"""Parsing client frames (see docs/protocol.md). Pure functions, no I/O."""

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import ChatError, Code, NoSuchRoom
from .services import attachments_validate, nonce_validate, text_is_storable


@dataclass(frozen=True)
class Frame:
    """A parsed client frame. Only the fields its type uses are set."""

    type: str
    nonce: str | None = None
    room: str | None = None
    body: str | None = None
    id: int | None = None
    emoji: str | None = None
    state: str | None = None
    users: tuple[str, ...] | None = None
    # `command`: what was typed ("/topic Launch day").
    text: str | None = None
    # `send` only: the sender's upload ids, in order, without repeats.
    attachments: tuple[int, ...] = ()
    # `send`: the root of the thread it replies to, and whether it goes to the
    # room too; `read_thread`: the thread's root.
    thread: int | None = None
    in_channel: bool = False
    root: int | None = None


class FrameError(ChatError):
    """A frame refused before it reached a service; carries the nonce if it was valid."""

    def __init__(self, code: Code, detail: str, nonce: str | None = None) -> None:
        super().__init__(code, detail)
        self.nonce = nonce

    @classmethod
    def of(cls, error: ChatError, nonce: str | None = None) -> "FrameError":
        """`error`, as the answer to a frame with this nonce."""
        return cls(error.code, error.detail, nonce)


# The fields each frame type needs, and their JSON types.
_FIELDS: dict[str, tuple[tuple[str, type], ...]] = {
    "send": (("room", str), ("body", str)),
    "edit": (("id", int), ("body", str)),
    "delete": (("id", int),),
    "react": (("id", int), ("emoji", str)),
    "read": (("room", str), ("id", int)),
    "read_thread": (("root", int), ("id", int)),
    "typing": (("room", str),),
    "presence": (("state", str),),
    "presence_sub": (("users", list),),
    # A slash command typed in a room (integrations.commands), answered by `command_result`.
    "command": (("room", str), ("text", str)),
}
FRAME_TYPES = frozenset(_FIELDS)
PRESENCE_STATES = frozenset({"active", "away"})
_MAX_ID = 2**63 - 1
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}\Z")
# The most people one socket may follow the presence of.
MAX_PRESENCE_USERS = 1000
# What a username can be (accounts.models.UsernameValidator); anything else names nobody.
_USERNAME = re.compile(r"[A-Za-z0-9._-]{1,150}\Z")


def slug_is_valid(value: str) -> bool:
    """Whether `value` could be a room slug at all (anything else never reaches a query)."""
    return _SLUG.match(value) is not None


def _field(frame: dict[str, Any], name: str, kind: type, nonce: str | None) -> Any:
    value = frame.get(name)
    if kind is list:
        if not isinstance(value, list) or len(value) > MAX_PRESENCE_USERS:
            raise FrameError(
                Code.INVALID, f"{name} must be a list of at most {MAX_PRESENCE_USERS} names.", nonce
            )
        if not all(isinstance(item, str) for item in value):
            raise FrameError(Code.INVALID, f"{name} must be a list of usernames.", nonce)
        # A name that no account can have names nobody: left out, never looked up.
        return tuple(dict.fromkeys(item for item in value if _USERNAME.match(item)))
    if kind is int:
        # bool is an int in Python, not in the protocol.
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
            raise FrameError(Code.INVALID, f"{name} must be a non-negative whole number.", nonce)
        return value
    if not isinstance(value, str) or (name != "body" and not value):
        raise FrameError(Code.INVALID, f"{name} must be a non-empty string.", nonce)
    return value


# No frame or request body of the protocol nests deeper than a few levels.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_NESTING = re.compile(r"[\[\]{}]")


class TooDeep(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH: refused before it is parsed."""


def json_loads(text: str | bytes) -> Any:
    """json.loads, refusing (TooDeep) nesting deeper than any request of ours needs.

    Python's parser recurses: a body nested a hundred thousand deep would
    otherwise end in a RecursionError, here or in whatever walks the result.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        depth = deepest = 0
        for bracket in _JSON_NESTING.findall(_JSON_STRING.sub("", text)):
            depth += 1 if bracket in "[{" else -1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise TooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
    return json.loads(text)


def parse_frame(text: str) -> Frame:
    """Turn a text frame into a command, or raise FrameError with the protocol's code."""
    try:
        frame = json_loads(text)
    except TooDeep:
        raise FrameError(Code.INVALID, f"A frame nests at most {MAX_JSON_DEPTH} levels.") from None
    except (ValueError, RecursionError):
        raise FrameError(Code.INVALID_JSON, "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise FrameError(Code.INVALID, "A frame must be a JSON object.")

    try:
        nonce = nonce_validate(frame.get("nonce"))
    except ChatError as exc:
        raise FrameError.of(exc) from None

    kind = frame.get("type")
    if kind is None:
        raise FrameError(Code.INVALID, "The frame has no type.", nonce)
    if not isinstance(kind, str):
        raise FrameError(Code.INVALID, "type must be a string.", nonce)
    fields = _FIELDS.get(kind)
    if fields is None:
        raise FrameError(Code.UNKNOWN_TYPE, f"Unknown frame type {kind[:32]!r}.", nonce)

    values = {name: _field(frame, name, field_type, nonce) for name, field_type in fields}
    room = values.get("room")
    if room is not None and not slug_is_valid(room):
        # Names no room, and must not reach a query (NUL, broken Unicode).
        raise FrameError.of(NoSuchRoom(room), nonce)
    for name in ("emoji", "state"):
        if name in values and not text_is_storable(values[name]):
            raise FrameError(Code.INVALID, f"{name} is not valid text.", nonce)
    if kind == "presence" and values["state"] not in PRESENCE_STATES:
        raise FrameError(Code.INVALID, "state must be 'active' or 'away'.", nonce)
    if kind == "send" and frame.get("attachments") is not None:
        values["attachments"] = attachment_ids(frame["attachments"], nonce)
    if kind in ("send", "command"):
        values.update(reply_fields(frame, nonce))
    return Frame(type=kind, nonce=nonce, **values)


def attachment_ids(value: Any, nonce: str | None = None) -> tuple[int, ...]:
    """A send's `attachments`: a list of at most UPLOADS_MAX_PER_MESSAGE upload ids.

    A repeated id is one file; whose uploads they are is the service's check.
    """
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 < i <= _MAX_ID for i in value
    ):
        raise FrameError(Code.INVALID, "attachments must be a list of upload ids.", nonce)
    try:
        return attachments_validate(tuple(value))
    except ChatError as exc:
        raise FrameError.of(exc, nonce) from None


def reply_fields(data: dict[str, Any], nonce: str | None = None) -> dict[str, Any]:
    """A send's optional `thread` (a root id) and `in_channel` (a boolean, with `thread` only)."""
    thread = data.get("thread")
    in_channel = data.get("in_channel")
    if thread is not None and (
        isinstance(thread, bool) or not isinstance(thread, int) or not 0 < thread <= _MAX_ID
    ):
        raise FrameError(Code.INVALID, "thread must be the id of the message replied to.", nonce)
    if in_channel is not None and not isinstance(in_channel, bool):
        raise FrameError(Code.INVALID, "in_channel must be true or false.", nonce)
    return {"thread": thread, "in_channel": bool(in_channel) and thread is not None}
