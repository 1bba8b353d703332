"""Imports: TeamChat's own export (another installation), and a Slack export.

Both run in one transaction (a dry run rolls it back and only counts) and
remember what they made from each object of the archive (ImportedObject),
so running the same import again creates nothing twice. People not already
here are created without a usable password: they claim their account by
resetting it ("Forgot password?") with their email address.

Imported messages keep their authors and times, but do not go through the
event log: open pages see them on their next load (docs/export.md).
"""

import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import emoji as emoji_data
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from accounts.models import User
from chat.formatting import render
from chat.models import Membership, Message, Reaction, Room, ThreadFollow, Upload, uploads_storage
from chat.threads.services import REPLIERS_SHOWN

from ..models import ImportedObject
from . import archive

_USERNAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


class ImportError_(Exception):
    """The archive is not one this importer reads."""


class _DryRun(Exception):
    pass


class Importer:
    """The shared steps: find or make each object once, and say what was made."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.counts: Counter[str] = Counter()
        self._seen: dict[tuple[str, str], int] = {}
        self.roots: set[int] = set()

    # -- the mapping ----------------------------------------------------------------

    def mapped(self, kind: str, external_id: str) -> int | None:
        key = (kind, external_id)
        if key not in self._seen:
            found = (
                ImportedObject.objects.filter(
                    source=self.source, kind=kind, external_id=external_id
                )
                .values_list("object_id", flat=True)
                .first()
            )
            if found is None:
                return None
            self._seen[key] = found
        return self._seen[key]

    def remember(self, kind: str, external_id: str, object_id: int) -> None:
        ImportedObject.objects.get_or_create(
            source=self.source,
            kind=kind,
            external_id=external_id,
            defaults={"object_id": object_id},
        )
        self._seen[(kind, external_id)] = object_id

    # -- objects ----------------------------------------------------------------------

    def user(
        self,
        external_id: str,
        *,
        username: str,
        email: str = "",
        display_name: str = "",
        is_active: bool = True,
        is_bot: bool = False,
    ) -> User:
        found_id = self.mapped("user", external_id)
        if found_id is not None:
            found = User.objects.filter(pk=found_id).first()
            if found is not None:
                return found
        existing = None
        if email:
            existing = User.objects.filter(email__iexact=email).order_by("id").first()
        if existing is None:
            existing = User.objects.filter(username__iexact=username).first()
        if existing is not None:
            self.remember("user", external_id, existing.pk)
            self.counts["users matched"] += 1
            return existing
        user = User(
            username=self._free_username(username),
            email=email,
            display_name=display_name[:64],
            is_active=is_active,
            is_bot=is_bot,
        )
        user.set_unusable_password()
        user.save()
        self.remember("user", external_id, user.pk)
        self.counts["users created"] += 1
        return user

    @staticmethod
    def _free_username(wanted: str) -> str:
        base = _USERNAME_BAD.sub("-", wanted).strip("-._")[:140] or "user"
        name, n = base, 1
        while User.objects.filter(username__iexact=name).exists():
            n += 1
            name = f"{base}-{n}"
        return name

    def room(
        self,
        external_id: str,
        *,
        slug: str,
        name: str,
        topic: str = "",
        private: bool = False,
        archived: bool = False,
        created: datetime | None = None,
        created_by: User | None = None,
    ) -> Room:
        found_id = self.mapped("room", external_id)
        if found_id is not None:
            found = Room.objects.filter(pk=found_id).first()
            if found is not None:
                return found
        slug = slugify(slug)[:64] or "imported"
        existing = Room.objects.filter(slug=slug).first()
        if existing is not None and existing.kind == Room.Kind.CHANNEL:
            self.remember("room", external_id, existing.pk)
            self.counts["rooms matched"] += 1
            return existing
        if existing is not None:
            slug = f"{slug[:56]}-{Room.objects.count()}"
        room = Room.objects.create(
            slug=slug,
            name=name[:80] or slug,
            topic=topic[:250],
            is_private=private,
            is_archived=archived,
            created_by=created_by,
            **({"created": created} if created else {}),
        )
        self.remember("room", external_id, room.pk)
        self.counts["rooms created"] += 1
        return room

    def member(self, room: Room, user: User) -> None:
        _, created = Membership.objects.get_or_create(room=room, user=user)
        if created:
            self.counts["memberships created"] += 1

    def message(
        self,
        external_id: str,
        *,
        room: Room,
        author: User,
        body: str,
        created: datetime,
        edited: datetime | None = None,
        deleted: bool = False,
        thread: str | None = None,
        in_channel: bool = False,
    ) -> Message | None:
        if self.mapped("message", external_id) is not None:
            self.counts["messages already there"] += 1
            return None
        root_id = self.mapped("message", thread) if thread else None
        message = Message.objects.create(
            room=room,
            author=author,
            body="" if deleted else body,
            html="" if deleted else render(body),
            created=created,
            edited=edited,
            is_deleted=deleted,
            thread_id=root_id,
            in_channel=bool(root_id and in_channel),
        )
        if root_id:
            self.roots.add(root_id)
        self.remember("message", external_id, message.pk)
        self.counts["messages created"] += 1
        return message

    def reaction(self, message: Message, user: User, emoji: str) -> None:
        _, created = Reaction.objects.get_or_create(message=message, user=user, emoji=emoji)
        if created:
            self.counts["reactions created"] += 1

    def upload(
        self, message: Message, user: User, name: str, content_type: str, data: bytes
    ) -> None:
        stored = uploads_storage().save(f"imports/{message.pk}/{name}", ContentFile(data))
        Upload.objects.create(
            uploader=user,
            message=message,
            name=name[:255],
            size=len(data),
            content_type=content_type[:100] or "application/octet-stream",
            file=stored,
        )
        self.counts["files imported"] += 1

    def finish(self) -> None:
        """The imported threads' summaries and follows, as the send path keeps them."""
        for root in Message.objects.filter(pk__in=self.roots):
            replies = Message.objects.filter(thread=root, is_deleted=False).select_related("author")
            ordered = list(replies.order_by("-id"))
            names: list[str] = []
            for reply in ordered:
                if reply.author.username not in names:
                    names.append(reply.author.username)
            root.reply_count = len(ordered)
            root.last_reply_at = ordered[0].created if ordered else None
            root.repliers = names[:REPLIERS_SHOWN]
            root.save(update_fields=["reply_count", "last_reply_at", "repliers"])
            last = replies.aggregate(last=Max("id"))["last"] or 0
            people = {root.author_id, *(r.author_id for r in ordered)}
            for user_id in people:
                # Imported history is read history: no thread shows as unread.
                ThreadFollow.objects.get_or_create(
                    user_id=user_id,
                    root=root,
                    defaults={"room_id": root.room_id, "following": True, "last_read_id": last},
                )
        # Members start with the imported history read.
        for room_id in {
            m
            for m in Message.objects.filter(pk__in=self._message_ids()).values_list(
                "room_id", flat=True
            )
        }:
            last = Message.objects.filter(room_id=room_id).aggregate(last=Max("id"))["last"] or 0
            Membership.objects.filter(room_id=room_id, last_read_id__lt=last).update(
                last_read_id=last
            )

    def _message_ids(self) -> list[int]:
        return [v for (kind, _), v in self._seen.items() if kind == "message"]


