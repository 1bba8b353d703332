"""Writing uploads: storing a new file, and deleting those no message ever carried."""

import functools
import logging
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from chat.errors import (
    ChatError,
    Code,
    FileTooLarge,
    NoSuchUpload,
    QuotaExceeded,
    RateLimited,
)
from chat.eventlog import logged_change, record
from chat.models import Upload, uploads_storage
from chat.ratelimit import uploads as upload_limiter
from integrations.audit import audit_record

from . import images
from .sniff import clean_name, sniff

log = logging.getLogger(__name__)


def _file_path(key: str) -> str:
    # Never the uploader's name: a storage path (or S3 key) they cannot steer.
    return f"files/{key[:2]}/{key}"


def _thumb_path(key: str, content_type: str) -> str:
    return f"thumbs/{key[:2]}/{key}.{'png' if content_type == 'image/png' else 'jpg'}"


def upload_check_rate(*, uploader_id: int) -> None:
    """RateLimited when the user has uploaded too much too fast (before the body is read)."""
    if not upload_limiter.allow(uploader_id):
        raise RateLimited()


# The key a client may name its upload with (X-Upload-Key), to cancel it later.
_CLIENT_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def upload_check_key(client_key: str) -> None:
    """Invalid unless `client_key` is 1 to 64 characters of A-Z, a-z, 0-9, `-` and `_`."""
    if not _CLIENT_KEY.fullmatch(client_key):
        raise ChatError(
            Code.INVALID, "An upload key is 1 to 64 characters of A-Z, a-z, 0-9, - and _."
        )


def _cancelled_key(uploader_id: int, client_key: str) -> str:
    return f"upload-cancelled:{uploader_id}:{client_key}"


def _was_cancelled(uploader_id: int, client_key: str) -> bool:
    # The cache being down must not stop uploads: a cancel it could not
    # record leaves at worst an unsent file, which the prune removes.
    try:
        return cache.get(_cancelled_key(uploader_id, client_key)) is not None
    except Exception:
        log.warning("could not read cancelled upload keys; storing the upload")
        return False


def _stored_bytes(uploader_id: int) -> int:
    total = Upload.objects.filter(uploader_id=uploader_id).aggregate(total=Sum("size"))["total"]
    return int(total or 0)


def upload_create(*, uploader: User, file: File, name: str, client_key: str = "") -> Upload:
    """Store `file` (a file on disk) as the uploader's, its type read from its bytes.

    Refuses an empty file (invalid), one over UPLOADS_MAX_BYTES (too_large)
    and one that would take the uploader past UPLOADS_QUOTA_BYTES
    (quota_exceeded). Images PNG/JPEG/GIF/WebP that Pillow opens and
    libmagic agrees on get their upright size and a thumbnail without
    metadata; every other file is kept as it is, with its sniffed type, and
    is only ever served as an attachment. The file is private to its
    uploader until a message carries it.

    `client_key` (optional) is the client's name for this upload: once
    upload_cancel was called with it, the upload is refused (conflict) and
    nothing is kept. Both decide under the uploader's row lock, so they are
    serialized: whichever comes second sees what the first did.
    """
    if client_key:
        upload_check_key(client_key)
    size = file.size or 0
    if size <= 0:
        raise ChatError(Code.INVALID, "The file is empty.")
    if size > settings.UPLOADS_MAX_BYTES:
        raise FileTooLarge(settings.UPLOADS_MAX_BYTES)
    quota = settings.UPLOADS_QUOTA_BYTES
    if _stored_bytes(uploader.pk) + size > quota:
        raise QuotaExceeded(quota)

    sniffed = sniff(file)
    upload = Upload(
        uploader=uploader,
        name=clean_name(name),
        size=size,
        content_type=sniffed.content_type,
        client_key=client_key,
    )
    storage = uploads_storage()
    rendered = None
    if sniffed.image is not None:
        upload.width, upload.height = sniffed.image.width, sniffed.image.height
        rendered = images.thumbnail(sniffed.image, settings.UPLOADS_THUMBNAIL_SIZE)
        sniffed.image.close()
    # Streamed: a file on disk is moved (or copied in chunks), never read whole.
    file.seek(0)
    upload.file.name = storage.save(_file_path(upload.key), file)
    if rendered is not None:
        upload.thumbnail.name = storage.save(
            _thumb_path(upload.key, rendered.content_type), ContentFile(rendered.data)
        )
        upload.thumb_width, upload.thumb_height = rendered.width, rendered.height
    try:
        with transaction.atomic():
            # One upload of a user at a time past this point, so two at once
            # cannot both fit the quota's last gap, and a cancel of this one
            # (upload_cancel, under the same lock) is either seen here or
            # finds it saved.
            User.objects.select_for_update().filter(pk=uploader.pk).first()
            if _stored_bytes(uploader.pk) + size > quota:
                raise QuotaExceeded(quota)
            if client_key and _was_cancelled(uploader.pk, client_key):
                raise ChatError(Code.CONFLICT, "This upload was cancelled.")
            upload.save()
    except BaseException:
        _delete_files(upload)
        raise
    return upload


def _delete_files(upload: Upload) -> None:
    storage = uploads_storage()
    for field in (upload.file, upload.thumbnail):
        if field and field.name:
            try:
                storage.delete(field.name)
            except OSError:
                log.warning("could not delete stored file %s", field.name)


