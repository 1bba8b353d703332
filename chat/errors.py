"""Every refusal a client is told about: its wire code and its one wording.

The codes are those of docs/protocol.md and never change. Each failure that
can happen in more than one place is a class here, built nowhere else, so it
reads the same on the socket, in the HTTP API and on pages; above all a room
or message one may not read is refused exactly as one that does not exist.
Failures particular to one request (what exactly was invalid) are a plain
ChatError with their code.
"""

from enum import StrEnum


class Code(StrEnum):
    """The machine-readable `code` of an error event or an API error body."""

    INVALID_JSON = "invalid_json"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    UNKNOWN_TYPE = "unknown_type"
    INVALID = "invalid"
    TOO_LONG = "too_long"
    NO_SUCH_ROOM = "no_such_room"
    NOT_MEMBER = "not_member"
    RATE_LIMITED = "rate_limited"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    ROOM_EXISTS = "room_exists"
    NOT_AUTHENTICATED = "not_authenticated"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CSRF_FAILED = "csrf_failed"
    UNAVAILABLE = "unavailable"
    TOO_LARGE = "too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    CONFLICT = "conflict"


class ChatError(Exception):
    """A refused request, with a stable `code` from the protocol and a readable `detail`."""

    def __init__(self, code: Code, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _shown(name: str) -> str:
    # A name as the client sent it, cut short; quoted when it is not plain
    # text (a NUL, a lone surrogate), which must not be echoed raw.
    name = name[:64]
    return name if name.isascii() and name.isprintable() else repr(name)


class NoSuchRoom(ChatError):
    """No room `slug` that the user may read: never says whether it exists."""

    def __init__(self, slug: str) -> None:
        super().__init__(Code.NO_SUCH_ROOM, f"There is no room #{_shown(slug)}.")


class NotMember(ChatError):
    """A room the user may read but has not joined, asked to be written to."""

    def __init__(self, slug: str) -> None:
        super().__init__(Code.NOT_MEMBER, f"You are not a member of #{_shown(slug)}.")


class RoomArchived(ChatError):
    """A write to an archived room, which is read-only."""

    def __init__(self, slug: str) -> None:
        super().__init__(Code.FORBIDDEN, f"#{_shown(slug)} is archived (read-only).")


class NoSuchMessage(ChatError):
    """No live message with that id in a room the user may read: never says which."""

    def __init__(self) -> None:
        super().__init__(Code.NOT_FOUND, "No such message.")


class NoSuchUser(ChatError):
    def __init__(self) -> None:
        super().__init__(Code.NOT_FOUND, "No such user.")


class NotAuthenticated(ChatError):
    def __init__(self) -> None:
        super().__init__(Code.NOT_AUTHENTICATED, "Log in first.")


class RateLimited(ChatError):
    """Past the user's write budget (sockets and the HTTP API share it): nothing was done."""

    def __init__(self) -> None:
        super().__init__(Code.RATE_LIMITED, "You are doing that too fast; nothing was done.")


class Unavailable(ChatError):
    """Something on the server failed; the same request may succeed when retried."""

    def __init__(self) -> None:
        super().__init__(
            Code.UNAVAILABLE, "That could not be done; retry (a send with the same nonce)."
        )


class NoSuchUpload(ChatError):
    """No file the user may download at that address: never says whether it exists."""

    def __init__(self) -> None:
        super().__init__(Code.NOT_FOUND, "No such file.")


class FileTooLarge(ChatError):
    """A file over UPLOADS_MAX_BYTES: refused while it streams in, nothing stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(Code.TOO_LARGE, f"Files may be at most {_size(limit)}.")


class QuotaExceeded(ChatError):
    """The file would take the uploader past their storage quota: nothing stored."""

    def __init__(self, quota: int) -> None:
        super().__init__(
            Code.QUOTA_EXCEEDED,
            f"Your files would take more than your {_size(quota)} of storage; "
            "delete some messages with files first.",
        )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError  # unreachable: the loop returns at GiB


class NoSuchThread(ChatError):
    """No thread with that root that the user may read: never says whether it exists."""

    def __init__(self) -> None:
        super().__init__(Code.NOT_FOUND, "No such thread.")
