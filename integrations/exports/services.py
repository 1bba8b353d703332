"""Export jobs: requested by a person, made in the background, downloaded only by them."""

import logging
import os
import tempfile
import threading
from datetime import timedelta

from django.conf import settings
from django.core.files import File
from django.db import close_old_connections, connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import get_random_string

from accounts.models import User
from chat.errors import ChatError, Code
from chat.models import Membership, Message, Room, Upload, uploads_storage
from teamchat import metrics

from ..audit import audit_record
from ..models import ExportJob
from . import archive

log = logging.getLogger(__name__)

# A running job not heard from for this long is taken again by another worker.
LEASE = timedelta(minutes=10)


def export_request(*, actor: User, scope: object, request: HttpRequest | None = None) -> ExportJob:
    """Queue an export: "org" (admins only) or "user" (one's own data). Audit-logged.

    A second request while one of the same scope is queued or running gets that one.
    """
    if scope not in ExportJob.Scope.values:
        raise ChatError(Code.INVALID, 'scope is "org" or "user".')
    if scope == ExportJob.Scope.ORG and not actor.is_chat_admin:
        raise ChatError(Code.FORBIDDEN, "Only admins may export the whole organization.")
    with transaction.atomic():
        pending = ExportJob.objects.filter(
            requested_by=actor,
            scope=scope,
            status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING],
        ).first()
        if pending is not None:
            return pending
        job = ExportJob.objects.create(requested_by=actor, scope=scope)
        audit_record(
            action="export.request",
            actor=actor,
            target=f"export:{job.pk}",
            request=request,
            data={"scope": scope},
        )
        if settings.EXPORTS_IN_PROCESS:
            transaction.on_commit(lambda: _start_thread(job.pk))
    return job


def _start_thread(job_id: int) -> None:
    threading.Thread(target=_run_in_thread, args=(job_id,), name="export", daemon=True).start()


def _run_in_thread(job_id: int) -> None:
    try:
        export_work(only=job_id)
    except Exception:
        log.exception("export %s failed", job_id)
    finally:
        connection.close()


def export_take(only: int | None = None) -> ExportJob | None:
    """Claim the oldest queued job (or one whose worker's lease ran out) for this worker."""
    now = timezone.now()
    with transaction.atomic():
        jobs = ExportJob.objects.filter(status=ExportJob.Status.QUEUED) | ExportJob.objects.filter(
            status=ExportJob.Status.RUNNING, lease_until__lt=now
        )
        if only is not None:
            jobs = jobs.filter(pk=only)
        if connection.vendor == "postgresql":
            jobs = jobs.select_for_update(skip_locked=True)
        job = jobs.order_by("created", "id").first()
        if job is None:
            return None
        job.status = ExportJob.Status.RUNNING
        job.started = now
        job.lease_until = now + LEASE
        job.save(update_fields=["status", "started", "lease_until"])
    return job


def export_work(only: int | None = None) -> int:
    """Run queued jobs until none is left (or just `only`); how many ran."""
    done = 0
    while (job := export_take(only)) is not None:
        export_run(job)
        done += 1
        close_old_connections()
        if only is not None:
            break
    return done


def _totals(job: ExportJob) -> int:
    if job.scope == ExportJob.Scope.ORG:
        return (
            User.objects.count()
            + Room.objects.count()
            + Membership.objects.count()
            + Message.objects.count()
            + Upload.objects.filter(message__isnull=False).count()
        )
    user = job.requested_by
    return (
        1
        + Membership.objects.filter(user=user).count() * 2
        + Message.objects.filter(author=user).count()
        + Upload.objects.filter(uploader=user).count()
    )


def export_run(job: ExportJob) -> None:
    """Write the job's archive to the storage, saying how far along it is as it goes."""
    total = max(1, _totals(job))
    written: dict[str, int] = {}

    def progress(name: str, count: int) -> None:
        written[name] = count
        percent = min(99, int(100 * sum(written.values()) / total))
        if percent > job.progress:
            job.progress = percent
            job.lease_until = timezone.now() + LEASE
            ExportJob.objects.filter(pk=job.pk).update(
                progress=percent, lease_until=job.lease_until
            )

    try:
        with tempfile.TemporaryFile() as out:
            counts = archive.write(
                out, scope=job.scope, requested_by=job.requested_by, progress=progress
            )
            out.seek(0, os.SEEK_END)
            size = out.tell()
            out.seek(0)
            stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
            name = f"exports/{job.pk}-{get_random_string(16)}/teamchat-{job.scope}-{stamp}.zip"
            stored = uploads_storage().save(name, File(out))
    except Exception as exc:
        log.exception("export %s failed", job.pk)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED, error=str(exc)[:500], finished=timezone.now()
        )
        metrics.EXPORTS.labels("failed").inc()
        return
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.DONE,
        progress=100,
        counts=counts,
        file=stored,
        size=size,
        finished=timezone.now(),
        lease_until=None,
    )
    metrics.EXPORTS.labels("done").inc()


def export_for(actor: User, job_id: int) -> ExportJob:
    """One of the actor's own exports; anyone else's is not found."""
    job = ExportJob.objects.filter(pk=job_id, requested_by=actor).first()
    if job is None:
        raise ChatError(Code.NOT_FOUND, "There is no such export.")
    return job


def export_downloaded(*, actor: User, job: ExportJob, request: HttpRequest | None = None) -> None:
    audit_record(
        action="export.download",
        actor=actor,
        target=f"export:{job.pk}",
        request=request,
        data={"scope": job.scope},
    )