def files_of_deleted_uploader(sender: type, instance: User, **kwargs: object) -> None:
    """`pre_delete` of a person: their uploads' files go once the deletion commits.

    Their rows go with the person (CASCADE), so neither `uploads_free` nor the
    prune would ever see them again; without this the files would stay on
    disk for good. Runs inside the deletion's transaction: a rollback keeps
    them.
    """
    for upload in Upload.objects.filter(uploader=instance):
        transaction.on_commit(functools.partial(_delete_files, upload))


def uploads_prune(*, now: datetime | None = None) -> int:
    """Delete uploads no message carries that are older than UPLOADS_UNATTACHED_HOURS.

    Their files and thumbnails go first, then the rows; returns how many.
    Safe to run from several places at once (a row already gone is skipped).
    """
    cutoff = (now or timezone.now()) - timedelta(hours=settings.UPLOADS_UNATTACHED_HOURS)
    pruned = 0
    stale = Upload.objects.filter(message__isnull=True, created__lt=cutoff).order_by("id")
    for upload in stale.iterator(chunk_size=500):
        with transaction.atomic():
            locked = (
                Upload.objects.select_for_update(skip_locked=True)
                .filter(pk=upload.pk, message__isnull=True)
                .first()
            )
            if locked is None:
                continue  # sent with a message meanwhile, or another prune has it
            locked.delete()
            transaction.on_commit(functools.partial(_delete_files, locked))
            pruned += 1
    return pruned


def uploads_free(*, uploads: list[Upload]) -> None:
    """Delete these uploads: the rows now (every download 404s), their files after the commit.

    Called inside the transaction that deletes what carried them; a rollback
    keeps both.
    """
    if not uploads:
        return
    Upload.objects.filter(pk__in=[u.pk for u in uploads]).delete()
    for upload in uploads:
        transaction.on_commit(functools.partial(_delete_files, upload))


def upload_cancel(*, actor: User, client_key: str) -> None:
    """Cancel the actor's upload named `client_key` (X-Upload-Key), stored yet or not.

    The page cancels an upload whose answer it has not seen: the server may
    have stored it, be storing it, or never get it all. Under the actor's row
    lock (the one upload_create stores under, so the two are serialized) a
    tombstone goes in the cache for UPLOADS_UNATTACHED_HOURS, after which an
    unsent upload would be pruned anyway: an upload with this key that comes
    later is refused. One already stored is deleted, its row now and its files
    after the commit. One a message already carries stays: the cancel came
    after the send. Another user's uploads are never touched; cancelling again
    (or a key never used) does nothing more.
    """
    upload_check_key(client_key)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=actor.pk).first()
        try:
            cache.set(
                _cancelled_key(actor.pk, client_key),
                True,
                timeout=settings.UPLOADS_UNATTACHED_HOURS * 3600,
            )
        except Exception:
            # What is stored is still deleted below; one arriving later is
            # kept until the prune.
            log.warning("could not record a cancelled upload key; deleting what is stored")
        # Locked, like a send claiming files locks them: a send that claimed
        # one first has set its message by the time this reads it.
        unsent = Upload.objects.select_for_update().filter(
            uploader=actor, client_key=client_key, message__isnull=True
        )
        uploads_free(uploads=list(unsent))


def upload_delete(*, actor: User, upload_id: int) -> None:
    """Delete one file: its uploader while no message carries it, an admin any time.

    An uploader takes back a file they decided not to send (the page's
    cancel). An admin removes a file from a message: it is gone for everyone
    at once, and the room is told (`attachment_removed`, in the event log, so
    a reconnecting page catches up) while the message stays. Anyone else, or
    an upload that does not exist, gets NoSuchUpload, which says nothing
    about whether it exists; the uploader of a file a message carries is told
    to delete the message instead.
    """
    with logged_change() as items:
        # Decided on the locked row, inside the order: a send claiming this
        # file at the same moment either committed first (then it is part of a
        # message and its uploader is refused) or waits and finds it gone.
        upload = (
            Upload.objects.select_for_update(of=("self",))
            .select_related("message__room", "uploader")
            .filter(pk=upload_id)
            .first()
        )
        if upload is None or not (upload.uploader_id == actor.pk or actor.is_chat_admin):
            raise NoSuchUpload()
        message = upload.message
        if message is not None and not actor.is_chat_admin:
            raise ChatError(
                Code.FORBIDDEN, "This file is part of a message: delete the message to remove it."
            )
        uploads_free(uploads=[upload])
        if upload.uploader_id != actor.pk:  # an admin removing someone's file
            audit_record(
                action="upload.delete",
                actor=actor,
                target=f"room:{message.room.slug}"
                if message
                else f"user:{upload.uploader.username}",
                data={
                    "upload": upload.pk,
                    "name": upload.name,
                    "uploader": upload.uploader.username,
                    "message": message.pk if message else None,
                },
            )
        if message is not None and not message.is_deleted:
            data = {"room": message.room.slug, "message": message.pk, "id": upload.pk}
            items.append(record("attachment_removed", data, room=message.room))
    if message is not None:
        log.info("admin %s removed file %s of message %s", actor.pk, upload.pk, message.pk)
