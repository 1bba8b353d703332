"""Parsing client frames (see docs/protocol.md). Pure functions, no I/O."""

import json
from dataclasses import dataclass

from .services import ChatError, nonce_validate


@dataclass(frozen=True)
class SendFrame:
    room: str
    body: str
    nonce: str | None


class FrameError(ChatError):
    """A frame refused before it reached a service; carries the nonce if it was valid."""

    def __init__(self, code: str, detail: str, nonce: str | None = None) -> None:
        super().__init__(code, detail)
        self.nonce = nonce


FRAME_TYPES = frozenset({"send"})


def parse_frame(text: str) -> SendFrame:
    """Turn a text frame into a command, or raise FrameError with the protocol's code."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise FrameError("invalid", "A frame must be a JSON object.")

    try:
        nonce = nonce_validate(frame.get("nonce"))
    except ChatError as exc:
        raise FrameError(exc.code, exc.detail) from None

    kind = frame.get("type")
    if kind is None:
        raise FrameError("invalid", "The frame has no type.", nonce)
    if not isinstance(kind, str):
        raise FrameError("invalid", "type must be a string.", nonce)
    if kind not in FRAME_TYPES:
        raise FrameError("unknown_type", f"Unknown frame type {kind[:32]!r}.", nonce)

    room, body = frame.get("room"), frame.get("body")
    if not isinstance(room, str) or not room:
        raise FrameError("invalid", "room must be a non-empty string.", nonce)
    if not isinstance(body, str):
        raise FrameError("invalid", "body must be a string.", nonce)
    return SendFrame(room=room, body=body, nonce=nonce)