def run(importer_fn: Any, path: str, *, dry_run: bool) -> Counter[str]:
    """Run an import in one transaction; a dry run counts, then rolls everything back."""
    counts: Counter[str] = Counter()
    try:
        with transaction.atomic():
            counts = importer_fn(path)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return counts


# --- TeamChat's own archive ---------------------------------------------------------------


def _lines(zf: zipfile.ZipFile, name: str) -> Iterator[dict[str, Any]]:
    if name not in zf.namelist():
        return
    with zf.open(name) as raw:
        for line in raw:
            if line.strip():
                yield json.loads(line)


def _when(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


def import_teamchat(path: str) -> Counter[str]:
    with zipfile.ZipFile(path) as zf:
        try:
            manifest = json.loads(zf.read("manifest.json"))
        except KeyError:
            raise ImportError_("Not a TeamChat export: no manifest.json.") from None
        if manifest.get("format") != archive.FORMAT or manifest.get("version") != archive.VERSION:
            raise ImportError_("Not a TeamChat export of a version this server reads.")
        imp = Importer(f"teamchat:{manifest.get('origin', 'unknown')}")
        users: dict[str, User] = {}
        for row in _lines(zf, "users.jsonl"):
            users[row["username"]] = imp.user(
                row["username"],
                username=row["username"],
                email=row.get("email") or "",
                display_name=row.get("display_name") or "",
                is_active=row.get("is_active", True),
                is_bot=row.get("is_bot", False),
            )
        rooms: dict[str, Room] = {}
        for row in _lines(zf, "rooms.jsonl"):
            if row.get("kind") != Room.Kind.CHANNEL:
                imp.counts["direct conversations left out"] += 1
                continue
            rooms[row["slug"]] = imp.room(
                row["slug"],
                slug=row["slug"],
                name=row["name"],
                topic=row.get("topic") or "",
                private=row.get("private", False),
                archived=row.get("archived", False),
                created=_when(row.get("created")),
                created_by=users.get(row.get("created_by") or ""),
            )
        for row in _lines(zf, "memberships.jsonl"):
            if row["room"] in rooms and row["user"] in users:
                imp.member(rooms[row["room"]], users[row["user"]])
        uploads: dict[int, list[dict[str, Any]]] = {}
        for row in _lines(zf, "uploads.jsonl"):
            if row.get("message"):
                uploads.setdefault(row["message"], []).append(row)
        names = set(zf.namelist())
        for row in _lines(zf, "messages.jsonl"):
            room, author = rooms.get(row["room"]), users.get(row["user"])
            if room is None or author is None:
                continue
            message = imp.message(
                str(row["id"]),
                room=room,
                author=author,
                body=row.get("body") or "",
                created=_when(row["created"]) or datetime.now(UTC),
                edited=_when(row.get("edited")),
                deleted=row.get("deleted", False),
                thread=str(row["thread"]) if row.get("thread") else None,
                in_channel=row.get("in_channel", False),
            )
            if message is None:
                continue
            for emoji, people in (row.get("reactions") or {}).items():
                for name in people:
                    if name in users:
                        imp.reaction(message, users[name], emoji)
            for upload in uploads.get(row["id"], []):
                if upload["path"] in names and upload["user"] in users:
                    imp.upload(message, users[upload["user"]], upload["name"],
                               upload.get("content_type", ""), zf.read(upload["path"]))  # fmt: skip
        imp.finish()
    return imp.counts


# --- Slack's export --------------------------------------------------------------------------

_SKIPPED_SUBTYPES = {
    "channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name",
    "channel_archive", "channel_unarchive", "group_join", "group_leave", "group_topic",
    "group_purpose", "group_name", "group_archive", "group_unarchive", "pinned_item",
    "bot_add", "bot_remove",
}  # fmt: skip


def slack_text(text: str, names: dict[str, str], channels: dict[str, str]) -> str:
    """Slack's markup as TeamChat's markdown: mentions, channel links, links, entities."""

    def link(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + names.get(target[1:], label or target[1:])
        if target.startswith("#"):
            return "#" + (channels.get(target[1:]) or label or target[1:])
        if target.startswith("!"):
            special = target[1:].split("^")[0]
            return {"here": "@here", "channel": "@channel", "everyone": "@everyone"}.get(
                special, label or special
            )
        if label:
            return f"[{label}]({target})"
        return target.removeprefix("mailto:")

    converted = re.sub(r"<([^<>\n]+)>", link, text)
    return converted.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_emoji(name: str) -> str | None:
    """A Slack reaction name (`thumbsup`, `+1`, `smile::skin-tone-2`) as an emoji, if known."""
    base = name.split("::")[0]
    found = emoji_data.emojize(f":{base}:", language="alias")
    return None if found.startswith(":") else found


def _ts(value: str) -> datetime:
    return datetime.fromtimestamp(float(value), tz=UTC)


def import_slack(path: str) -> Counter[str]:
    with zipfile.ZipFile(path) as zf:
        files = set(zf.namelist())
        root = _common_root(files)

        def read(name: str) -> Any:
            full = root + name
            return json.loads(zf.read(full)) if full in files else None

        people = read("users.json")
        channels_json = read("channels.json")
        if people is None or channels_json is None:
            raise ImportError_("Not a Slack export: users.json and channels.json are needed.")
        imp = Importer("slack:" + (root.strip("/") or "export"))
        users: dict[str, User] = {}
        names: dict[str, str] = {}
        for person in people:
            profile = person.get("profile") or {}
            user = imp.user(
                person["id"],
                username=person.get("name") or person["id"],
                email=profile.get("email") or "",
                display_name=profile.get("real_name") or person.get("real_name") or "",
                is_active=not person.get("deleted", False),
                is_bot=bool(person.get("is_bot")),
            )
            users[person["id"]] = user
            names[person["id"]] = user.username
        rooms: list[tuple[dict[str, Any], Room]] = []
        channel_names = {c["id"]: c["name"] for c in channels_json + (read("groups.json") or [])}
        for channel, private in [(c, False) for c in channels_json] + [
            (g, True) for g in read("groups.json") or []
        ]:
            creator = users.get(channel.get("creator") or "")
            room = imp.room(
                channel["id"],
                slug=channel["name"],
                name=channel["name"],
                topic=(
                    (channel.get("topic") or {}).get("value")
                    or (channel.get("purpose") or {}).get("value")
                    or ""
                ),
                private=private,
                archived=bool(channel.get("is_archived")),
                created=_ts(str(channel["created"])) if channel.get("created") else None,
                created_by=creator,
            )
            for member in channel.get("members") or []:
                if member in users:
                    imp.member(room, users[member])
            rooms.append((channel, room))
        for kind in ("dms.json", "mpims.json"):
            left_out = read(kind) or []
            if left_out:
                imp.counts["direct conversations left out"] += len(left_out)
        for channel, room in rooms:
            messages = []
            folder = f"{root}{channel['name']}/"
            for name in sorted(f for f in files if f.startswith(folder) and f.endswith(".json")):
                messages.extend(json.loads(zf.read(name)))
            messages.sort(key=lambda m: float(m.get("ts", 0)))
            for item in messages:
                _slack_message(
                    imp, zf, files, root, channel, room, item, users, names, channel_names
                )
        imp.finish()
    return imp.counts


def _slack_message(
    imp: Importer, zf: zipfile.ZipFile, files: set[str], root: str, channel: dict[str, Any],
    room: Room, item: dict[str, Any], users: dict[str, User], names: dict[str, str],
    channel_names: dict[str, str],
) -> None:  # fmt: skip
    subtype = item.get("subtype") or ""
    if item.get("type") != "message" or subtype in _SKIPPED_SUBTYPES or "ts" not in item:
        imp.counts["events left out"] += 1
        return
    author = users.get(item.get("user") or "")
    if author is None:
        bot_name = item.get("username") or (item.get("bot_profile") or {}).get("name")
        bot_id = item.get("bot_id") or bot_name
        if not bot_id:
            imp.counts["messages without an author left out"] += 1
            return
        author = imp.user(f"bot:{bot_id}", username=bot_name or str(bot_id), is_bot=True)
        users[item.get("bot_id") or f"bot:{bot_id}"] = author
    imp.member(room, author)
    body = slack_text(item.get("text") or "", names, channel_names)
    if subtype == "me_message":
        body = f"/me {body}"
    attachments: list[tuple[str, str, bytes]] = []
    for f in item.get("files") or []:
        name = PurePosixPath(f.get("name") or f.get("title") or "file").name
        candidates = [f"{root}__uploads/{f.get('id')}/{name}", f"{root}files/{f.get('id')}/{name}"]
        present = next((c for c in candidates if c in files), None)
        if present:
            attachments.append((name, f.get("mimetype") or "", zf.read(present)))
        else:
            body += f"\n\n📎 {name} (not in the export)"
            imp.counts["files not in the export"] += 1
    thread_ts = item.get("thread_ts")
    thread = f"{channel['id']}:{thread_ts}" if thread_ts and thread_ts != item["ts"] else None
    edited = item.get("edited") or {}
    message = imp.message(
        f"{channel['id']}:{item['ts']}",
        room=room,
        author=author,
        body=body.strip() or "(empty)",
        created=_ts(item["ts"]),
        edited=_ts(edited["ts"]) if edited.get("ts") else None,
        thread=thread,
        in_channel=subtype == "thread_broadcast",
    )
    if message is None:
        return
    for reaction in item.get("reactions") or []:
        emoji = slack_emoji(reaction.get("name") or "")
        if emoji is None:
            imp.counts["reactions left out (unknown emoji)"] += 1
            continue
        for person in reaction.get("users") or []:
            if person in users:
                imp.reaction(message, users[person], emoji)
    for name, content_type, data in attachments:
        imp.upload(message, author, name, content_type, data)


def _common_root(files: set[str]) -> str:
    """Slack zips hold the export at the top, or inside one folder."""
    if "users.json" in files:
        return ""
    for name in files:
        if name.endswith("/users.json") and name.count("/") == 1:
            return name[: -len("users.json")]
    return ""
