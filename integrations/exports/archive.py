"""The export archive: version 1 of the "teamchat-export" format (docs/export.md).

A zip with manifest.json, users.jsonl, rooms.jsonl, memberships.jsonl,
messages.jsonl, uploads.jsonl and files/<upload id>/<name>. Written as it is
read, a chunk of rows at a time: memory stays flat however many messages.
No password hash, session or token is ever written.
"""

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from chat.events import format_time
from chat.models import Membership, Message, Reaction, Room, Upload, uploads_storage

FORMAT = "teamchat-export"
VERSION = 1
CHUNK = 2000
FILES = ("users", "rooms", "memberships", "messages", "uploads")

Progress = Callable[[str, int], None]


def origin() -> str:
    """A stable name for this installation (not its secret): imports map objects by it."""
    return hashlib.sha256(f"teamchat-export:{settings.SECRET_KEY}".encode()).hexdigest()[:16]


def _time(value: Any) -> str | None:
    return format_time(value) if value else None


def user_row(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
        "is_bot": user.is_bot,
        "bot_owner": user.bot_owner.username if user.bot_owner is not None else None,
        "title": user.title,
        "time_zone": user.time_zone,
        "date_joined": _time(user.date_joined),
    }


def room_row(room: Room) -> dict[str, Any]:
    return {
        "slug": room.slug,
        "name": room.name,
        "topic": room.topic,
        "kind": room.kind,
        "private": room.is_private,
        "archived": room.is_archived,
        "created": _time(room.created),
        "created_by": room.created_by.username if room.created_by is not None else None,
    }


def _reactions(ids: list[int]) -> dict[int, dict[str, list[str]]]:
    found: dict[int, dict[str, list[str]]] = {}
    rows = Reaction.objects.filter(message_id__in=ids).order_by("id")
    for message_id, emoji, username in rows.values_list("message_id", "emoji", "user__username"):
        found.setdefault(message_id, {}).setdefault(emoji, []).append(username)
    return found


def message_rows(messages: QuerySet[Message]) -> Iterator[dict[str, Any]]:
    """Messages oldest first (roots before their replies), with reactions, a chunk at a time."""
    last = 0
    base = messages.select_related("author", "room").order_by("id")
    while True:
        chunk = list(base.filter(id__gt=last)[:CHUNK])
        if not chunk:
            return
        reactions = _reactions([m.id for m in chunk])
        for m in chunk:
            yield {
                "id": m.id,
                "room": m.room.slug,
                "user": m.author.username,
                "body": m.body,
                "created": _time(m.created),
                "edited": _time(m.edited),
                "deleted": m.is_deleted,
                "thread": m.thread_id,
                "in_channel": m.in_channel,
                "reactions": reactions.get(m.id, {}),
            }
        last = chunk[-1].id


def upload_row(upload: Upload) -> dict[str, Any]:
    return {
        "id": upload.id,
        "message": upload.message_id,
        "user": upload.uploader.username,
        "name": upload.name,
        "size": upload.size,
        "content_type": upload.content_type,
        "created": _time(upload.created),
        "path": f"files/{upload.id}/{upload.name}",
    }


def _jsonl(
    archive: zipfile.ZipFile, name: str, rows: Iterable[dict[str, Any]], progress: Progress
) -> int:
    count = 0
    with archive.open(f"{name}.jsonl", "w", force_zip64=True) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
            count += 1
            if count % CHUNK == 0:
                progress(name, count)
    progress(name, count)
    return count


def write(
    out: IO[bytes],
    *,
    scope: str,
    requested_by: User,
    progress: Progress = lambda _name, _count: None,
) -> dict[str, int]:
    """Write the archive of `scope` ("org": everything; "user": `requested_by`'s own) to `out`."""
    if scope == "org":
        users = User.objects.select_related("bot_owner").order_by("id")
        rooms = Room.objects.select_related("created_by").order_by("id")
        memberships = Membership.objects.order_by("id")
        messages = Message.objects.all()
        uploads = Upload.objects.filter(message__isnull=False)
    else:
        users = User.objects.select_related("bot_owner").filter(pk=requested_by.pk)
        rooms = (
            Room.objects.select_related("created_by")
            .filter(memberships__user=requested_by)
            .order_by("id")
        )
        memberships = Membership.objects.filter(user=requested_by).order_by("id")
        messages = Message.objects.filter(author=requested_by)
        uploads = Upload.objects.filter(uploader=requested_by)
    counts: dict[str, int] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        counts["users"] = _jsonl(
            archive, "users", (user_row(u) for u in users.iterator(CHUNK)), progress
        )
        counts["rooms"] = _jsonl(
            archive, "rooms", (room_row(r) for r in rooms.iterator(CHUNK)), progress
        )
        counts["memberships"] = _jsonl(
            archive,
            "memberships",
            (
                {"room": room, "user": user, "joined": _time(joined)}
                for room, user, joined in memberships.values_list(
                    "room__slug", "user__username", "joined"
                ).iterator(CHUNK)
            ),
            progress,
        )
        counts["messages"] = _jsonl(archive, "messages", message_rows(messages), progress)
        files = list(uploads.select_related("uploader").order_by("id").iterator(CHUNK))
        counts["uploads"] = _jsonl(archive, "uploads", (upload_row(u) for u in files), progress)
        for upload in files:
            try:
                with (
                    uploads_storage().open(upload.file.name or "", "rb") as source,
                    archive.open(
                        f"files/{upload.id}/{upload.name}", "w", force_zip64=True
                    ) as target,
                ):
                    while block := source.read(1 << 20):
                        target.write(block)
            except FileNotFoundError:
                continue  # removed from the storage meanwhile: the row says what it was
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "origin": origin(),
            "scope": scope,
            "requested_by": requested_by.username,
            "created": format_time(timezone.now()),
            "counts": counts,
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    return counts
